//! A whole cluster: `mosaic server` (with its in-process controllers) and
//! `mosaic agent` processes running real tasks, and `mosaic up`.

use crate::support::{TestServer, mosaic_bin, tasks_api, wait_task};
use kube::api::PostParams;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn task(name: &str, command: &str, cpus: &str) -> kube::api::DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "mosaic.dev/v1alpha1", "kind": "Task",
        "metadata": {"name": name},
        "spec": {"command": command, "resources": {"cpus": cpus, "memory": "32Mi"}}}))
    .unwrap()
}

/// The process group of a running task, from the agent's "running as process N" message.
fn pgid_of(status: &serde_json::Value) -> i32 {
    let msg = status["message"].as_str().unwrap_or_default();
    msg.rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no process id in {msg:?}"))
}

fn phase_is(p: &'static str) -> impl Fn(&serde_json::Value) -> bool {
    move |s| s["phase"] == p
}

#[tokio::test]
async fn an_agent_runs_tasks_and_reports_their_exit_codes() {
    let s = TestServer::start().unwrap();
    let _agent = s.spawn_agent("node-a", "cpus=2,memory=1Gi");
    let api = tasks_api(s.client().await.unwrap());
    api.create(
        &PostParams::default(),
        &task("ok", "echo Hello World", "500m"),
    )
    .await
    .unwrap();
    api.create(&PostParams::default(), &task("fail", "exit 3", "500m"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &task("huge", "true", "64"))
        .await
        .unwrap();

    let st = wait_task(&api, "ok", Duration::from_secs(30), phase_is("Finished"))
        .await
        .unwrap();
    assert_eq!(
        (st["exitCode"].as_i64(), st["reason"].as_str()),
        (Some(0), Some("Completed")),
        "{st}"
    );
    assert_eq!(st["agent"], "node-a");
    // Its life shows in `kubectl describe` as Events from the scheduler and the agent.
    let described = s.kubectl_ok(&["describe", "task", "ok"]);
    for reason in ["Scheduled", "Started", "Finished"] {
        assert!(
            described.contains(reason),
            "no {reason} event in:\n{described}"
        );
    }
    // The controllers' metrics are on the server's /metrics.
    let metrics = s
        .client()
        .await
        .unwrap()
        .request_text(http::Request::get("/metrics").body(Vec::new()).unwrap())
        .await
        .unwrap();
    assert!(
        metrics.contains("mosaic_scheduler_cycles_total "),
        "{metrics}"
    );
    assert!(
        !metrics.contains("mosaic_scheduler_placements_total 0\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mosaic_controllers_leader 1\n"),
        "{metrics}"
    );
    // Latency histograms: the API server's by verb and resource, the
    // scheduler's binds, and each controller's reconciles.
    let count = |prefix: &str| -> f64 {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in:\n{metrics}"));
        line.rsplit_once(' ').unwrap().1.parse().unwrap()
    };
    let created = "mosaic_apiserver_request_duration_seconds_count{verb=\"create\",resource=\"tasks\",subresource=\"\"}";
    assert!(count(created) >= 1.0, "{metrics}");
    assert!(
        count(
            "mosaic_apiserver_request_duration_seconds_bucket{le=\"+Inf\",verb=\"create\",resource=\"tasks\",subresource=\"\"}"
        ) >= 1.0,
        "{metrics}"
    );
    assert!(
        count("mosaic_scheduler_bind_duration_seconds_count") >= 1.0,
        "{metrics}"
    );
    assert!(
        count("mosaic_controller_reconcile_duration_seconds_count{controller=\"scheduler\"}")
            >= 1.0,
        "{metrics}"
    );
    assert!(
        !metrics.contains("verb=\"watch\""),
        "watches last as long as their clients want: not a latency"
    );
    // `mosaic logs` fetches the output from the agent.
    let out = Command::new(mosaic_bin())
        .args(["logs", "ok", "--kubeconfig"])
        .arg(s.kubeconfig())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello World\n");
    let ready = st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "True", "a finished task is Ready: {st}");

    let st = wait_task(&api, "fail", Duration::from_secs(30), phase_is("Failed"))
        .await
        .unwrap();
    assert_eq!(
        (st["exitCode"].as_i64(), st["reason"].as_str()),
        (Some(3), Some("NonZeroExit")),
        "{st}"
    );

    let st = wait_task(&api, "huge", Duration::from_secs(30), |s| {
        s["reason"] == "Unschedulable"
    })
    .await
    .unwrap();
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("largest agent has cpus=2 "),
        "{st}"
    );
    assert_eq!(st["phase"], "Pending");
    // kubectl wait works on both kinds of outcome.
    s.kubectl_ok(&["wait", "--for=condition=Ready", "task/ok", "--timeout=10s"]);
    s.kubectl_ok(&[
        "wait",
        "--for=condition=Stalled",
        "task/fail",
        "--timeout=10s",
    ]);
}

#[tokio::test]
async fn deleting_a_task_that_ignores_sigterm_kills_it_after_the_grace_period() {
    use futures::StreamExt;
    use kube::runtime::watcher;
    let s = TestServer::start().unwrap();
    let _agent = s.spawn_agent("node-k", "cpus=2,memory=1Gi");
    let api = tasks_api(s.client().await.unwrap());
    // Ignored signals stay ignored across exec: neither the shell nor its sleeps die of SIGTERM.
    let mut t = task(
        "sleeper",
        "trap '' TERM; sleep 300 & sleep 300; wait",
        "100m",
    );
    t.data["spec"]["killGracePeriodSeconds"] = json!(3);
    api.create(&PostParams::default(), &t).await.unwrap();
    let st = wait_task(
        &api,
        "sleeper",
        Duration::from_secs(30),
        phase_is("Running"),
    )
    .await
    .unwrap();
    let pgid: i32 = pgid_of(&st);
    let pid = rustix::process::Pid::from_raw(pgid).unwrap();
    assert!(
        rustix::process::test_kill_process_group(pid).is_ok(),
        "the task's processes run"
    );
    // Every phase the task shows until it is gone.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let wc = watcher::Config::default().fields("metadata.name=sleeper");
    let stream = watcher(api.clone(), wc);
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(Ok(ev)) = stream.next().await {
            let _ = tx.send(ev);
        }
    });
    let deleted_at = Instant::now();
    api.delete("sleeper", &Default::default()).await.unwrap();
    let deadline = deleted_at + Duration::from_secs(3 + 2);
    while rustix::process::test_kill_process_group(pid).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the task's process group {pgid} outlived killGracePeriodSeconds + 2 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let gone_after = deleted_at.elapsed();
    assert!(
        gone_after >= Duration::from_millis(2500),
        "SIGTERM was ignored, so only SIGKILL after the 3 s grace period can end it (gone after {gone_after:?})"
    );
    // It is reported Killed, then the object goes.
    let mut phases = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ev = tokio::time::timeout(
            deadline.saturating_duration_since(Instant::now()),
            rx.recv(),
        )
        .await
        .unwrap_or_else(|_| panic!("the task was not deleted; phases seen: {phases:?}"))
        .expect("watch ended");
        match ev {
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                phases.push((
                    o.data["status"]["phase"].as_str().unwrap_or("").to_string(),
                    o.data["status"]["reason"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                ));
            }
            watcher::Event::Delete(_) => break,
            _ => {}
        }
    }
    assert!(
        phases
            .iter()
            .any(|(p, r)| p == "Killed" && r == "KilledByUser"),
        "the task was not reported Killed before it went: {phases:?}"
    );
}

#[tokio::test]
async fn up_runs_the_demo_stops_cleanly_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let spawn = || {
        Command::new(mosaic_bin())
            .args(["up", "--demo", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut up = crate::support::ChildGuard(spawn());
    let (tx, rx) = std::sync::mpsc::channel();
    let out = up.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(|l| l.ok()) {
            let _ = tx.send(l);
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lines
        .iter()
        .any(|l: &String| l.contains("it printed: Hello World"))
    {
        let l = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no Hello World from mosaic up; it printed {lines:?}"));
        lines.push(l);
    }
    assert!(
        lines.iter().any(|l| l.contains("export KUBECONFIG=")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Finished") && l.contains("exit code 0")),
        "{lines:?}"
    );

    // A long-running task, then SIGTERM: nothing of it may be left.
    let kubeconfig = dir.path().join("data/kubeconfig");
    let client = crate::support::client_from(&kubeconfig).await.unwrap();
    // Its controllers run elected, as `mosaic server`'s do.
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(client.clone(), "mosaic-system");
    let holder = leases
        .get("mosaic-controllers")
        .await
        .unwrap()
        .spec
        .and_then(|s| s.holder_identity)
        .unwrap_or_default();
    assert!(holder.starts_with("mosaic-up@"), "leader: {holder:?}");
    let api = tasks_api(client);
    api.create(&PostParams::default(), &task("long", "sleep 300", "100m"))
        .await
        .unwrap();
    let st = wait_task(&api, "long", Duration::from_secs(30), phase_is("Running"))
        .await
        .unwrap();
    let pgid: i32 = pgid_of(&st);
    let pid = rustix::process::Pid::from_raw(up.0.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = up.0.try_wait().unwrap() {
            assert!(status.success(), "mosaic up exited with {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "mosaic up did not stop within 30 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let group = rustix::process::Pid::from_raw(pgid).unwrap();
    assert!(
        rustix::process::test_kill_process_group(group).is_err(),
        "the task's processes were left behind"
    );

    // Running it again on the same data dir shows the earlier objects.
    let _again = crate::support::ChildGuard(spawn());
    let mut seen = false;
    for _ in 0..200 {
        if let Ok(client) = crate::support::client_from(&kubeconfig).await
            && let Ok(list) = tasks_api(client).list(&Default::default()).await
        {
            let names: Vec<_> = list
                .items
                .iter()
                .filter_map(|t| t.metadata.name.clone())
                .collect();
            if names.iter().any(|n| n == "long")
                && names.iter().any(|n| n.starts_with("hello-world-"))
            {
                seen = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "the earlier tasks are there after a restart");
}

#[tokio::test]
async fn on_failure_tasks_are_retried_with_backoff_up_to_the_limit() {
    let s = TestServer::start().unwrap();
    let _agent = s.spawn_agent("node-r", "cpus=2,memory=1Gi");
    let api = tasks_api(s.client().await.unwrap());
    let mut t = task("flaky", "echo run; exit 1", "100m");
    t.data["spec"]["restartPolicy"] = json!("OnFailure");
    t.data["spec"]["backoffLimit"] = json!(2);
    api.create(&PostParams::default(), &t).await.unwrap();
    let st = wait_task(&api, "flaky", Duration::from_secs(60), |s| {
        s["phase"] == "Failed" && s["attempt"] == 2
    })
    .await
    .unwrap();
    let stalled = st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Stalled")
        .unwrap();
    assert_eq!(stalled["status"], "True", "no retries left: {st}");
    // Give a wrongly scheduled fourth run the time to show up.
    tokio::time::sleep(Duration::from_secs(5)).await;
    // Each run has its own sandbox, where it said so.
    let uid = api.get("flaky").await.unwrap().metadata.uid.unwrap();
    let runs = (0..5)
        .filter(|a| {
            std::fs::read_to_string(
                s.sandbox("node-r", "default", "flaky", &uid, *a)
                    .join("stdout"),
            )
            .is_ok_and(|o| o == "run\n")
        })
        .count();
    assert_eq!(runs, 3, "one run and two restarts");
}

#[tokio::test]
async fn tasks_of_a_lost_agent_go_unreachable_then_lost_and_run_again_elsewhere() {
    let s = TestServer::start_with(&["--agent-lost-after", "2"]).unwrap();
    let fast = ["--heartbeat-seconds", "1"];
    let mut agents = std::collections::HashMap::new();
    agents.insert(
        "node-1",
        s.spawn_agent_with("node-1", "cpus=1,memory=1Gi", &fast),
    );
    agents.insert(
        "node-2",
        s.spawn_agent_with("node-2", "cpus=1,memory=1Gi", &fast),
    );
    let api = tasks_api(s.client().await.unwrap());
    let mut t = task("survivor", "sleep 300", "1");
    t.data["spec"]["restartPolicy"] = json!("OnFailure");
    api.create(&PostParams::default(), &t).await.unwrap();
    let st = wait_task(
        &api,
        "survivor",
        Duration::from_secs(30),
        phase_is("Running"),
    )
    .await
    .unwrap();
    let first = st["agent"].as_str().unwrap().to_string();
    let orphan: i32 = pgid_of(&st);
    // The agent dies without a word: its Lease stops being renewed.
    let mut dead = agents.remove(first.as_str()).unwrap();
    dead.0.kill().unwrap();
    dead.0.wait().unwrap();
    let st = wait_task(
        &api,
        "survivor",
        Duration::from_secs(30),
        phase_is("Unreachable"),
    )
    .await
    .unwrap();
    assert_eq!(st["reason"], "AgentUnreachable", "{st}");
    let ready = s.kubectl_ok(&[
        "get",
        "agent",
        &first,
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
    ]);
    assert_eq!(ready, "False", "the silent agent is not Ready");
    let st = wait_task(&api, "survivor", Duration::from_secs(30), |s| {
        s["phase"] == "Running" && s["agent"] != first.as_str()
    })
    .await
    .unwrap();
    assert_eq!(st["attempt"], 1, "it was Lost and placed again: {st}");
    // The dead agent's process is not the control plane's to kill; clean it up here.
    if let Some(pid) = rustix::process::Pid::from_raw(orphan) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }

    // Started again, the agent finds its old Lease (its first renewal's create
    // answers 409 and it patches instead), renews it from then on and is Ready.
    let renew_time = || {
        s.kubectl_ok(&[
            "get",
            "lease",
            "-n",
            "mosaic-system",
            &first,
            "-o",
            "jsonpath={.spec.renewTime}",
        ])
    };
    let stale = renew_time();
    let _back = s.spawn_agent_with(&first, "cpus=1,memory=1Gi", &fast);
    crate::support::wait_for(
        Duration::from_secs(30),
        "the restarted agent to renew its old Lease",
        || std::future::ready(renew_time() != stale),
    )
    .await
    .unwrap();
    let renewed = renew_time();
    crate::support::wait_for(
        Duration::from_secs(30),
        "the restarted agent's next renewal",
        || std::future::ready(renew_time() != renewed),
    )
    .await
    .unwrap();
    crate::support::wait_for(
        Duration::from_secs(30),
        "the restarted agent to be Ready again",
        || {
            std::future::ready(
                s.kubectl_ok(&[
                    "get",
                    "agent",
                    &first,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                ]) == "True",
            )
        },
    )
    .await
    .unwrap();
}
