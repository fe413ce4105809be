//! CEL validation rules (`x-kubernetes-validations`) as kube-apiserver
//! enforces them, asserted on kubectl's output: the Task's own rules (which
//! live in its CRD, so a Kubernetes cluster enforces them too) and the rules
//! of a CRD a user applies: `message`, `messageExpression`, `reason`,
//! `fieldPath`, a transition rule on `oldSelf`, and a CRD whose rule does not
//! compile.

use crate::support::*;
use std::process::Output;
use std::time::Duration;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn kubectl_fails(s: &TestServer, args: &[&str]) -> String {
    let out = s.kubectl(args);
    assert!(
        !out.status.success(),
        "kubectl {args:?} succeeded:\n{}",
        text(&out)
    );
    text(&out)
}

#[tokio::test]
async fn task_rules_are_cel_in_its_crd_and_enforced() {
    let s = TestServer::start().unwrap();
    let dir = s.dir.path();
    // The rules are in the CRD a Kubernetes cluster would be given.
    let rules = s.kubectl_ok(&[
        "get",
        "crd",
        "tasks.mosaic.dev",
        "-o",
        "jsonpath={.spec.versions[0].schema.openAPIV3Schema.x-kubernetes-validations[*].rule}\
         {.spec.versions[0].schema.openAPIV3Schema.properties.spec.x-kubernetes-validations[*].rule}",
    ]);
    assert!(
        rules.contains("self.spec == oldSelf.spec") && rules.contains("has(self.command)"),
        "{rules}"
    );

    // Both command and args: refused with the rule's message, at spec.
    let both = write_file(
        dir,
        "both.yaml",
        "apiVersion: mosaic.dev/v1alpha1\nkind: Task\nmetadata: {name: both}\n\
         spec: {command: 'true', args: ['/bin/true']}\n",
    );
    let out = kubectl_fails(&s, &["apply", "-f", &both]);
    assert!(
        out.contains(r#""both" is invalid: spec: Invalid value: "object": exactly one of spec.command and spec.args must be set"#),
        "{out}"
    );
    let neither = write_file(
        dir,
        "neither.yaml",
        "apiVersion: mosaic.dev/v1alpha1\nkind: Task\nmetadata: {name: neither}\nspec: {args: []}\n",
    );
    let out = kubectl_fails(&s, &["apply", "-f", &neither]);
    assert!(
        out.contains("exactly one of spec.command and spec.args"),
        "{out}"
    );

    // Unbound, the spec may change; once bound, the transition rule refuses it.
    let _agent = s.spawn_agent("cel-node", "cpus=2,memory=2Gi");
    let t = write_file(
        dir,
        "t.yaml",
        "apiVersion: mosaic.dev/v1alpha1\nkind: Task\nmetadata: {name: t}\n\
         spec: {command: 'sleep 60', resources: {cpus: 100m, memory: 32Mi}}\n",
    );
    s.kubectl_ok(&["apply", "-f", &t]);
    let api = tasks_api(s.client().await.unwrap());
    wait_task(&api, "t", Duration::from_secs(30), |st| {
        st["phase"] == "Running"
    })
    .await
    .unwrap();
    let out = kubectl_fails(
        &s,
        &[
            "patch",
            "task",
            "t",
            "--type=merge",
            "-p",
            r#"{"spec":{"command":"sleep 61"}}"#,
        ],
    );
    assert!(
        out.contains(r#""t" is invalid: spec: Forbidden: a Task's spec is immutable once it is bound to an agent"#),
        "{out}"
    );
    // Metadata still changes.
    s.kubectl_ok(&["label", "task", "t", "team=a"]);

    // A maintenance window that is no time, or lasts no time, is refused,
    // naming the field.
    let out = kubectl_fails(
        &s,
        &[
            "patch",
            "agent",
            "cel-node",
            "--type=merge",
            "-p",
            r#"{"spec":{"maintenance":{"start":"next tuesday","durationSeconds":0}}}"#,
        ],
    );
    assert!(
        out.contains("spec.maintenance.start") && out.contains("spec.maintenance.durationSeconds"),
        "{out}"
    );
    s.kubectl_ok(&[
        "patch",
        "agent",
        "cel-node",
        "--type=merge",
        "-p",
        r#"{"spec":{"maintenance":{"start":"2099-01-01T00:00:00Z","durationSeconds":3600}}}"#,
    ]);
    s.kubectl_ok(&[
        "patch",
        "agent",
        "cel-node",
        "--type=merge",
        "-p",
        r#"{"spec":{"unschedulable":true}}"#,
    ]);
}

fn widget_crd(rules: &str) -> String {
    format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n\
         metadata: {{name: gadgets.example.com}}\n\
         spec:\n  group: example.com\n  scope: Namespaced\n  names: {{plural: gadgets, kind: Gadget}}\n\
         \x20 versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n\
         \x20       type: object\n        properties:\n          spec:\n            type: object\n{rules}\
         \x20           properties:\n              min: {{type: integer}}\n              max: {{type: integer}}\n\
         \x20             owner: {{type: string, maxLength: 63}}\n"
    )
}

#[tokio::test]
async fn a_users_crd_rules_are_enforced_as_kube_apiserver_does() {
    let s = TestServer::start().unwrap();
    let dir = s.dir.path();
    let rules = "            x-kubernetes-validations:\n\
                 \x20           - rule: self.min <= self.max\n\
                 \x20             messageExpression: \"'min ' + string(self.min) + ' is above max ' + string(self.max)\"\n\
                 \x20           - rule: self.owner == oldSelf.owner\n\
                 \x20             message: owner is immutable\n\
                 \x20             reason: FieldValueForbidden\n\
                 \x20             fieldPath: .owner\n\
                 \x20           - rule: has(self.owner)\n\
                 \x20             message: every gadget has an owner\n\
                 \x20             reason: FieldValueRequired\n";
    let crd = write_file(dir, "crd.yaml", &widget_crd(rules));
    s.kubectl_ok(&["apply", "-f", &crd]);
    s.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/gadgets.example.com",
        "--timeout=30s",
    ]);
    let gadget = |name: &str, spec: &str| {
        write_file(
            dir,
            &format!("{name}.yaml"),
            &format!(
                "apiVersion: example.com/v1\nkind: Gadget\nmetadata: {{name: {name}}}\nspec: {spec}\n"
            ),
        )
    };
    // messageExpression.
    let out = kubectl_fails(
        &s,
        &["apply", "-f", &gadget("g1", "{min: 5, max: 2, owner: ann}")],
    );
    assert!(
        out.contains(r#""g1" is invalid: spec: Invalid value: "object": min 5 is above max 2"#),
        "{out}"
    );
    // reason FieldValueRequired.
    let out = kubectl_fails(&s, &["apply", "-f", &gadget("g2", "{min: 1, max: 2}")]);
    assert!(
        out.contains("spec: Required value: every gadget has an owner"),
        "{out}"
    );
    // A good one; then the transition rule, with its reason and fieldPath.
    s.kubectl_ok(&["apply", "-f", &gadget("g3", "{min: 1, max: 2, owner: ann}")]);
    let out = kubectl_fails(
        &s,
        &[
            "patch",
            "gadget",
            "g3",
            "--type=merge",
            "-p",
            r#"{"spec":{"owner":"bob"}}"#,
        ],
    );
    assert!(
        out.contains("spec.owner: Forbidden: owner is immutable"),
        "{out}"
    );
    s.kubectl_ok(&[
        "patch",
        "gadget",
        "g3",
        "--type=merge",
        "-p",
        r#"{"spec":{"max":9}}"#,
    ]);
    let out = kubectl_fails(
        &s,
        &[
            "patch",
            "gadget",
            "g3",
            "--type=merge",
            "-p",
            r#"{"spec":{"min":10}}"#,
        ],
    );
    assert!(out.contains("min 10 is above max 9"), "{out}");

    // A rule that does not compile, or reads what a CRD rule cannot see, is refused.
    for bad in [
        "            x-kubernetes-validations:\n            - rule: 'self.min <='\n",
        "            x-kubernetes-validations:\n            - rule: 'object.spec.min == 1'\n",
    ] {
        let f = write_file(dir, "bad.yaml", &widget_crd(bad));
        let out = kubectl_fails(&s, &["apply", "-f", &f]);
        assert!(
            out.contains("is invalid") && out.contains("x-kubernetes-validations"),
            "{bad}: {out}"
        );
    }
    // The good CRD is still served as it was.
    s.kubectl_ok(&["get", "gadget", "g3"]);
}
