//! The in-process controllers of `mosaic server` act as their own
//! least-privilege identity (`system:mosaic:controllers`, bound to the same
//! rules the chart gives them), not as the admin; a write their role does
//! not allow is refused, and shows as a Warning Event and a warn log line
//! naming the verb and resource.

use crate::support::*;
use serde_json::Value;
use std::time::Duration;

const USER: &str = "system:mosaic:controllers";

/// The users and (verb, resource) of the audit log's requests.
fn audited(path: &std::path::Path) -> Vec<(String, String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["objectRef"].is_object())
        .map(|e| {
            let r = &e["objectRef"];
            let resource = match r["subresource"].as_str() {
                Some(sub) => format!("{}/{sub}", r["resource"].as_str().unwrap_or("")),
                None => r["resource"].as_str().unwrap_or("").to_string(),
            };
            (
                e["user"]["username"].as_str().unwrap_or("").to_string(),
                e["verb"].as_str().unwrap_or("").to_string(),
                resource,
            )
        })
        .collect()
}

/// Whether the controllers' identity may `verb` `resource` (`tasks/binding`),
/// as a SubjectAccessReview (what `kubectl auth can-i --as` asks of
/// kube-apiserver) answers.
async fn may(s: &TestServer, verb: &str, group: &str, resource: &str) -> bool {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
    };
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, sub)) => (r, Some(sub.to_string())),
        None => (resource, None),
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(USER.into()),
            groups: Some(vec!["system:authenticated".into()]),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                subresource,
                namespace: Some("default".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: kube::Api<SubjectAccessReview> = kube::Api::all(s.client().await.unwrap());
    let answer = api
        .create(&kube::api::PostParams::default(), &review)
        .await
        .unwrap();
    answer.status.is_some_and(|st| st.allowed)
}

#[tokio::test]
async fn controllers_are_least_privileged_and_say_so_when_refused() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.log");
    let s = TestServer::start_with(&["--audit-log", audit.to_str().unwrap()]).unwrap();
    let _agent = s.spawn_agent("id-node", "cpus=2,memory=2Gi");
    let task = |name: &str| {
        write_file(
            s.dir.path(),
            &format!("{name}.yaml"),
            &format!(
                "apiVersion: mosaic.dev/v1alpha1\nkind: Task\nmetadata: {{name: {name}}}\n\
                 spec: {{command: 'sleep 60', resources: {{cpus: 100m, memory: 32Mi}}}}\n"
            ),
        )
    };
    s.kubectl_ok(&["apply", "-f", &task("first")]);
    let api = tasks_api(s.client().await.unwrap());
    wait_task(&api, "first", Duration::from_secs(30), |st| {
        st["phase"] == "Running"
    })
    .await
    .unwrap();
    // The bind was the controllers' own identity's, and the admin wrote nothing of it.
    let log = audited(&audit);
    let binds: Vec<_> = log
        .iter()
        .filter(|(_, verb, res)| verb == "create" && res == "tasks/binding")
        .collect();
    assert!(!binds.is_empty(), "no bind in the audit log");
    assert!(binds.iter().all(|(u, _, _)| u == USER), "{binds:?}");
    // The identity is not an admin: it may not, for example, read Secrets.
    assert!(!may(&s, "list", "", "secrets").await);
    assert!(!may(&s, "delete", "mosaic.dev", "agents").await);
    assert!(may(&s, "create", "mosaic.dev", "tasks/binding").await);

    // Narrowed (no binding), the scheduler's bind is refused: reported, not hidden.
    let role: Value = serde_json::from_str(&s.kubectl_ok(&[
        "get",
        "clusterrole",
        "mosaic:controllers",
        "-o",
        "json",
    ]))
    .unwrap();
    let at = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .position(|r| {
            r["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == "tasks/binding")
        })
        .expect("the role grants binding");
    let patch = format!(r#"[{{"op":"remove","path":"/rules/{at}"}}]"#);
    s.kubectl_ok(&[
        "patch",
        "clusterrole",
        "mosaic:controllers",
        "--type=json",
        "-p",
        &patch,
    ]);
    wait_for(
        Duration::from_secs(30),
        "the narrowed role to apply",
        || async { !may(&s, "create", "mosaic.dev", "tasks/binding").await },
    )
    .await
    .unwrap();
    s.kubectl_ok(&["apply", "-f", &task("second")]);
    let mut events = String::new();
    let seen = wait_for(Duration::from_secs(30), "a Forbidden Warning event", || {
        events = s.kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=second,reason=Forbidden",
            "-o",
            "jsonpath={range .items[*]}{.type} {.message}{\"\\n\"}{end}",
        ]);
        let found = events.starts_with("Warning ") && events.contains("tasks/binding");
        async move { found }
    })
    .await;
    assert!(seen.is_ok(), "events: {events}");
    assert!(
        events.contains(r#"cannot create resource "tasks/binding""#),
        "{events}"
    );
    let server_log = std::fs::read_to_string(s.dir.path().join("server.log")).unwrap();
    assert!(
        server_log.lines().any(|l| l.contains("WARN")
            && l.contains("refused a controller write")
            && l.contains("tasks/binding")),
        "no warn line for the refusal:\n{server_log}"
    );
    // Given the permission back (as the server restores its built-in roles at
    // start), the task binds: the controllers kept trying.
    s.kubectl_ok(&[
        "patch",
        "clusterrole",
        "mosaic:controllers",
        "--type=json",
        "-p",
        &format!(
            r#"[{{"op":"add","path":"/rules/{at}","value":{}}}]"#,
            role["rules"][at]
        ),
    ]);
    wait_task(&api, "second", Duration::from_secs(30), |st| {
        st["phase"] == "Running"
    })
    .await
    .unwrap();
}

/// The controllers (scheduler, App, drain and maintenance controllers) share
/// one watch per kind: the audit log shows the controllers' identity
/// watching each kind once, however many of them read it (Agents are read
/// by four, Tasks by two).
#[tokio::test]
async fn the_controllers_watch_each_kind_once() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.log");
    let s = TestServer::start_with(&["--audit-log", audit.to_str().unwrap()]).unwrap();
    let _agent = s.spawn_agent("watch-node", "cpus=2,memory=2Gi");
    let app = write_file(
        s.dir.path(),
        "app.yaml",
        "apiVersion: mosaic.dev/v1alpha1\nkind: App\nmetadata: {name: web}\n\
         spec: {replicas: 1, template: {spec: {command: 'sleep 60', \
         resources: {cpus: 100m, memory: 32Mi}}}}\n",
    );
    s.kubectl_ok(&["apply", "-f", &app]);
    s.kubectl_ok(&[
        "wait",
        "--for=condition=Available",
        "app/web",
        "--timeout=60s",
    ]);
    let mut watches = std::collections::BTreeMap::<String, usize>::new();
    for (user, verb, resource) in audited(&audit) {
        if user == USER && verb == "watch" {
            *watches.entry(resource).or_default() += 1;
        }
    }
    for kind in [
        "tasks",
        "agents",
        "apps",
        "frameworks",
        "roles",
        "reservations",
        "offers",
        "leases",
    ] {
        assert_eq!(
            watches.get(kind),
            Some(&1),
            "watches of {kind}: {watches:?}"
        );
    }
    assert!(watches.values().all(|n| *n == 1), "{watches:?}");
}
