//! The agent survives `kill -9`: tasks run on under their executors, and the
//! agent that comes back adopts them, reports the ones that ended while it was
//! away with their real outcome, and kills the ones deleted meanwhile.

use crate::support::{ChildGuard, TestServer, tasks_api, wait_for, wait_task};
use kube::api::PostParams;
use serde_json::json;
use std::time::Duration;

fn task(name: &str, command: &str) -> kube::api::DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "mosaic.dev/v1alpha1", "kind": "Task",
        "metadata": {"name": name},
        "spec": {"command": command, "resources": {"cpus": "100m", "memory": "32Mi"}}}))
    .unwrap()
}

/// A command that waits for a file `go` in its sandbox, then exits `code`.
fn wait_then_exit(code: i32) -> String {
    format!("while [ ! -e \"$MOSAIC_SANDBOX/go\" ]; do sleep 0.05; done; exit {code}")
}

/// Where the task `name` waits for its `go` file.
async fn go_file(
    s: &TestServer,
    api: &kube::Api<kube::api::DynamicObject>,
    name: &str,
) -> std::path::PathBuf {
    let uid = api.get(name).await.unwrap().metadata.uid.unwrap();
    s.sandbox("node-r", "default", name, &uid, 0).join("go")
}

fn pgid_of(status: &serde_json::Value) -> rustix::process::Pid {
    let msg = status["message"].as_str().unwrap_or_default();
    msg.rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .and_then(rustix::process::Pid::from_raw)
        .unwrap_or_else(|| panic!("no process id in {msg:?}"))
}

fn alive(group: rustix::process::Pid) -> bool {
    rustix::process::test_kill_process_group(group).is_ok()
}

fn kill9(agent: &mut ChildGuard) {
    agent.0.kill().expect("SIGKILL to the agent");
    agent.0.wait().expect("reaping the agent");
}

#[tokio::test]
async fn tasks_outlive_an_agent_killed_with_sigkill_and_are_reported_when_it_returns() {
    let s = TestServer::start().unwrap();
    let mut agent = s.spawn_agent("node-r", "cpus=2,memory=1Gi");
    let api = tasks_api(s.client().await.unwrap());
    api.create(&PostParams::default(), &task("runs-on", &wait_then_exit(5)))
        .await
        .unwrap();
    api.create(
        &PostParams::default(),
        &task("ends-meanwhile", &wait_then_exit(0)),
    )
    .await
    .unwrap();
    api.create(
        &PostParams::default(),
        &task("deleted-meanwhile", "sleep 300"),
    )
    .await
    .unwrap();
    let mut groups = Vec::new();
    for name in ["runs-on", "ends-meanwhile", "deleted-meanwhile"] {
        let st = wait_task(&api, name, Duration::from_secs(30), |s| {
            s["phase"] == "Running"
        })
        .await
        .unwrap();
        groups.push(pgid_of(&st));
    }
    let [a, b, c] = groups[..] else {
        unreachable!()
    };
    let (go_a, go_b) = (
        go_file(&s, &api, "runs-on").await,
        go_file(&s, &api, "ends-meanwhile").await,
    );

    kill9(&mut agent);
    assert!(
        alive(a) && alive(b) && alive(c),
        "tasks died with their agent"
    );
    // One task ends while no agent watches; another is deleted.
    std::fs::write(&go_b, "").unwrap();
    wait_for(
        Duration::from_secs(10),
        "the task ending meanwhile to exit",
        || async { !alive(b) },
    )
    .await
    .unwrap();
    api.delete("deleted-meanwhile", &Default::default())
        .await
        .unwrap();

    let _agent = s.spawn_agent("node-r", "cpus=2,memory=1Gi");
    let st = wait_task(&api, "ends-meanwhile", Duration::from_secs(30), |s| {
        s["phase"] == "Finished"
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n{}",
            crate::support::log_tail(&s.dir.path().join("agent-node-r.log"), 40)
        )
    });
    assert_eq!(
        (st["exitCode"].as_i64(), st["reason"].as_str()),
        (Some(0), Some("Completed")),
        "{st}"
    );
    wait_for(Duration::from_secs(15), "the task deleted meanwhile to be killed and go", || async {
        !alive(c) && matches!(api.get("deleted-meanwhile").await, Err(kube::Error::Api(e)) if e.code == 404)
    })
    .await
    .unwrap();
    // The task that ran on is still running, adopted, and reported with its real exit code.
    assert!(
        alive(a),
        "the running task did not survive the agent's restart"
    );
    let st = api.get("runs-on").await.unwrap().data["status"].clone();
    assert_eq!(st["phase"], "Running", "{st}");
    std::fs::write(&go_a, "").unwrap();
    let st = wait_task(&api, "runs-on", Duration::from_secs(30), |s| {
        s["phase"] == "Failed"
    })
    .await
    .unwrap();
    assert_eq!(
        (st["exitCode"].as_i64(), st["reason"].as_str()),
        (Some(5), Some("NonZeroExit")),
        "{st}"
    );
}
