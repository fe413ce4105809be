//! Server-side apply with the real kubectl: creating and updating a Task,
//! conflicts between field managers and taking fields over with
//! `--force-conflicts`, managedFields naming both, the move from client-side
//! to server-side apply, `kubectl diff`, and bad apply requests refused with
//! nothing stored.

use crate::support::*;
use std::process::Output;

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn task(command: &str, env: &[(&str, &str)]) -> String {
    let mut y = format!(
        "apiVersion: mosaic.dev/v1alpha1\nkind: Task\nmetadata:\n  name: report\nspec:\n  command: {command}\n  resources:\n    cpus: 100m\n    memory: 64Mi\n"
    );
    if !env.is_empty() {
        y.push_str("  env:\n");
        for (k, v) in env {
            y.push_str(&format!("  - name: {k}\n    value: \"{v}\"\n"));
        }
    }
    y
}

/// The managedFields of task `report`.
fn managed_fields(s: &TestServer) -> Vec<serde_json::Value> {
    let out = s.kubectl_ok(&[
        "get",
        "task",
        "report",
        "-o",
        "json",
        "--show-managed-fields",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["metadata"]["managedFields"].as_array().unwrap().clone()
}

fn managers(s: &TestServer) -> Vec<(String, String)> {
    let mut m: Vec<(String, String)> = managed_fields(s)
        .iter()
        .map(|e| {
            (
                e["manager"].as_str().unwrap().into(),
                e["operation"].as_str().unwrap().into(),
            )
        })
        .collect();
    m.sort();
    m
}

fn field(s: &TestServer, path: &str) -> String {
    s.kubectl_ok(&["get", "task", "report", "-o", &format!("jsonpath={path}")])
}

#[test]
fn server_side_apply_creates_updates_conflicts_and_forces() {
    let s = TestServer::start().unwrap();
    let dir = s.dir.path();
    let mine = write_file(
        dir,
        "mine.yaml",
        &task("echo one", &[("A", "1"), ("B", "2")]),
    );
    let out = s.kubectl_ok(&["apply", "--server-side", "-f", &mine]);
    assert!(
        out.contains("task.mosaic.dev/report serverside-applied"),
        "{out}"
    );
    assert_eq!(managers(&s), [("kubectl".to_string(), "Apply".to_string())]);
    let rv = field(&s, "{.metadata.resourceVersion}");
    // The same configuration again changes nothing, not even the resourceVersion.
    s.kubectl_ok(&["apply", "--server-side", "-f", &mine]);
    assert_eq!(field(&s, "{.metadata.resourceVersion}"), rv);

    // An edit of the file reaches the object; an env var no longer applied goes.
    let mine = write_file(dir, "mine.yaml", &task("echo two", &[("A", "1")]));
    s.kubectl_ok(&["apply", "--server-side", "-f", &mine]);
    assert_eq!(field(&s, "{.spec.command}"), "echo two");
    assert_eq!(field(&s, "{.spec.env[*].name}"), "A");
    // A new value of the same fields is still the Apply's: no Update entry.
    let edited = write_file(dir, "edited.yaml", &task("echo two", &[("A", "2")]));
    s.kubectl_ok(&["apply", "--server-side", "-f", &edited]);
    assert_eq!(field(&s, "{.spec.env[0].value}"), "2");
    assert_eq!(managers(&s), [("kubectl".to_string(), "Apply".to_string())]);

    // Another manager: a new env var merges in (env is a map-list keyed by name)...
    let theirs = write_file(dir, "theirs.yaml", &task("echo two", &[("C", "3")]));
    s.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager=ops",
        "-f",
        &theirs,
    ]);
    assert_eq!(field(&s, "{.spec.env[*].name}"), "A C");
    // ...but changing the command conflicts, naming the field and its owner.
    let theirs = write_file(dir, "theirs.yaml", &task("echo three", &[("C", "3")]));
    let out = s.kubectl(&[
        "apply",
        "--server-side",
        "--field-manager=ops",
        "-f",
        &theirs,
    ]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(
        t.contains("conflict with \"kubectl\"") && t.contains(".spec.command"),
        "{t}"
    );
    assert_eq!(
        field(&s, "{.spec.command}"),
        "echo two",
        "the conflict changed nothing"
    );
    // Forced, ops takes the command over.
    s.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager=ops",
        "--force-conflicts",
        "-f",
        &theirs,
    ]);
    assert_eq!(field(&s, "{.spec.command}"), "echo three");
    assert_eq!(
        managers(&s),
        [
            ("kubectl".to_string(), "Apply".to_string()),
            ("ops".to_string(), "Apply".to_string())
        ]
    );
    let out = s.kubectl_ok(&[
        "get",
        "task",
        "report",
        "-o",
        "json",
        "--show-managed-fields",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let entries = v["metadata"]["managedFields"].as_array().unwrap();
    let fields_of =
        |m: &str| entries.iter().find(|e| e["manager"] == m).unwrap()["fieldsV1"].clone();
    assert!(fields_of("ops")["f:spec"]["f:command"].is_object(), "{v}");
    assert!(
        fields_of("kubectl")["f:spec"].get("f:command").is_none(),
        "{v}"
    );
    assert!(
        fields_of("kubectl")["f:spec"]["f:env"]["k:{\"name\":\"A\"}"].is_object(),
        "{v}"
    );

    // An Update (kubectl patch) takes the fields it changes.
    s.kubectl_ok(&[
        "patch",
        "task",
        "report",
        "--type=merge",
        "-p",
        r#"{"spec":{"resources":{"cpus":"200m"}}}"#,
    ]);
    let m = managers(&s);
    assert!(
        m.contains(&("kubectl-patch".to_string(), "Update".to_string())),
        "{m:?}"
    );
}

#[test]
fn client_side_apply_moves_to_server_side_without_conflicts() {
    let s = TestServer::start().unwrap();
    let f = write_file(s.dir.path(), "t.yaml", &task("echo one", &[("A", "1")]));
    s.kubectl_ok(&["apply", "-f", &f]);
    assert_eq!(
        managers(&s),
        [(
            "kubectl-client-side-apply".to_string(),
            "Update".to_string()
        )]
    );
    // kubectl hands the client-side manager's fields to its server-side one.
    let f = write_file(s.dir.path(), "t.yaml", &task("echo two", &[("A", "1")]));
    let out = s.kubectl(&["apply", "--server-side", "-f", &f]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(field(&s, "{.spec.command}"), "echo two");
    assert!(
        managers(&s).contains(&("kubectl".to_string(), "Apply".to_string())),
        "{:?}",
        managers(&s)
    );
}

#[test]
fn managed_fields_a_client_writes_are_kept_canonical_and_give_way_to_later_writes() {
    let s = TestServer::start().unwrap();
    let f = write_file(s.dir.path(), "t.yaml", &task("echo one", &[("A", "1")]));
    s.kubectl_ok(&["apply", "--server-side", "-f", &f]);
    // A tool writes managedFields itself, a key spelled with spaces.
    let written = serde_json::json!({"metadata": {"managedFields": [{
        "manager": "tool", "operation": "Update", "apiVersion": "mosaic.dev/v1alpha1",
        "fieldsType": "FieldsV1", "time": "2026-01-01T00:00:00Z",
        "fieldsV1": {"f:spec": {"f:env": {"k:{ \"name\" : \"A\" }": {".": {}, "f:name": {}, "f:value": {}}}}}}]}});
    s.kubectl_ok(&[
        "patch",
        "task",
        "report",
        "--type=merge",
        "-p",
        &written.to_string(),
    ]);
    let tool = || {
        managed_fields(&s)
            .into_iter()
            .find(|e| e["manager"] == "tool")
            .map(|e| e["fieldsV1"].clone())
    };
    // Stored as kube-apiserver stores it: the key in canonical form.
    assert_eq!(
        tool(),
        Some(
            serde_json::json!({"f:spec": {"f:env": {"k:{\"name\":\"A\"}": {".": {}, "f:name": {}, "f:value": {}}}}})
        )
    );
    // So another manager's write of the value takes it from the tool.
    s.kubectl_ok(&[
        "patch",
        "task",
        "report",
        "--type=merge",
        "--field-manager=editor",
        "-p",
        r#"{"spec": {"env": [{"name": "A", "value": "2"}]}}"#,
    ]);
    assert_eq!(field(&s, "{.spec.env[0].value}"), "2");
    assert_eq!(
        tool(),
        Some(
            serde_json::json!({"f:spec": {"f:env": {"k:{\"name\":\"A\"}": {".": {}, "f:name": {}}}}})
        )
    );
}

#[test]
fn kubectl_diff_shows_nothing_after_apply_and_the_edit_after_an_edit() {
    let s = TestServer::start().unwrap();
    let f = write_file(s.dir.path(), "t.yaml", &task("echo one", &[("A", "1")]));
    for server_side in [false, true] {
        let mut apply = vec!["apply", "-f", &f];
        let mut diff = vec!["diff", "-f", &f];
        if server_side {
            apply.insert(1, "--server-side");
            diff.insert(1, "--server-side");
        }
        let f2 = write_file(s.dir.path(), "t.yaml", &task("echo one", &[("A", "1")]));
        assert_eq!(f, f2);
        s.kubectl_ok(&apply);
        let rv = field(&s, "{.metadata.resourceVersion}");
        let out = s.kubectl(&diff);
        assert_eq!(
            out.status.code(),
            Some(0),
            "diff after apply ({server_side}): {}",
            text(&out)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "");
        write_file(s.dir.path(), "t.yaml", &task("echo edited", &[("A", "1")]));
        let out = s.kubectl(&diff);
        assert_eq!(
            out.status.code(),
            Some(1),
            "diff after an edit ({server_side}): {}",
            text(&out)
        );
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(
            shown.contains("-  command: echo one") && shown.contains("+  command: echo edited"),
            "{shown}"
        );
        assert_eq!(
            field(&s, "{.metadata.resourceVersion}"),
            rv,
            "diff wrote nothing"
        );
        assert_eq!(field(&s, "{.spec.command}"), "echo one");
        write_file(s.dir.path(), "t.yaml", &task("echo one", &[("A", "1")]));
        s.kubectl_ok(&["delete", "task", "report"]);
    }
}

#[tokio::test]
async fn bad_apply_requests_are_refused_and_store_nothing() {
    let s = TestServer::start().unwrap();
    let dir = s.dir.path();
    // Two env vars with the same key.
    let dup = write_file(dir, "dup.yaml", &task("echo", &[("A", "1"), ("A", "2")]));
    let out = s.kubectl(&["apply", "--server-side", "-f", &dup]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("duplicate entries for key [name=\"A\"]"),
        "{}",
        text(&out)
    );
    // An invalid object in a dry run: refused, naming the field.
    let bad = write_file(
        dir,
        "bad.yaml",
        "apiVersion: mosaic.dev/v1alpha1\nkind: Task\nmetadata:\n  name: report\nspec:\n  command: echo\n  resources:\n    cpus: lots\n",
    );
    let out = s.kubectl(&["apply", "--server-side", "--dry-run=server", "-f", &bad]);
    assert!(!out.status.success());
    assert!(text(&out).contains("spec.resources.cpus"), "{}", text(&out));
    // A body that is not YAML, and one without a fieldManager.
    let client = s.client().await.unwrap();
    let url = "/apis/mosaic.dev/v1alpha1/namespaces/default/tasks/report";
    for (query, body, want) in [
        ("?fieldManager=me", "spec: [unclosed", "error decoding YAML"),
        (
            "?fieldManager=me",
            "- just\n- a list\n",
            "must be a YAML or JSON object",
        ),
        (
            "",
            "apiVersion: mosaic.dev/v1alpha1\nkind: Task\n",
            "fieldManager",
        ),
        ("?fieldManager=me", "kind: Task\n", "apiVersion must be set"),
    ] {
        let req = http::Request::patch(format!("{url}{query}"))
            .header("Content-Type", "application/apply-patch+yaml")
            .body(body.as_bytes().to_vec())
            .unwrap();
        let err = client.request_text(req).await.unwrap_err();
        let kube::Error::Api(status) = err else {
            panic!("{err}")
        };
        assert_eq!(status.code, 400, "{body}: {status:?}");
        assert!(status.message.contains(want), "{body}: {}", status.message);
    }
    let out = s.kubectl(&["get", "tasks", "-o", "name"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "nothing was stored"
    );
}

#[test]
fn an_applyset_prunes_exactly_the_manifest_taken_out() {
    let s = TestServer::start().unwrap();
    let dir = s.dir.path().join("manifests");
    std::fs::create_dir_all(&dir).unwrap();
    for n in ["a", "b", "c"] {
        let t = task(&format!("echo {n}"), &[]).replace("name: report", &format!("name: t-{n}"));
        write_file(&dir, &format!("{n}.yaml"), &t);
    }
    write_file(
        &dir,
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  k: v\n",
    );
    // Not part of the set: never pruned.
    let outside = write_file(
        s.dir.path(),
        "outside.yaml",
        &task("echo outside", &[]).replace("name: report", "name: outsider"),
    );
    s.kubectl_ok(&["apply", "-f", &outside]);
    let d = dir.to_string_lossy().to_string();
    let apply = |s: &TestServer| {
        let out = s
            .kubectl_cmd(&[
                "apply",
                "-n",
                "default",
                "--server-side",
                "--prune",
                "--applyset=pipeline",
                "-f",
                &d,
            ])
            .env("KUBECTL_APPLYSET", "true")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    apply(&s);
    let names = |s: &TestServer| s.kubectl_ok(&["get", "tasks,configmaps", "-o", "name"]);
    assert_eq!(
        names(&s),
        "task.mosaic.dev/outsider\ntask.mosaic.dev/t-a\ntask.mosaic.dev/t-b\ntask.mosaic.dev/t-c\nconfigmap/settings\n"
    );
    std::fs::remove_file(dir.join("b.yaml")).unwrap();
    let out = apply(&s);
    assert!(out.contains("task.mosaic.dev/t-b pruned"), "{out}");
    assert_eq!(
        names(&s),
        "task.mosaic.dev/outsider\ntask.mosaic.dev/t-a\ntask.mosaic.dev/t-c\nconfigmap/settings\n"
    );
    // The parent records the set.
    let parent = s.kubectl_ok(&[
        "get",
        "secret",
        "pipeline",
        "-o",
        "jsonpath={.metadata.annotations.applyset\\.kubernetes\\.io/contains-group-kinds}",
    ]);
    assert!(
        parent.contains("Task.mosaic.dev") && parent.contains("ConfigMap"),
        "{parent}"
    );
}
