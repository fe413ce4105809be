//! The chart's RBAC, proven on `mosaic server`: the controllers and an agent run
//! as separate processes with exactly the chart's arguments, ServiceAccount
//! tokens and the chart's ServiceAccounts, Roles and bindings (rendered by
//! `helm template` and applied with kubectl), while the server's audit log
//! records every call they make. A task runs to completion; the calls the code
//! made (derived from the audit, not from a hand list) are each granted by the
//! chart, and each rule the chart grants was used; taking one rule away makes
//! exactly the matching call fail with 403.

use crate::support::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const NS: &str = "mosaic-system";

/// One API call: (API group, resource or resource/subresource, verb).
type Call = (String, String, String);

/// The container args of a rendered workload, with `$(VAR)` expanded from `env`
/// and the flags in `local` given this machine's values (host paths and ports).
fn chart_args(
    docs: &[Value],
    kind: &str,
    env: &[(&str, &str)],
    local: &[(&str, String)],
) -> Vec<String> {
    let workload = docs
        .iter()
        .find(|d| d["kind"] == kind)
        .expect("the workload");
    let args = workload["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap();
    args.iter()
        .map(|a| {
            let mut a = a.as_str().unwrap().to_string();
            for (k, v) in env {
                a = a.replace(&format!("$({k})"), v);
            }
            for (flag, value) in local {
                if a.starts_with(&format!("{flag}=")) {
                    a = format!("{flag}={value}");
                }
            }
            a
        })
        .collect()
}

fn spawn(args: &[String], kubeconfig: &Path, log: PathBuf) -> ChildGuard {
    let child = Command::new(mosaic_bin())
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("spawning mosaic");
    ChildGuard(child)
}

/// Calls per user from the audit log: (user, call, response code).
fn audited(path: &Path) -> Vec<(String, Call, u64)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["objectRef"].is_object())
        .map(|e| {
            let r = &e["objectRef"];
            let resource = match r["subresource"].as_str() {
                Some(sub) => format!("{}/{sub}", r["resource"].as_str().unwrap()),
                None => r["resource"].as_str().unwrap().to_string(),
            };
            (
                e["user"]["username"].as_str().unwrap().to_string(),
                (
                    r["apiGroup"].as_str().unwrap().to_string(),
                    resource,
                    e["verb"].as_str().unwrap().to_string(),
                ),
                e["responseStatus"]["code"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Every (group, resource, verb) the chart's rules grant a ServiceAccount
/// (the chart names each one; it grants no wildcard).
fn granted(docs: &[Value], service_account: &str) -> BTreeSet<Call> {
    let mut out = BTreeSet::new();
    for b in docs
        .iter()
        .filter(|d| d["kind"] == "ClusterRoleBinding" || d["kind"] == "RoleBinding")
    {
        if !b["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == service_account)
        {
            continue;
        }
        let role = docs
            .iter()
            .find(|d| {
                d["kind"] == b["roleRef"]["kind"] && d["metadata"]["name"] == b["roleRef"]["name"]
            })
            .expect("the bound role is in the chart");
        rule_calls(role, &mut out);
    }
    out
}

/// Every (group, resource, verb) a role's rules grant.
fn rule_calls(role: &Value, out: &mut BTreeSet<Call>) {
    for rule in role["rules"].as_array().unwrap() {
        let strings = |f: &str| -> Vec<String> {
            rule[f]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        };
        for g in strings("apiGroups") {
            for r in strings("resources") {
                for v in strings("verbs") {
                    out.insert((g.clone(), r.clone(), v));
                }
            }
        }
    }
}

fn calls_of(log: &[(String, Call, u64)], user: &str) -> BTreeSet<Call> {
    log.iter()
        .filter(|(u, _, _)| u == user)
        .map(|(_, c, _)| c.clone())
        .collect()
}

#[tokio::test]
async fn the_controllers_and_an_agent_work_with_exactly_the_charts_rbac() {
    let audit_dir = tempfile::tempdir().unwrap();
    let audit = audit_dir.path().join("audit.log");
    let s = TestServer::start_with(&["--no-controllers", "--audit-log", audit.to_str().unwrap()])
        .unwrap();
    let dir = s.dir.path().to_path_buf();
    let docs = render_chart(&[]);

    // The chart's ServiceAccounts and RBAC, applied as an operator would.
    let rbac: Vec<Value> = docs
        .iter()
        .filter(|d| {
            matches!(
                d["kind"].as_str().unwrap(),
                "ServiceAccount" | "ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding"
            )
        })
        .cloned()
        .collect();
    // (JSON documents are YAML documents.)
    let manifests: Vec<String> = rbac.iter().map(Value::to_string).collect();
    let list = write_file(&dir, "chart-rbac.yaml", &manifests.join("\n---\n"));
    s.kubectl_ok(&["apply", "-f", &list]);
    let controllers_kc = s.service_account_kubeconfig(NS, "mosaic-controllers");
    let agent_kc = s.service_account_kubeconfig(NS, "mosaic-agent");
    let controllers_user = "system:serviceaccount:mosaic-system:mosaic-controllers";
    // The in-process controllers of `mosaic server` hold the same rules as the chart's.
    let mut builtin = BTreeSet::new();
    for args in [
        &["get", "clusterrole", "mosaic:controllers", "-o", "json"][..],
        &[
            "get",
            "role",
            "mosaic:controllers",
            "-n",
            "mosaic-system",
            "-o",
            "json",
        ],
    ] {
        let role: Value = serde_json::from_str(&s.kubectl_ok(args)).unwrap();
        rule_calls(&role, &mut builtin);
    }
    assert_eq!(
        builtin,
        granted(&docs, "mosaic-controllers"),
        "the built-in mosaic:controllers roles and the chart's differ"
    );
    let agent_user = "system:serviceaccount:mosaic-system:mosaic-agent";

    // The chart's arguments, with this machine's host paths and ports.
    let env = [("NODE_NAME", "chart-node"), ("NODE_IP", "127.0.0.1")];
    let controller_args = chart_args(
        &docs,
        "Deployment",
        &env,
        &[("--metrics-listen", "127.0.0.1:0".into())],
    );
    assert_eq!(controller_args[0], "controllers");
    let agent_data = dir.join("agent-data");
    let mut agent_args = chart_args(
        &docs,
        "DaemonSet",
        &env,
        &[
            ("--data-dir", agent_data.display().to_string()),
            ("--listen", "127.0.0.1:0".into()),
        ],
    );
    assert_eq!(agent_args[0], "agent");
    assert!(
        agent_args.contains(&"--name=chart-node".to_string()),
        "{agent_args:?}"
    );
    // Tests leave no task running behind them.
    agent_args.push("--kill-tasks-on-exit".into());
    let _controllers = spawn(
        &controller_args,
        &controllers_kc,
        dir.join("controllers.log"),
    );
    let agent = spawn(&agent_args, &agent_kc, dir.join("agent.log"));

    // Work that exercises every path: a Mosaic Role, a Reservation, an External
    // framework whose offers time out, a task run to completion (bound through
    // tasks/binding) and one no agent could hold (its status says so).
    let work = write_file(
        &dir,
        "work.yaml",
        "apiVersion: mosaic.dev/v1alpha1\nkind: Role\nmetadata: {name: batch}\nspec: {weight: 1}\n\
         ---\napiVersion: mosaic.dev/v1alpha1\nkind: Reservation\nmetadata: {name: held}\n\
         spec: {role: batch, agent: chart-node, resources: {cpus: 100m, memory: 64Mi}}\n\
         ---\napiVersion: mosaic.dev/v1alpha1\nkind: Framework\nmetadata: {name: ext}\n\
         spec: {scheduler: External, role: batch, offerTimeoutSeconds: 1, refuseSeconds: 1}\n\
         ---\napiVersion: mosaic.dev/v1alpha1\nkind: Task\nmetadata: {name: hello}\n\
         spec: {command: echo hello from the chart, resources: {cpus: 100m, memory: 64Mi}}\n\
         ---\napiVersion: mosaic.dev/v1alpha1\nkind: Task\nmetadata: {name: too-big}\n\
         spec: {command: \"true\", resources: {cpus: \"1000\", memory: 64Mi}}\n\
         ---\napiVersion: mosaic.dev/v1alpha1\nkind: App\nmetadata: {name: svc}\n\
         spec: {replicas: 1, template: {spec: {command: sleep 600, resources: {cpus: 100m, memory: 32Mi}}}}\n",
    );
    s.kubectl_ok(&["apply", "-f", &work]);
    let client = s.client().await.unwrap();
    let tasks = tasks_api(client.clone());
    let ctl_log = dir.join("controllers.log");
    let ag_log = dir.join("agent.log");
    wait_task(&tasks, "hello", Duration::from_secs(60), |st| {
        st["phase"] == "Finished"
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}\ncontrollers:\n{}\nagent:\n{}",
            log_tail(&ctl_log, 30),
            log_tail(&ag_log, 30)
        )
    });
    // Its output, from the agent's endpoint itself (delegated authentication
    // and authorization): an agent with the chart's ServiceAccount has no
    // identity of the cluster CA for the API server to verify.
    let out = Command::new(mosaic_bin())
        .args(["logs", "hello", "--direct", "--kubeconfig"])
        .arg(s.kubeconfig())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from the chart\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Deleted, it goes once the controllers drop their finalizer.
    s.kubectl_ok(&["delete", "task", "hello", "--timeout=60s"]);
    // An App's instance started, then stopped by scaling to zero.
    s.kubectl_ok(&["wait", "--for=condition=Ready", "app/svc", "--timeout=60s"]);
    s.kubectl_ok(&["scale", "app/svc", "--replicas=0"]);
    wait_for(
        Duration::from_secs(60),
        "the App's instance gone",
        || async {
            s.kubectl_ok(&["get", "tasks", "-l", "mosaic.dev/app=svc", "-o", "name"])
                .trim()
                .is_empty()
        },
    )
    .await
    .unwrap();
    // A maintenance window that has begun: the agent is cordoned and
    // drained, and uncordoned at the window's end.
    let start = jiff::Timestamp::now().round(jiff::Unit::Second).unwrap();
    let window =
        format!(r#"{{"spec":{{"maintenance":{{"start":"{start}","durationSeconds":3}}}}}}"#);
    s.kubectl_ok(&[
        "patch",
        "agent",
        "chart-node",
        "--type=merge",
        "-p",
        &window,
    ]);
    wait_for(Duration::from_secs(60), "the window to end", || async {
        let reason = s.kubectl_ok(&[
            "get",
            "agent",
            "chart-node",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Maintenance\")].reason} {.spec.unschedulable}",
        ]);
        reason.trim() == "WindowEnded false"
    })
    .await
    .unwrap();
    // A restarted agent finds its Agent and updates it.
    drop(agent);
    let agent = spawn(&agent_args, &agent_kc, dir.join("agent-2.log"));

    // Every rule the chart grants is used, by the component it is granted to.
    for (user, sa) in [
        (controllers_user, "mosaic-controllers"),
        (agent_user, "mosaic-agent"),
    ] {
        let want = granted(&docs, sa);
        let mut missing = BTreeSet::new();
        let found = wait_for(
            Duration::from_secs(60),
            "every granted rule to be used",
            || {
                missing = want
                    .difference(&calls_of(&audited(&audit), user))
                    .cloned()
                    .collect();
                let done = missing.is_empty();
                async move { done }
            },
        )
        .await;
        assert!(
            found.is_ok(),
            "{sa} was granted, but did not use: {missing:?}"
        );
    }
    // And every call they made was granted: none refused, each within the chart's rules.
    let log = audited(&audit);
    for (user, sa) in [
        (controllers_user, "mosaic-controllers"),
        (agent_user, "mosaic-agent"),
    ] {
        // (An agent first asks for its own identity, which a Mosaic server
        // issues to its bootstrap credential and a Kubernetes cluster does not
        // serve at all: refused here, it goes on with its ServiceAccount.)
        let join = (
            "mosaic.dev".to_string(),
            "agents/certificate".to_string(),
            "create".to_string(),
        );
        let refused: Vec<_> = log
            .iter()
            .filter(|(u, call, code)| u == user && *code == 403 && *call != join)
            .collect();
        assert!(refused.is_empty(), "{sa} was refused: {refused:?}");
        let beyond: BTreeSet<Call> = calls_of(&log, user)
            .difference(&granted(&docs, sa))
            .filter(|c| **c != join)
            .cloned()
            .collect();
        assert!(
            beyond.is_empty(),
            "{sa} made calls the chart does not grant: {beyond:?}"
        );
    }

    // Take the agent's right to write task status away: that very call now fails with 403.
    let rules = s.kubectl_ok(&[
        "get",
        "clusterrole",
        "mosaic-agent",
        "-o",
        "jsonpath={.rules[3].resources[0]}",
    ]);
    assert_eq!(rules, "tasks/status");
    s.kubectl_ok(&[
        "patch",
        "clusterrole",
        "mosaic-agent",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/rules/3"}]"#,
    ]);
    let later = write_file(&dir, "later.yaml", &task_yaml("later", "100m"));
    s.kubectl_ok(&["apply", "-f", &later]);
    let status_patch: Call = ("mosaic.dev".into(), "tasks/status".into(), "patch".into());
    wait_for(
        Duration::from_secs(30),
        "the agent's status write to be refused with 403",
        || {
            let refused = audited(&audit)
                .iter()
                .any(|(u, c, code)| u == agent_user && *c == status_patch && *code == 403);
            async move { refused }
        },
    )
    .await
    .unwrap();
    let others_refused: Vec<_> = audited(&audit)
        .into_iter()
        .filter(|(u, c, code)| {
            u == agent_user && *code == 403 && *c != status_patch && c.1 != "agents/certificate"
        })
        .collect();
    assert!(
        others_refused.is_empty(),
        "only the removed rule's call fails: {others_refused:?}"
    );
    let st = tasks.get("later").await.unwrap();
    assert_ne!(
        st.data["status"]["phase"], "Running",
        "the agent could not say it runs"
    );
    drop(agent);
}
