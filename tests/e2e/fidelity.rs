//! What kubectl and Helm expect of an API server beyond the happy path, each
//! asserted on the real tools' output as kube-apiserver would make it: the
//! built-in kinds validated and normalised from their upstream schemas, a
//! typo'd kind, a `kind: List`, `get -o yaml | apply -f -`, `apply --prune -l`
//! with kubectl's default allowlist, `get all`, `cluster-info`, `auth whoami`,
//! `explain configmap.data`, `/version/`, and `helm create`'s chart.

use crate::support::*;
use kube::api::{Api, DynamicObject};
use kube::discovery::ApiResource;
use std::io::Write;
use std::process::{Output, Stdio};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// kubectl with `args` that must fail; its stdout and stderr.
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
async fn built_in_kinds_are_validated_and_normalised_as_kube_apiserver_does() {
    let s = TestServer::start().unwrap();
    let dir = s.dir.path();

    // stringData is merged into data (base64) and dropped; type defaults to Opaque.
    let f = write_file(
        dir,
        "secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: hunter2}\n",
    );
    s.kubectl_ok(&["create", "-f", &f]);
    let secrets: Api<DynamicObject> = Api::namespaced_with(
        s.client().await.unwrap(),
        "default",
        &ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&()),
    );
    let db = secrets.get("db").await.unwrap();
    assert_eq!(db.data["data"]["password"], "aHVudGVyMg==", "{:?}", db.data);
    assert_eq!(db.data["type"], "Opaque", "{:?}", db.data);
    assert!(db.data.get("stringData").is_none(), "{:?}", db.data);

    // A ConfigMap's data is a map of strings; a Secret's data is base64.
    let f = write_file(
        dir,
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: nums}\ndata: {a: 1}\n",
    );
    let out = kubectl_fails(&s, &["create", "-f", &f]);
    assert!(
        out.contains("is invalid") && out.contains("data.a") && out.contains("type string"),
        "{out}"
    );
    let f = write_file(
        dir,
        "bad64.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: bad}\ndata: {password: 'not base64!'}\n",
    );
    let out = kubectl_fails(&s, &["create", "-f", &f]);
    assert!(
        out.contains("is invalid") && out.contains("data.password") && out.contains("base64"),
        "{out}"
    );

    // Unknown fields, in the kind and in metadata, under kubectl's default (Strict).
    let f = write_file(
        dir,
        "typo.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: typo, labelz: {a: b}}\ndat: {a: '1'}\n",
    );
    let out = kubectl_fails(&s, &["apply", "-f", &f]);
    assert!(
        out.contains("BadRequest")
            && out.contains(r#"unknown field "dat""#)
            && out.contains(r#"unknown field "metadata.labelz""#),
        "{out}"
    );
    // Without Strict the unknown fields are dropped, as kube-apiserver drops them.
    s.kubectl_ok(&["apply", "--validate=false", "-f", &f]);
    let cm: serde_json::Value =
        serde_json::from_str(&s.kubectl_ok(&["get", "configmap", "typo", "-o", "json"])).unwrap();
    assert!(
        cm.get("dat").is_none() && cm["metadata"].get("labelz").is_none(),
        "{cm}"
    );

    // An immutable ConfigMap keeps its data and its mark.
    let f = write_file(
        dir,
        "frozen.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: frozen}\nimmutable: true\ndata: {a: '1'}\n",
    );
    s.kubectl_ok(&["create", "-f", &f]);
    let patch = r#"{"data":{"a":"2"}}"#;
    let out = kubectl_fails(&s, &["patch", "configmap", "frozen", "-p", patch]);
    assert!(
        out.contains("data") && out.contains("field is immutable when `immutable` is set"),
        "{out}"
    );
    let out = kubectl_fails(
        &s,
        &[
            "patch",
            "configmap",
            "frozen",
            "-p",
            r#"{"immutable":false}"#,
        ],
    );
    assert!(out.contains("immutable"), "{out}");
    s.kubectl_ok(&["label", "configmap", "frozen", "team=a"]);

    // A Secret's type is fixed once set, and an immutable Secret keeps its data.
    let out = kubectl_fails(
        &s,
        &[
            "patch",
            "secret",
            "db",
            "-p",
            r#"{"type":"kubernetes.io/tls"}"#,
        ],
    );
    assert!(out.contains("type") && out.contains("immutable"), "{out}");
    let f = write_file(
        dir,
        "sealed.yaml",
        // Go's base64 skips line breaks; kube-apiserver accepts this value.
        "apiVersion: v1\nkind: Secret\nmetadata: {name: sealed}\nimmutable: true\ndata: {k: \"aGVs\\r\\nbG8=\"}\n",
    );
    s.kubectl_ok(&["create", "-f", &f]);
    let out = kubectl_fails(
        &s,
        &[
            "patch",
            "secret",
            "sealed",
            "-p",
            r#"{"stringData":{"k":"x"}}"#,
        ],
    );
    assert!(
        out.contains("field is immutable when `immutable` is set"),
        "{out}"
    );
}

#[tokio::test]
async fn crds_ratchet_validation_and_never_shadow_built_in_kinds() {
    let s = TestServer::start().unwrap();
    let dir = s.dir.path();
    let crd = |size_enum: &str| {
        format!(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n\
             metadata: {{name: widgets.example.com}}\n\
             spec:\n  group: example.com\n  scope: Namespaced\n  names: {{plural: widgets, singular: widget, kind: Widget}}\n\
             \x20 versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n\
             \x20       type: object\n        properties:\n          spec:\n            type: object\n\
             \x20           properties:\n              size: {{type: string{size_enum}}}\n              count: {{type: integer}}\n"
        )
    };
    let f = write_file(dir, "crd.yaml", &crd(""));
    s.kubectl_ok(&["apply", "-f", &f]);
    s.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "--timeout=30s",
    ]);
    let w = write_file(
        dir,
        "w.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: huge, count: 1}\n",
    );
    s.kubectl_ok(&["apply", "-f", &w]);
    // The schema grows stricter: "huge" is no longer allowed.
    let f = write_file(dir, "crd.yaml", &crd(", enum: [small, large]"));
    s.kubectl_ok(&["apply", "-f", &f]);
    // The stored object stays updatable in the fields it changes (ratcheting)...
    s.kubectl_ok(&[
        "patch",
        "widget",
        "w",
        "--type=merge",
        "-p",
        r#"{"spec":{"count":2}}"#,
    ]);
    s.kubectl_ok(&["label", "widget", "w", "team=a"]);
    // ...and a changed value must meet the new schema.
    let out = kubectl_fails(
        &s,
        &[
            "patch",
            "widget",
            "w",
            "--type=merge",
            "-p",
            r#"{"spec":{"size":"giant"}}"#,
        ],
    );
    assert!(
        out.contains("spec.size") && out.contains("Unsupported value"),
        "{out}"
    );
    let f = write_file(
        dir,
        "w2.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {size: huge}\n",
    );
    let out = kubectl_fails(&s, &["create", "-f", &f]);
    assert!(
        out.contains("spec.size") && out.contains("Unsupported value"),
        "{out}"
    );

    // A CRD may not take the place of a kind the server serves (or lists as absent).
    for (group, plural, kind) in [
        ("apps", "deployments", "Deployment"),
        ("rbac.authorization.k8s.io", "roles", "Role"),
    ] {
        let f = write_file(
            dir,
            "shadow.yaml",
            &format!(
                "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n\
                 metadata: {{name: {plural}.{group}}}\n\
                 spec:\n  group: {group}\n  scope: Namespaced\n  names: {{plural: {plural}, kind: {kind}}}\n\
                 \x20 versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}\n"
            ),
        );
        let out = kubectl_fails(&s, &["create", "-f", &f]);
        assert!(
            out.contains("served by the API server itself"),
            "{group}/{plural}: {out}"
        );
    }
    s.kubectl_ok(&["get", "roles.rbac.authorization.k8s.io", "-A"]);
}

#[tokio::test]
async fn kubectl_edge_cases_end_as_against_kube_apiserver() {
    let s = TestServer::start().unwrap();
    let dir = s.dir.path();

    // A typo'd kind: kubectl names it (it needs /openapi/v2 to get that far).
    let f = write_file(
        dir,
        "taks.yaml",
        "apiVersion: mosaic.dev/v1alpha1\nkind: Taks\nmetadata: {name: t}\nspec: {command: 'true'}\n",
    );
    let out = kubectl_fails(&s, &["apply", "-f", &f]);
    assert!(
        out.contains(r#"no matches for kind "Taks" in version "mosaic.dev/v1alpha1""#),
        "{out}"
    );

    // A List is applied item by item.
    let f = write_file(
        dir,
        "list.yaml",
        "apiVersion: v1\nkind: List\nitems:\n\
         - apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: settings, labels: {app: demo}}\n  data: {a: '1'}\n\
         - apiVersion: mosaic.dev/v1alpha1\n  kind: Task\n  metadata: {name: once, labels: {app: demo}}\n  spec: {command: 'true'}\n",
    );
    let out = s.kubectl_ok(&["apply", "-f", &f]);
    assert!(
        out.contains("configmap/settings created") && out.contains("task.mosaic.dev/once created"),
        "{out}"
    );

    // get -o yaml | apply -f -: the List round-trips.
    let yaml = s.kubectl_ok(&["get", "configmaps,tasks", "-l", "app=demo", "-o", "yaml"]);
    let mut apply = s.kubectl_cmd(&["apply", "-f", "-"]);
    let mut child = apply
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = text(&out);
    assert!(
        out.contains("configmap/settings") && out.contains("task.mosaic.dev/once"),
        "{out}"
    );

    // apply --prune -l with kubectl's default allowlist (Endpoints, Pods,
    // Deployments...: listed, always empty) prunes what the manifest dropped.
    let f = write_file(
        dir,
        "only.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kept, labels: {app: demo}}\ndata: {a: '1'}\n",
    );
    let out = s.kubectl(&["apply", "--prune", "-l", "app=demo", "-f", &f]);
    assert!(out.status.success(), "{}", text(&out));
    let out = text(&out);
    assert!(
        out.contains("configmap/kept created") && out.contains("configmap/settings pruned"),
        "{out}"
    );

    // get all: Mosaic's workload kinds are in the `all` category.
    let out = s.kubectl_ok(&["get", "all"]);
    assert!(out.contains("task.mosaic.dev/once"), "{out}");

    // cluster-info prints the control plane's address.
    let out = s.kubectl_ok(&["cluster-info"]);
    assert!(
        out.contains("Kubernetes control plane")
            && out.contains("is running at")
            && out.contains("https://127.0.0.1:"),
        "{out}"
    );

    // auth whoami: the admin's name and groups.
    let out = s.kubectl_ok(&["auth", "whoami"]);
    assert!(
        out.contains("Username") && out.contains("mosaic:admin") && out.contains("system:masters"),
        "{out}"
    );

    // explain of a built-in kind's field, with upstream's description.
    let out = s.kubectl_ok(&["explain", "configmap.data"]);
    assert!(
        out.contains("map[string]string") && out.contains("Data contains the configuration data"),
        "{out}"
    );

    let out = s.kubectl_ok(&["explain", "customresourcedefinition.spec.scope"]);
    assert!(out.contains("Namespaced"), "{out}");

    // /version/ (the Python client and kr8s ask for it with the slash).
    let out = s.kubectl_ok(&["get", "--raw", "/version/"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["major"], "1", "{out}");
    // The health paths with a slash are a 404, as kube-apiserver's mux has them.
    for path in ["/healthz/", "/readyz/", "/livez/", "/metrics/"] {
        let out = kubectl_fails(&s, &["get", "--raw", path]);
        assert!(
            out.contains("NotFound") || out.contains("404"),
            "{path}: {out}"
        );
    }
    let out = s.kubectl_ok(&["get", "--raw", "/openapi/v2"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["swagger"], "2.0");
    assert!(v["definitions"]["io.k8s.api.core.v1.Secret"].is_object());

    // The kinds Mosaic lists and does not run: every read is empty, every write refused.
    assert_eq!(
        s.kubectl_ok(&["get", "pods,services,deployments,jobs", "-A", "-o", "name"]),
        ""
    );
    let out = kubectl_fails(&s, &["get", "deployment", "web"]);
    assert!(out.contains("NotFound"), "{out}");
    let svc = write_file(
        s.dir.path(),
        "svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n",
    );
    for args in [
        &["delete", "deployment", "web"][..],
        &["apply", "--server-side", "-f", &svc],
        &["replace", "-f", &svc],
        &["delete", "--raw", "/api/v1/namespaces/default/pods"],
        &["create", "job", "once", "--image=busybox"],
    ] {
        let out = kubectl_fails(&s, args);
        assert!(out.contains("does not serve the kind"), "{args:?}: {out}");
    }
}

#[tokio::test]
async fn helm_create_chart_installs_what_mosaic_serves_and_names_what_it_does_not() {
    let s = TestServer::start().unwrap();
    let chart = s.dir.path().join("demo");
    let out = s.helm(&["create", chart.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    // Unmodified: the Deployment and Service are refused, each named.
    let out = s.helm(&["install", "demo", chart.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", text(&out));
    let out = text(&out);
    assert!(
        out.contains("Kind=Service") && out.contains("does not serve the kind Service"),
        "{out}"
    );
    assert!(
        out.contains("Kind=Deployment") && out.contains("does not serve the kind Deployment"),
        "{out}"
    );
    // Without the workload, networking and autoscaling templates, it installs.
    for t in ["deployment", "service", "hpa", "ingress", "httproute"] {
        let _ = std::fs::remove_file(chart.join("templates").join(format!("{t}.yaml")));
    }
    let out = s.helm(&[
        "install",
        "demo2",
        chart.to_str().unwrap(),
        "--wait",
        "--timeout",
        "60s",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = s.kubectl_ok(&["get", "serviceaccount", "demo2", "-o", "name"]);
    assert_eq!(out.trim(), "serviceaccount/demo2");
}

/// A chart of one Task asking for `cpus`, running `command`.
fn task_chart(dir: &std::path::Path, cpus: &str, command: &str) -> String {
    let chart = dir.join(format!("chart-{cpus}"));
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: one-task\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(
        chart.join("templates/task.yaml"),
        format!(
            "apiVersion: mosaic.dev/v1alpha1\nkind: Task\nmetadata:\n  name: {{{{ .Release.Name }}}}\n\
             spec:\n  command: {command:?}\n  resources: {{cpus: {cpus:?}, memory: 16Mi}}\n"
        ),
    )
    .unwrap();
    chart.display().to_string()
}

#[tokio::test]
async fn helm_wait_waits_for_a_task_and_fails_with_its_reason() {
    let s = TestServer::start().unwrap();
    let _agent = s.spawn_agent("wait-node", "cpus=2,memory=2Gi");
    // A task no agent can hold: Stalled (Unschedulable), which kstatus reads as failed.
    let big = task_chart(s.dir.path(), "64", "sleep 60");
    let out = s.helm(&["install", "big", &big, "--wait", "--timeout", "60s"]);
    assert!(
        !out.status.success(),
        "helm --wait passed an unschedulable task:\n{}",
        text(&out)
    );
    // Not ready, as docs/gitops.md says: Ready=False with the reason.
    let ready = s.kubectl_ok(&[
        "get",
        "task",
        "big",
        "-o",
        r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}/{.status.conditions[?(@.type=="Ready")].reason}"#,
    ]);
    assert_eq!(ready, "False/Unschedulable");
    let out = text(&out);
    assert!(
        out.contains("Task/default/big not ready")
            && out.contains("status: Failed")
            && out.contains(
                "it needs cpus=64 memory=16Mi and the largest agent has cpus=2 memory=2Gi"
            ),
        "{out}"
    );
    // A task that runs: --wait returns once it is Ready (Running), not before.
    let ok = task_chart(s.dir.path(), "100m", "sleep 60");
    let out = s.helm(&["install", "runs", &ok, "--wait", "--timeout", "60s"]);
    assert!(out.status.success(), "{}", text(&out));
    let phase = s.kubectl_ok(&["get", "task", "runs", "-o", "jsonpath={.status.phase}"]);
    assert_eq!(phase, "Running", "helm --wait returned before the task ran");
}

#[tokio::test]
async fn mosaic_apply_is_server_side_apply_with_strict_fields() {
    let s = TestServer::start().unwrap();
    let mosaic_apply = |file: &str| {
        std::process::Command::new(mosaic_bin())
            .args(["apply", "-f", file])
            .env("KUBECONFIG", s.kubeconfig())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // A typo: refused, naming the field, the file and its line; nothing runs.
    let typo = write_file(
        s.dir.path(),
        "typo.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: first}\n---\n\
         apiVersion: mosaic.dev/v1alpha1\nkind: Task\nmetadata:\n  name: sized\n\
         spec:\n  command: 'true'\n  resource:\n    cpus: 1\n",
    );
    let out = mosaic_apply(&typo);
    assert!(!out.status.success(), "{}", text(&out));
    let out = text(&out);
    assert!(
        out.contains(&format!("{typo}:11: unknown field \"spec.resource\"")),
        "{out}"
    );
    let gone = s.kubectl(&["get", "task", "sized"]);
    assert!(!gone.status.success(), "the task with a typo was created");

    // A key removed from the manifest is removed from the object.
    let cm = |data: &str| {
        write_file(
            s.dir.path(),
            "cm.yaml",
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings}}\ndata: {{{data}}}\n"
            ),
        )
    };
    let out = mosaic_apply(&cm("a: '1', b: '2'"));
    assert!(
        text(&out).contains("configmap/settings created"),
        "{}",
        text(&out)
    );
    let out = mosaic_apply(&cm("a: '1', b: '2'"));
    assert!(
        text(&out).contains("configmap/settings unchanged"),
        "{}",
        text(&out)
    );
    let out = mosaic_apply(&cm("a: '1'"));
    assert!(
        text(&out).contains("configmap/settings configured"),
        "{}",
        text(&out)
    );
    let data = s.kubectl_ok(&["get", "configmap", "settings", "-o", "jsonpath={.data}"]);
    assert_eq!(data, r#"{"a":"1"}"#);
    let managers = s.kubectl_ok(&[
        "get",
        "configmap",
        "settings",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    assert_eq!(managers, "mosaic");
}

/// The columns of `kubectl get` output's first row named `name`.
fn row(out: &str, name: &str) -> Vec<String> {
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in:\n{out}"))
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn tables_accounts_errors_and_encodings_as_kube_apiserver_has_them() {
    let s = TestServer::start().unwrap();
    let dir = s.dir.path();
    // ConfigMap and Secret tables have DATA (and TYPE).
    s.kubectl_ok(&[
        "create",
        "configmap",
        "two",
        "--from-literal=a=1",
        "--from-literal=b=2",
    ]);
    s.kubectl_ok(&["create", "secret", "generic", "one", "--from-literal=a=1"]);
    let out = s.kubectl_ok(&["get", "configmaps"]);
    assert!(
        out.starts_with("NAME") && out.lines().next().unwrap().contains("DATA"),
        "{out}"
    );
    assert_eq!(row(&out, "two")[1], "2", "{out}");
    let out = s.kubectl_ok(&["get", "secrets"]);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "TYPE", "DATA", "AGE"], "{out}");
    assert_eq!(row(&out, "one")[1..3], ["Opaque", "1"], "{out}");

    // The Events table names the object with its kind.
    let f = write_file(
        dir,
        "event.yaml",
        "apiVersion: v1\nkind: Event\nmetadata: {name: seen}\ntype: Normal\nreason: Tested\n\
         message: hello\ninvolvedObject: {apiVersion: mosaic.dev/v1alpha1, kind: Task, name: hello, namespace: default}\n",
    );
    s.kubectl_ok(&["create", "-f", &f]);
    let out = s.kubectl_ok(&["get", "events"]);
    assert!(out.contains("task/hello"), "{out}");

    // Every namespace has its default ServiceAccount.
    s.kubectl_ok(&["get", "serviceaccount", "default", "-n", "default"]);
    s.kubectl_ok(&["create", "namespace", "team-z"]);
    s.kubectl_ok(&["get", "serviceaccount", "default", "-n", "team-z"]);
    // Deleted, it comes back (Kubernetes's ServiceAccount controller does the same).
    let uid = s.kubectl_ok(&[
        "get",
        "serviceaccount",
        "default",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    s.kubectl_ok(&["delete", "serviceaccount", "default"]);
    let again = s.kubectl_ok(&[
        "get",
        "serviceaccount",
        "default",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    assert!(!again.is_empty() && again != uid, "{uid} -> {again}");

    // Creating in a terminating namespace names the object.
    let f = write_file(
        dir,
        "held.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held, namespace: team-z, finalizers: [example.com/hold]}\n",
    );
    s.kubectl_ok(&["create", "-f", &f]);
    s.kubectl_ok(&["delete", "namespace", "team-z", "--wait=false"]);
    let out = kubectl_fails(&s, &["create", "configmap", "late", "-n", "team-z"]);
    assert!(
        out.contains(r#"configmaps "late" is forbidden"#) && out.contains("being terminated"),
        "{out}"
    );

    // Accept: application/yaml gets YAML.
    let client = s.client().await.unwrap();
    let req = http::Request::get("/api/v1/namespaces/default/configmaps/two")
        .header("Accept", "application/yaml")
        .body(Vec::new())
        .unwrap();
    let text = client.request_text(req).await.unwrap();
    assert!(
        text.contains("kind: ConfigMap") && !text.trim_start().starts_with('{'),
        "{text}"
    );
    // Lists and errors too.
    for (path, want) in [
        (
            "/api/v1/namespaces/default/configmaps",
            "kind: ConfigMapList",
        ),
        (
            "/api/v1/namespaces/default/configmaps/missing",
            "reason: NotFound",
        ),
    ] {
        let req = http::Request::get(path)
            .header("Accept", "application/yaml")
            .body(Vec::new())
            .unwrap();
        let resp = client
            .send(req.map(kube::client::Body::from))
            .await
            .unwrap();
        assert_eq!(resp.headers()["content-type"], "application/yaml", "{path}");
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains(want), "{path}: {body}");
    }

    // The server's log file has no terminal colour codes.
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap();
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in server.log:\n{log}"
    );
}

#[tokio::test]
async fn a_refused_task_upgrade_says_what_works() {
    let s = TestServer::start().unwrap();
    let _agent = s.spawn_agent("upgrade-node", "cpus=2,memory=2Gi");
    let chart = task_chart(s.dir.path(), "100m", "sleep 60");
    let out = s.helm(&["install", "fixed", &chart, "--wait", "--timeout", "60s"]);
    assert!(out.status.success(), "{}", text(&out));
    let chart = task_chart(s.dir.path(), "100m", "sleep 61");
    let out = s.helm(&["upgrade", "fixed", &chart]);
    assert!(
        !out.status.success(),
        "a bound Task's spec changed:\n{}",
        text(&out)
    );
    let out = text(&out);
    assert!(
        out.contains("immutable once it is bound") && out.contains("docs/gitops.md"),
        "{out}"
    );
}
