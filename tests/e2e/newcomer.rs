//! What a newcomer meets: `mosaic up`, every example in examples/ reaching its
//! documented end state, `mosaic execute`, `mosaic get`/`top`, and the error
//! messages for the usual mistakes.

use crate::support::{Up, mosaic_bin, tasks_api, wait_for, wait_task};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
        .display()
        .to_string()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[tokio::test]
async fn every_example_reaches_its_documented_end_state() {
    let up = Up::start().await;
    let api = tasks_api(up.client().await);
    // Every example in the folder is covered here, so a new one needs a test.
    let mut found: Vec<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    found.sort();
    assert_eq!(
        found,
        [
            "external-framework",
            "health-check.yaml",
            "hello-world.yaml",
            "reservation.yaml",
            "retried-task.yaml",
            "weighted-roles.yaml"
        ],
        "an example without a test"
    );

    // hello-world: Finished, and its output is Hello World.
    let out = ok(&up.mosaic(&[
        "apply",
        "-f",
        &example("hello-world.yaml"),
        "--wait",
        "--timeout",
        "60s",
    ]));
    assert!(out.contains("task.mosaic.dev/hello-world created"), "{out}");
    assert!(out.contains("all 1 object(s) ready"), "{out}");
    let st = api.get("hello-world").await.unwrap().data["status"].clone();
    assert_eq!(
        (st["phase"].as_str(), st["exitCode"].as_i64()),
        (Some("Finished"), Some(0)),
        "{st}"
    );
    assert_eq!(ok(&up.mosaic(&["logs", "hello-world"])), "Hello World\n");
    // Applying it again changes nothing.
    let again = ok(&up.mosaic(&["apply", "-f", &example("hello-world.yaml")]));
    assert!(
        again.contains("task.mosaic.dev/hello-world unchanged"),
        "{again}"
    );

    // retried-task: two failed runs, then Finished on the third.
    ok(&up.mosaic(&[
        "apply",
        "-f",
        &example("retried-task.yaml"),
        "--wait",
        "--timeout",
        "60s",
    ]));
    // --wait returns once a run is under way (a running task is Ready); the end comes after.
    let st = wait_task(&api, "flaky", Duration::from_secs(30), |s| {
        s["phase"] == "Finished"
    })
    .await
    .unwrap();
    assert_eq!(st["attempt"].as_i64(), Some(2), "{st}");
    assert_eq!(ok(&up.mosaic(&["logs", "flaky"])), "run 3\n");

    // health-check: Running and Ready once its HTTP check passes.
    ok(&up.mosaic(&[
        "apply",
        "-f",
        &example("health-check.yaml"),
        "--wait",
        "--timeout",
        "60s",
    ]));
    let st = api.get("web").await.unwrap().data["status"].clone();
    assert_eq!(st["phase"], "Running", "{st}");
    let ready = st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
        .clone();
    assert_eq!(ready["status"], "True", "{st}");
    api.delete("web", &Default::default()).await.unwrap();
    wait_for(Duration::from_secs(30), "task web to go", || async {
        matches!(api.get("web").await, Err(kube::Error::Api(e)) if e.code == 404)
    })
    .await
    .unwrap();

    // reservation: Bound on an agent, and the prod task runs there.
    ok(&up.mosaic(&[
        "apply",
        "-f",
        &example("reservation.yaml"),
        "--wait",
        "--timeout",
        "60s",
    ]));
    let client = up.client().await;
    let reservations: kube::Api<kube::api::DynamicObject> = kube::Api::all_with(
        client.clone(),
        &crate::support::mosaic("Reservation", "reservations"),
    );
    let r = reservations.get("prod-capacity").await.unwrap().data["status"].clone();
    let st = api.get("prod-service").await.unwrap().data["status"].clone();
    assert_eq!(
        (r["phase"].as_str(), st["phase"].as_str()),
        (Some("Bound"), Some("Running")),
        "{r} {st}"
    );
    assert_eq!(r["agent"], st["agent"], "{r} {st}");
    ok(&up.mosaic(&["get", "reservations"]));
    api.delete("prod-service", &Default::default())
        .await
        .unwrap();
    reservations
        .delete("prod-capacity", &Default::default())
        .await
        .unwrap();

    // external-framework: the program accepts offers for its 6 jobs and exits 0 when they are done.
    let out = Command::new("python3")
        .arg(example("external-framework/framework.py"))
        .args(["--jobs", "6", "--timeout", "60"])
        .env("KUBECONFIG", up.kubeconfig())
        .env("KUBECTL", crate::support::kubectl_bin())
        .output()
        .unwrap();
    let printed = ok(&out);
    assert!(
        printed.contains("accepted offer") && printed.contains("all 6 jobs finished"),
        "{printed}"
    );
    for i in 0..6 {
        let st = api.get(&format!("word-count-{i}")).await.unwrap().data["status"].clone();
        assert_eq!(st["phase"], "Finished", "{st}");
    }
    let offers: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
        client.clone(),
        "default",
        &crate::support::mosaic("Offer", "offers"),
    );
    wait_for(
        Duration::from_secs(30),
        "the suppressed framework's offers to be rescinded",
        || async {
            offers
                .list(&Default::default())
                .await
                .is_ok_and(|l| l.items.is_empty())
        },
    )
    .await
    .unwrap();

    // weighted-roles: the 2 cpus split 3:1 between the roles while both have work waiting.
    ok(&up.mosaic(&["apply", "-f", &example("weighted-roles.yaml")]));
    let running = |fw: &'static str| {
        let api = api.clone();
        async move {
            api.list(&Default::default())
                .await
                .unwrap()
                .items
                .iter()
                .filter(|t| {
                    t.data["spec"]["framework"] == fw && t.data["status"]["phase"] == "Running"
                })
                .count()
        }
    };
    let waited = wait_for(
        Duration::from_secs(60),
        "6 analytics and 2 batch tasks Running",
        || async { running("analytics").await == 6 && running("batch").await == 2 },
    )
    .await;
    if let Err(e) = waited {
        panic!(
            "{e}: analytics {} batch {}",
            running("analytics").await,
            running("batch").await
        );
    }
    // Roles and frameworks report the same numbers in their status.
    let client = up.client().await;
    let roles: kube::Api<kube::api::DynamicObject> =
        kube::Api::all_with(client.clone(), &crate::support::mosaic("Role", "roles"));
    let fws: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
        client.clone(),
        "default",
        &crate::support::mosaic("Framework", "frameworks"),
    );
    wait_for(
        Duration::from_secs(15),
        "role and framework status to show the split",
        || async {
            let r = roles.get("analytics").await.unwrap().data["status"].clone();
            let f = fws.get("batch").await.unwrap().data["status"].clone();
            r["dominantShare"] == "0.7500"
                && r["conditions"][0]["status"] == "True"
                && f["tasks"]["Running"] == 2
                && f["tasks"]["Pending"] == 8
                && f["dominantShare"] == "0.2500"
        },
    )
    .await
    .unwrap();
    let top = ok(&up.mosaic(&["top"]));
    assert!(
        top.lines()
            .any(|l| l.starts_with("analytics") && l.contains("75.0%")),
        "{top}"
    );
    assert!(
        top.lines()
            .any(|l| l.starts_with("batch") && l.contains("25.0%")),
        "{top}"
    );
    let get = ok(&up.mosaic(&["get", "tasks", "-n", "default"]));
    assert!(get.lines().next().unwrap().starts_with("NAME"), "{get}");
    assert_eq!(
        get.lines().filter(|l| l.contains("Running")).count(),
        8,
        "{get}"
    );
}

#[tokio::test]
async fn execute_streams_output_and_exits_with_the_task_exit_code() {
    let up = Up::start().await;
    let out = up.mosaic(&["execute", "--command", "echo hi"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hi\n");
    let out = up.mosaic(&["execute", "--command", "exit 7", "--name", "seven"]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("task seven Failed (NonZeroExit"), "{err}");
    let api = tasks_api(up.client().await);
    let st = wait_task(&api, "seven", Duration::from_secs(5), |s| {
        s["phase"] == "Failed"
    })
    .await
    .unwrap();
    assert_eq!(st["exitCode"], 7);
}

#[tokio::test]
async fn usual_mistakes_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(mosaic_bin())
            .args(args)
            .env_remove("KUBECONFIG")
            .env_remove("RUST_BACKTRACE")
            .env("HOME", dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        text(&out.stderr)
    };
    // A kubeconfig path that does not exist.
    let err = run(&["get", "tasks", "--kubeconfig", "/nonexistent/kubeconfig"]);
    assert!(
        err.contains("there is no kubeconfig at /nonexistent/kubeconfig"),
        "{err}"
    );
    // No kubeconfig at all.
    let err = run(&["get", "tasks"]);
    assert!(err.contains("no kubeconfig: pass --kubeconfig"), "{err}");

    // A server that is down: a kubeconfig for a port nobody listens on.
    let up = Up::start().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kc = std::fs::read_to_string(up.kubeconfig()).unwrap();
    let server_line = kc
        .lines()
        .find(|l| l.trim_start().starts_with("server:"))
        .unwrap();
    let down = dir.path().join("down.kubeconfig");
    std::fs::write(
        &down,
        kc.replace(
            server_line,
            &format!("    server: https://127.0.0.1:{port}"),
        ),
    )
    .unwrap();
    let down = down.display().to_string();
    for args in [
        vec!["get", "tasks", "--kubeconfig", &down],
        vec!["execute", "--command", "true", "--kubeconfig", &down],
    ] {
        let err = run(&args);
        assert!(
            err.contains(&format!(
                "cannot reach the API server at https://127.0.0.1:{port}"
            )) && err.contains("is Mosaic running there?"),
            "{args:?}: {err}"
        );
    }

    // YAML with a syntax error: the line and column are named.
    let kc = up.kubeconfig().display().to_string();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: mosaic.dev/v1alpha1\nkind: Task\nmetadata:\n  name: bad\n spec: [x\n",
    )
    .unwrap();
    let err = run(&[
        "apply",
        "-f",
        &bad.display().to_string(),
        "--kubeconfig",
        &kc,
    ]);
    assert!(
        err.contains("invalid YAML") && err.contains("line 5 column 2"),
        "{err}"
    );
    // An unknown kind.
    let unknown = dir.path().join("unknown.yaml");
    std::fs::write(
        &unknown,
        "apiVersion: mosaic.dev/v1alpha1\nkind: Tusk\nmetadata:\n  name: t\n",
    )
    .unwrap();
    let err = run(&[
        "apply",
        "-f",
        &unknown.display().to_string(),
        "--kubeconfig",
        &kc,
    ]);
    assert!(
        err.contains("the server has no kind \"Tusk\" in mosaic.dev/v1alpha1"),
        "{err}"
    );
    let err = run(&["get", "tusks", "--kubeconfig", &kc]);
    assert!(err.contains("unknown kind \"tusks\""), "{err}");
    // Nothing of the bad files was stored.
    let api = tasks_api(up.client().await);
    assert!(
        api.list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}
