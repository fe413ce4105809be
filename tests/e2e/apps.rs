//! Apps against a real `mosaic server` and agent, driven with kubectl: N
//! instances kept running (`kubectl wait --for=condition=Available`),
//! `kubectl scale` through the scale subresource (youngest killed first),
//! a rolling upgrade that never leaves Marathon's health and capacity
//! bounds (sampled throughout), a killed instance replaced with its backoff
//! in Events, instances deleted with their App, and the rules the CRD
//! carries.

use crate::support::{TestServer, mosaic, wait_for, write_file};
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

fn app_yaml(replicas: u32, version: &str, strategy: &str) -> String {
    format!(
        r#"apiVersion: mosaic.dev/v1alpha1
kind: App
metadata:
  name: web
spec:
  replicas: {replicas}
  backoffSeconds: 1
  upgradeStrategy: {strategy}
  template:
    metadata:
      labels:
        tier: front
    spec:
      command: while [ ! -e "$MOSAIC_SANDBOX/stop" ]; do sleep 0.2; done; exit 3
      env:
        - name: VERSION
          value: "{version}"
      resources:
        cpus: 100m
        memory: 32Mi
      killGracePeriodSeconds: 1
      healthCheck:
        exec:
          command: "true"
        initialDelaySeconds: 1
        periodSeconds: 1
"#
    )
}

/// The App's instances, in one list (a consistent snapshot).
async fn instances(tasks: &Api<DynamicObject>) -> Vec<DynamicObject> {
    tasks
        .list(&ListParams::default().labels("mosaic.dev/app=web"))
        .await
        .expect("listing instances")
        .items
}

fn phase(t: &DynamicObject) -> &str {
    t.data["status"]["phase"].as_str().unwrap_or("")
}

fn ended(t: &DynamicObject) -> bool {
    matches!(
        phase(t),
        "Finished" | "Failed" | "Killed" | "Lost" | "Error"
    )
}

fn healthy(t: &DynamicObject) -> bool {
    t.metadata.deletion_timestamp.is_none()
        && !ended(t)
        && t.data["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

fn live(t: &DynamicObject) -> bool {
    t.metadata.deletion_timestamp.is_none() && !ended(t)
}

fn revision(t: &DynamicObject) -> String {
    t.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("mosaic.dev/revision"))
        .cloned()
        .unwrap_or_default()
}

async fn wait_healthy(tasks: &Api<DynamicObject>, n: usize) {
    wait_for(
        Duration::from_secs(60),
        &format!("{n} healthy instances"),
        || async {
            let all = instances(tasks).await;
            all.iter().filter(|t| healthy(t)).count() == n
                && all.iter().filter(|t| live(t)).count() == n
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn an_app_keeps_scales_replaces_and_rolls_its_instances() {
    let s = TestServer::start().unwrap();
    let _agent = s.spawn_agent("apps-node", "cpus=4,memory=2Gi");
    let client = s.client().await.unwrap();
    let tasks: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &mosaic("Task", "tasks"));
    let apps: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &mosaic("App", "apps"));
    let dir = s.dir.path();

    // Three instances, Available and Ready as kubectl waits for them.
    let f = write_file(dir, "app.yaml", &app_yaml(3, "1", "{}"));
    s.kubectl_ok(&["apply", "-f", &f]);
    s.kubectl_ok(&[
        "wait",
        "--for=condition=Available",
        "app/web",
        "--timeout=60s",
    ]);
    s.kubectl_ok(&["wait", "--for=condition=Ready", "app/web", "--timeout=60s"]);
    let all = instances(&tasks).await;
    assert_eq!(all.iter().filter(|t| healthy(t)).count(), 3);
    let app = apps.get("web").await.unwrap();
    let rev1 = app.data["status"]["updateRevision"]
        .as_str()
        .unwrap()
        .to_string();
    for t in &all {
        let name = t.metadata.name.as_deref().unwrap();
        assert!(name.starts_with(&format!("web-{rev1}-")), "{name}");
        let owner = &t.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("App", "web"));
        assert_eq!(t.metadata.labels.as_ref().unwrap()["tier"], "front");
    }
    let table = s.kubectl_ok(&["get", "apps"]);
    assert!(
        table.contains("REPLICAS") && table.contains("UP-TO-DATE") && table.contains("AVAILABLE"),
        "{table}"
    );
    assert_eq!(
        s.kubectl_ok(&["get", "app", "web", "-o", "jsonpath={.status.selector}"]),
        "mosaic.dev/app=web"
    );

    // kubectl scale, through the scale subresource: up, then down, youngest first.
    s.kubectl_ok(&["scale", "app/web", "--replicas=5"]);
    wait_healthy(&tasks, 5).await;
    let mut by_age: Vec<(String, String)> = instances(&tasks)
        .await
        .iter()
        .map(|t| {
            (
                t.metadata.annotations.as_ref().unwrap()["mosaic.dev/launched-at"].clone(),
                t.metadata.name.clone().unwrap(),
            )
        })
        .collect();
    by_age.sort();
    s.kubectl_ok(&["scale", "app/web", "--replicas=2"]);
    wait_healthy(&tasks, 2).await;
    let kept: Vec<String> = instances(&tasks)
        .await
        .iter()
        .filter(|t| live(t))
        .map(|t| t.metadata.name.clone().unwrap())
        .collect();
    let oldest: Vec<String> = by_age.iter().take(2).map(|(_, n)| n.clone()).collect();
    let mut kept_sorted = kept.clone();
    kept_sorted.sort();
    let mut oldest_sorted = oldest.clone();
    oldest_sorted.sort();
    assert_eq!(
        kept_sorted,
        oldest_sorted,
        "the youngest were not killed first: by age {by_age:?}\n{}",
        s.kubectl_ok(&["get", "tasks", "-o", "yaml"])
    );
    let scale = s.kubectl_ok(&[
        "get",
        "--raw",
        "/apis/mosaic.dev/v1alpha1/namespaces/default/apps/web/scale",
    ]);
    let scale: Value = serde_json::from_str(&scale).unwrap();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 2);
    assert_eq!(scale["status"]["selector"], "mosaic.dev/app=web");

    // An instance whose process dies (here it exits 3 when the test asks,
    // through its sandbox): it is cleared away and replaced after the backoff.
    let victim = tasks.get(&kept[0]).await.unwrap();
    let uid = victim.metadata.uid.clone().unwrap();
    let sandbox = s.sandbox("apps-node", "default", &kept[0], &uid, 0);
    std::fs::write(sandbox.join("stop"), "").unwrap();
    wait_for(
        Duration::from_secs(60),
        "the ended instance replaced",
        || async {
            let all = instances(&tasks).await;
            !all.iter()
                .any(|t| t.metadata.name.as_deref() == Some(kept[0].as_str()))
                && all.iter().filter(|t| healthy(t)).count() == 2
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            s.kubectl_ok(&["get", "tasks", "-o", "wide", "--show-labels"]),
            s.kubectl_ok(&["get", "app", "web", "-o", "yaml"])
        )
    });
    let events = s.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=web",
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
    ]);
    assert!(
        events.lines().any(|l| l.starts_with("BackOff: instance ")
            && l.contains(&kept[0])
            && l.contains("waits")),
        "no BackOff event for the ended instance:\n{events}"
    );

    // A rolling upgrade on 5 replicas with minimumHealthCapacity 0.5 and
    // maximumOverCapacity 0.2: never fewer than 3 healthy nor more than 6 running.
    let strategy = "{minimumHealthCapacity: 0.5, maximumOverCapacity: 0.2}";
    let f = write_file(dir, "app.yaml", &app_yaml(5, "1", strategy));
    let before = apps.get("web").await.unwrap().data["spec"]["template"].clone();
    s.kubectl_ok(&["apply", "-f", &f]);
    wait_healthy(&tasks, 5).await;
    // A change outside the template is no new revision.
    let app = apps.get("web").await.unwrap();
    assert_eq!(
        app.data["status"]["updateRevision"],
        rev1.as_str(),
        "{before}\n{}",
        app.data["spec"]["template"]
    );
    let f = write_file(dir, "app.yaml", &app_yaml(5, "2", strategy));
    s.kubectl_ok(&["apply", "-f", &f]);
    let mut samples = 0;
    let mut low = usize::MAX;
    let mut high = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let rev2 = loop {
        let all = instances(&tasks).await;
        assert!(
            std::time::Instant::now() < deadline,
            "the rollout did not end within 90 s: {:?}\n{}\n{}",
            summary(&all),
            s.kubectl_ok(&["get", "app", "web", "-o", "jsonpath={.status}"]),
            std::fs::read_to_string(s.dir.path().join("server.log"))
                .unwrap()
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let up = all.iter().filter(|t| healthy(t)).count();
        let running = all.iter().filter(|t| !ended(t)).count();
        samples += 1;
        low = low.min(up);
        high = high.max(running);
        assert!(
            up >= 3,
            "{up} healthy at sample {samples}: {:?}",
            summary(&all)
        );
        assert!(
            running <= 6,
            "{running} running at sample {samples}: {:?}\n{}",
            summary(&all),
            std::fs::read_to_string(s.dir.path().join("server.log"))
                .unwrap()
                .lines()
                .filter(|l| l.contains("App instances"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let app = apps.get("web").await.unwrap();
        let st = &app.data["status"];
        let rev = st["updateRevision"].as_str().unwrap_or("").to_string();
        let done =
            rev != rev1 && all.len() == 5 && all.iter().all(|t| healthy(t) && revision(t) == rev);
        if done && st["observedGeneration"] == app.metadata.generation.unwrap() {
            break rev;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!("rollout: {samples} samples, at least {low} healthy, at most {high} running");
    assert!(samples > 10, "too few samples ({samples}) to say anything");
    assert!(
        low < 5,
        "the rollout never went below full health: was it a rollout? ({low})"
    );
    s.kubectl_ok(&["wait", "--for=condition=Ready", "app/web", "--timeout=30s"]);
    let app = apps.get("web").await.unwrap();
    assert_eq!(app.data["status"]["currentRevision"], rev2.as_str());
    assert_eq!(app.data["status"]["updatedReplicas"], 5);

    // The history keeps both templates; undo brings the first back, and
    // `mosaic rollout status` follows that rollout to its end.
    let mosaic = |args: &[&str]| {
        let out = std::process::Command::new(crate::support::mosaic_bin())
            .args(args)
            .env("KUBECONFIG", s.kubeconfig())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mosaic {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let history = mosaic(&["rollout", "history", "app/web"]);
    assert!(
        history.contains(&format!("1         {rev1}"))
            && history.contains(&format!("2         {rev2}")),
        "{history}"
    );
    let undone = mosaic(&["rollout", "undo", "app/web"]);
    assert!(
        undone.contains(&format!("rolled back to revision 1 ({rev1})")),
        "{undone}"
    );
    let followed = mosaic(&["rollout", "status", "app/web", "--timeout", "90"]);
    assert!(
        followed.ends_with("app/web successfully rolled out\n"),
        "{followed}"
    );
    let all = instances(&tasks).await;
    assert!(
        all.len() == 5 && all.iter().all(|t| healthy(t) && revision(t) == rev1),
        "{:?}",
        summary(&all)
    );
    let history = mosaic(&["rollout", "history", "app/web"]);
    assert!(history.contains(&format!("3         {rev1}")), "{history}");

    // Instances go with their App (ownerReferences, garbage collector).
    s.kubectl_ok(&["delete", "app", "web", "--wait=true"]);
    wait_for(
        Duration::from_secs(60),
        "instances deleted with their App",
        || async { instances(&tasks).await.is_empty() },
    )
    .await
    .unwrap();
}

fn summary(all: &[DynamicObject]) -> BTreeMap<String, String> {
    all.iter()
        .map(|t| {
            (
                t.metadata.name.clone().unwrap_or_default(),
                format!(
                    "{} {} healthy={} deleting={}",
                    revision(t),
                    phase(t),
                    healthy(t),
                    t.metadata.deletion_timestamp.is_some()
                ),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_apps_crd_rules_refuse_what_it_cannot_honour() {
    let s = TestServer::start().unwrap();
    let dir = s.dir.path();
    let bad = app_yaml(1, "1", "{}").replace(
        "      killGracePeriodSeconds: 1\n",
        "      killGracePeriodSeconds: 1\n      restartPolicy: Always\n",
    );
    let f = write_file(dir, "bad.yaml", &bad);
    let out = s.kubectl(&["apply", "-f", &f]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("spec.template.spec.restartPolicy: Forbidden")
            && err.contains("replaces an instance"),
        "{err}"
    );
    let bad = app_yaml(1, "1", "{minimumHealthCapacity: 2}");
    let f = write_file(dir, "bad.yaml", &bad);
    let out = s.kubectl(&["apply", "-f", &f]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("spec.upgradeStrategy.minimumHealthCapacity"),
        "{err}"
    );
    // The name labels the instances, so it fits a label value.
    let long = "a".repeat(64);
    let bad = app_yaml(1, "1", "{}").replace("name: web", &format!("name: {long}"));
    let f = write_file(dir, "bad.yaml", &bad);
    let out = s.kubectl(&["apply", "-f", &f]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("metadata.name") && err.contains("63 characters"),
        "{err}"
    );
    // A negative scale is refused naming the field.
    let f = write_file(dir, "ok.yaml", &app_yaml(1, "1", "{}"));
    s.kubectl_ok(&["apply", "-f", &f]);
    let out = s.kubectl(&["scale", "app/web", "--replicas=-1"]);
    assert!(!out.status.success());
}

/// charts/examples/service-app with the real Helm 4: `helm install --wait`
/// returns once every instance is healthy, and `helm upgrade --wait` of a
/// changed template once the rollout has replaced every instance.
#[tokio::test]
async fn helm_waits_for_an_apps_instances_and_for_its_rollout() {
    let s = TestServer::start().unwrap();
    let _agent = s.spawn_agent("helm-apps", "cpus=4,memory=2Gi");
    let client = s.client().await.unwrap();
    let tasks: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &mosaic("Task", "tasks"));
    let chart = crate::support::repo_root().join("charts/examples/service-app");
    let chart = chart.to_str().unwrap();
    let helm = |args: &[&str]| {
        let out = s.helm(args);
        assert!(
            out.status.success(),
            "helm {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let current = |all: &[DynamicObject], rev: &str| {
        all.len() == 3 && all.iter().all(|t| healthy(t) && revision(t) == rev)
    };
    let started = std::time::Instant::now();
    helm(&["install", "svc", chart, "--wait", "--timeout", "60s"]);
    let waited = started.elapsed();
    let all = tasks
        .list(&ListParams::default().labels("mosaic.dev/app=svc"))
        .await
        .unwrap()
        .items;
    let rev1 = revision(&all[0]);
    assert!(
        current(&all, &rev1),
        "helm install --wait returned before every instance was healthy (after {waited:?}): {:?}",
        summary(&all)
    );
    // Each instance's first health check comes a second after it starts.
    assert!(waited >= Duration::from_secs(1), "{waited:?}");

    helm(&[
        "upgrade",
        "svc",
        chart,
        "--set",
        "version=2",
        "--wait",
        "--timeout",
        "90s",
    ]);
    let all = tasks
        .list(&ListParams::default().labels("mosaic.dev/app=svc"))
        .await
        .unwrap()
        .items;
    let rev2 = revision(&all[0]);
    assert_ne!(rev1, rev2, "a new template is a new revision");
    assert!(
        current(&all, &rev2),
        "helm upgrade --wait returned before the rollout ended: {:?}",
        summary(&all)
    );
    helm(&["uninstall", "svc", "--wait", "--timeout", "60s"]);
    wait_for(
        Duration::from_secs(60),
        "the App's instances gone",
        || async {
            tasks
                .list(&ListParams::default().labels("mosaic.dev/app=svc"))
                .await
                .unwrap()
                .items
                .is_empty()
        },
    )
    .await
    .unwrap();
}

/// `mosaic drain` of an agent running 2 of an App's 4 instances: their
/// replacements become healthy elsewhere before they are killed (never fewer
/// than 4 healthy, the App's minimum), a plain task is killed at the
/// deadline, the agent ends with no task, and uncordon lets work return.
#[tokio::test]
async fn a_drain_moves_an_apps_instances_first_and_kills_the_rest_at_its_deadline() {
    let s = TestServer::start().unwrap();
    let _a = s.spawn_agent("drain-a", "cpus=2500m,memory=2Gi");
    let client = s.client().await.unwrap();
    let tasks: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &mosaic("Task", "tasks"));
    let dir = s.dir.path();
    let on = |t: &DynamicObject| t.data["status"]["agent"].as_str().unwrap_or("").to_string();
    // A plain task, then the App (two instances fit beside it on drain-a).
    let batch = write_file(
        dir,
        "batch.yaml",
        "apiVersion: mosaic.dev/v1alpha1\nkind: Task\nmetadata: {name: batch}\n\
         spec: {command: sleep 3600, killGracePeriodSeconds: 1, resources: {cpus: 500m, memory: 32Mi}}\n",
    );
    s.kubectl_ok(&["apply", "-f", &batch]);
    crate::support::wait_task(
        &crate::support::tasks_api(client.clone()),
        "batch",
        Duration::from_secs(30),
        |st| st["phase"] == "Running",
    )
    .await
    .unwrap();
    let f = write_file(
        dir,
        "app.yaml",
        &app_yaml(4, "1", "{}").replace("cpus: 100m", "cpus: 1"),
    );
    s.kubectl_ok(&["apply", "-f", &f]);
    wait_for(
        Duration::from_secs(60),
        "2 instances healthy on drain-a",
        || async {
            instances(&tasks)
                .await
                .iter()
                .filter(|t| healthy(t))
                .count()
                == 2
        },
    )
    .await
    .unwrap();
    let _b = s.spawn_agent("drain-b", "cpus=4,memory=2Gi");
    wait_healthy(&tasks, 4).await;
    let before: Vec<String> = instances(&tasks)
        .await
        .iter()
        .filter(|t| on(t) == "drain-a")
        .map(|t| t.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(before.len(), 2, "{:?}", summary(&instances(&tasks).await));

    let mut drain = std::process::Command::new(crate::support::mosaic_bin())
        .args(["drain", "drain-a", "--deadline", "5s"])
        .env("KUBECONFIG", s.kubeconfig())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let mut samples = 0;
    let status = loop {
        let all = instances(&tasks).await;
        let up = all.iter().filter(|t| healthy(t)).count();
        samples += 1;
        assert!(
            up >= 4,
            "{up} healthy during the drain: {:?}",
            summary(&all)
        );
        if let Some(st) = drain.try_wait().unwrap() {
            break st;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "mosaic drain did not end"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let out = drain.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        status.success() && stdout.contains("agent/drain-a drained"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(samples > 10, "{samples}");
    let all = instances(&tasks).await;
    assert!(
        all.iter().filter(|t| live(t)).count() == 4
            && all.iter().filter(|t| live(t)).all(|t| on(t) == "drain-b"),
        "{:?}",
        summary(&all)
    );
    // The plain task was killed (deleted, as kubectl drain evicts) at the
    // deadline, saying why.
    let batch = s.kubectl(&["get", "task", "batch", "-o", "jsonpath={.status.phase}"]);
    let phase = String::from_utf8_lossy(&batch.stdout);
    assert!(
        String::from_utf8_lossy(&batch.stderr).contains("NotFound") || phase == "Killed",
        "{phase}"
    );
    let events = s.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=drain-a",
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(events.contains("DrainDeadline"), "{events}");

    // Uncordoned, it takes work again.
    let out = std::process::Command::new(crate::support::mosaic_bin())
        .args(["uncordon", "drain-a"])
        .env("KUBECONFIG", s.kubeconfig())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.kubectl_ok(&["scale", "app/web", "--replicas=6"]);
    wait_for(
        Duration::from_secs(60),
        "an instance back on drain-a",
        || async {
            instances(&tasks)
                .await
                .iter()
                .any(|t| healthy(t) && on(t) == "drain-a")
        },
    )
    .await
    .unwrap();
}

/// An instance whose health check fails is killed by its agent
/// (HealthCheckFailed) and replaced, the BackOff event saying why.
#[tokio::test]
async fn an_unhealthy_instance_is_killed_and_replaced() {
    let s = TestServer::start().unwrap();
    let _agent = s.spawn_agent("sick-node", "cpus=2,memory=1Gi");
    let client = s.client().await.unwrap();
    let tasks: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &mosaic("Task", "tasks"));
    let yaml = app_yaml(2, "1", "{}").replace(
        "          command: \"true\"",
        "          command: test ! -e \"$MOSAIC_SANDBOX/sick\"",
    );
    assert!(yaml.contains("sick"), "{yaml}");
    let f = write_file(s.dir.path(), "app.yaml", &yaml);
    s.kubectl_ok(&["apply", "-f", &f]);
    wait_healthy(&tasks, 2).await;
    let victim = instances(&tasks).await.remove(0);
    let name = victim.metadata.name.clone().unwrap();
    let uid = victim.metadata.uid.clone().unwrap();
    std::fs::write(
        s.sandbox("sick-node", "default", &name, &uid, 0)
            .join("sick"),
        "",
    )
    .unwrap();
    wait_for(
        Duration::from_secs(60),
        "the unhealthy instance replaced",
        || async {
            let all = instances(&tasks).await;
            !all.iter()
                .any(|t| t.metadata.name.as_deref() == Some(name.as_str()))
                && all.iter().filter(|t| healthy(t)).count() == 2
        },
    )
    .await
    .unwrap();
    let events = s.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=web",
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
    ]);
    assert!(
        events.lines().any(|l| l.starts_with("BackOff: instance ")
            && l.contains(&name)
            && l.contains("HealthCheckFailed")),
        "no BackOff event naming the failed health check:\n{events}"
    );
}
