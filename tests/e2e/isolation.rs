//! A task author is not root (issue 21, items 1 and 2), tested as the attack:
//! alice, a ServiceAccount allowed only to work with Tasks in `team-a`, runs
//! a task that tries what a hostile task author would try on a shared agent
//! (another team's output, secrets and environment, the server's and the
//! agent's data, cgroups, the agent itself, a process that outlives it), and
//! the test asserts each attempt failed. Then who a task may run as: root
//! refused without RBAC's `use` on `taskusers/root` and run with it; a user
//! outside the agent's allowed list refused by the agent; a forged grant
//! annotation worth nothing; a command health check run as the task's user.
//! Needs root and cgroups (MOSAIC_SKIP_CGROUP_TESTS=1 skips it).

use crate::support::*;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

fn isolation_available() -> bool {
    if std::env::var_os("MOSAIC_SKIP_CGROUP_TESTS").is_some() {
        eprintln!("MOSAIC_SKIP_CGROUP_TESTS is set: skipping an isolation test");
        return false;
    }
    true
}

fn tasks_in(client: kube::Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client, ns, &mosaic("Task", "tasks"))
}

fn task_obj(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "mosaic.dev/v1alpha1", "kind": "Task",
        "metadata": {"name": name},
        "spec": spec}))
    .expect("a valid Task")
}

/// The sandbox of attempt 0 of a task on agent `agent` of server `s`.
async fn sandbox(
    s: &TestServer,
    api: &Api<DynamicObject>,
    agent: &str,
    ns: &str,
    name: &str,
) -> PathBuf {
    let uid = api.get(name).await.unwrap().metadata.uid.unwrap();
    s.sandbox(agent, ns, name, &uid, 0)
}

/// alice: a ServiceAccount in team-a allowed to work with Tasks there and
/// nothing else; her Tasks API.
async fn alice(s: &TestServer) -> Api<DynamicObject> {
    let kubeconfig = s.service_account_kubeconfig("team-a", "alice");
    s.kubectl_ok(&[
        "create",
        "role",
        "task-author",
        "-n",
        "team-a",
        "--verb=get,list,watch,create,patch,delete",
        "--resource=tasks.mosaic.dev",
    ]);
    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "alice-authors",
        "-n",
        "team-a",
        "--role=task-author",
        "--serviceaccount=team-a:alice",
    ]);
    tasks_in(client_from(&kubeconfig).await.unwrap(), "team-a")
}

fn phase_is(p: &'static str) -> impl Fn(&Value) -> bool {
    move |st: &Value| st["phase"] == p
}

fn ended(st: &Value) -> bool {
    matches!(st["phase"].as_str(), Some("Finished" | "Failed" | "Killed"))
}

/// What alice's task tries; each line it prints is `WHAT=RESULT`.
const ATTACK: &str = r#"
echo "uid=$(id -u)"
cat /etc/shadow >/dev/null 2>&1 && echo shadow=read || echo shadow=denied
for f in "$SERVER_DIR/pki/ca.key" "$SERVER_DIR/pki/admin.token" "$SERVER_DIR/kubeconfig" "$AGENT_KUBECONFIG"; do
  cat "$f" >/dev/null 2>&1 && echo "server-file=read $f" || echo server-file=denied
done
ls "$AGENT_DIR/executors" 2>/dev/null | grep -q . && echo agent-dir=listed || echo agent-dir=denied
cat "$VICTIM_SANDBOX/stdout" >/dev/null 2>&1 && echo victim-sandbox=read || echo victim-sandbox=denied
cat "/proc/$VICTIM_PID/environ" >/dev/null 2>&1 && echo victim-environ=read || echo victim-environ=denied
grep -l victim-secret-7d1 /proc/*/environ >/dev/null 2>&1 && echo secret=found || echo secret=hidden
wrote=0
for f in $(find /sys/fs/cgroup -maxdepth 4 -name cgroup.procs 2>/dev/null); do
  (echo $$ > "$f") 2>/dev/null && wrote=$((wrote+1))
done
echo "cgroup-writes=$wrote"
kill -KILL "$AGENT_PID" 2>/dev/null && echo agent=signalled || echo agent=untouched
echo "thp=$(awk '/^THP_enabled/ {print $2}' /proc/self/status)"
env | cut -d= -f1 | sort | tr '\n' ' ' | sed 's/^/env=/'; echo
setsid sleep 6177 >/dev/null 2>&1 < /dev/null &
echo done
"#;

#[tokio::test]
async fn a_hostile_task_can_reach_nothing_outside_its_sandbox() {
    if !isolation_available() {
        return;
    }
    let s = TestServer::start().unwrap();
    let agent = s.spawn_agent("iso-1", "cpus=2,memory=2Gi");
    for ns in ["team-a", "team-b"] {
        s.kubectl_ok(&["create", "namespace", ns]);
    }
    let admin = s.client().await.unwrap();
    // Another team's task, with a secret in its environment and output in its sandbox.
    let victims = tasks_in(admin.clone(), "team-b");
    let victim = task_obj(
        "victim",
        json!({"command": "echo victim-output; sleep 120", "env": [{"name": "TOKEN", "value": "victim-secret-7d1"}],
               "resources": {"cpus": "100m", "memory": "64Mi"}, "killGracePeriodSeconds": 1}),
    );
    victims
        .create(&PostParams::default(), &victim)
        .await
        .unwrap();
    let st = wait_task(
        &victims,
        "victim",
        Duration::from_secs(30),
        phase_is("Running"),
    )
    .await
    .unwrap();
    let victim_pid: String = st["message"]
        .as_str()
        .and_then(|m| m.rsplit(' ').next())
        .unwrap()
        .into();
    let victim_sandbox = sandbox(&s, &victims, "iso-1", "team-b", "victim").await;

    // alice may create and read Tasks in team-a, nothing else.
    let alice = alice(&s).await;
    let env = |k: &str, v: String| json!({"name": k, "value": v});
    let attack = task_obj(
        "attack",
        json!({"command": ATTACK, "resources": {"cpus": "100m", "memory": "64Mi"},
        "env": [
            env("SERVER_DIR", s.dir.path().display().to_string()),
            env("AGENT_DIR", s.dir.path().join("agents/iso-1").display().to_string()),
            env("AGENT_KUBECONFIG", s.agent_kubeconfig().display().to_string()),
            env("VICTIM_SANDBOX", victim_sandbox.display().to_string()),
            env("VICTIM_PID", victim_pid.clone()),
            env("AGENT_PID", agent.0.id().to_string()),
        ]}),
    );
    alice.create(&PostParams::default(), &attack).await.unwrap();
    let st = wait_task(&alice, "attack", Duration::from_secs(30), ended)
        .await
        .unwrap();
    let out_path = sandbox(&s, &alice, "iso-1", "team-a", "attack")
        .await
        .join("stdout");
    let out = std::fs::read_to_string(&out_path).unwrap();
    assert_eq!(st["phase"], "Finished", "status {st}; output:\n{out}");
    let line = |key: &str| -> String {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key}= line in the task's output:\n{out}"))
            .to_string()
    };
    assert_ne!(line("uid"), "0", "the task ran as root:\n{out}");
    assert_eq!(line("shadow"), "denied", "{out}");
    for l in out.lines().filter(|l| l.starts_with("server-file=")) {
        assert_eq!(l, "server-file=denied", "{out}");
    }
    assert_eq!(out.matches("server-file=denied").count(), 4, "{out}");
    for key in ["agent-dir", "victim-sandbox", "victim-environ"] {
        assert_eq!(line(key), "denied", "{key}:\n{out}");
    }
    assert_eq!(line("secret"), "hidden", "{out}");
    assert_eq!(line("cgroup-writes"), "0", "{out}");
    assert_eq!(line("agent"), "untouched", "{out}");
    // The executor's allocator turns huge pages off for itself; not for the task.
    assert_eq!(
        line("thp"),
        "1",
        "the task inherited the executor's THP setting:\n{out}"
    );
    let names: Vec<String> = line("env").split_whitespace().map(str::to_string).collect();
    let allowed = [
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "PWD",
        "SHLVL",
        "OLDPWD",
        "MOSAIC_SANDBOX",
        "MOSAIC_TASK",
        "SERVER_DIR",
        "AGENT_DIR",
        "AGENT_KUBECONFIG",
        "VICTIM_SANDBOX",
        "VICTIM_PID",
        "AGENT_PID",
    ];
    for n in &names {
        assert!(
            allowed.contains(&n.as_str()),
            "the task's environment holds {n}: {names:?}"
        );
    }
    // The daemonised child ended with the task.
    wait_for(
        Duration::from_secs(5),
        "the task's `setsid sleep 6177` to be gone",
        || async {
            std::process::Command::new("pgrep")
                .args(["-f", "sleep 6177"])
                .output()
                .is_ok_and(|o| !o.status.success())
        },
    )
    .await
    .unwrap();
    // The victim and the agent are unharmed.
    let v = victims.get("victim").await.unwrap();
    assert_eq!(
        v.data["status"]["phase"], "Running",
        "{:?}",
        v.data["status"]
    );
    assert!(
        std::fs::read_to_string(victim_sandbox.join("stdout"))
            .unwrap()
            .contains("victim-output")
    );
    let mut agent = agent;
    assert!(agent.0.try_wait().unwrap().is_none(), "the agent died");
}

#[tokio::test]
async fn running_as_root_or_an_unlisted_user_needs_a_grant() {
    if !isolation_available() {
        return;
    }
    let s = TestServer::start().unwrap();
    let _agent = s.spawn_agent("iso-2", "cpus=2,memory=2Gi");
    s.kubectl_ok(&["create", "namespace", "team-a"]);
    let alice = alice(&s).await;
    let small = |user: &str, cmd: &str| json!({"command": cmd, "user": user, "resources": {"cpus": "100m", "memory": "32Mi"}});

    // An administrator's root task, not yet placed: alice, who may patch Tasks
    // but not use root, cannot put her own command under its grant.
    let admin_tasks = tasks_in(s.client().await.unwrap(), "team-a");
    let mut pending = task_obj("admins-root", small("root", "id -u"));
    pending.data["spec"]["agentSelector"] = json!({"matchLabels": {"nowhere": "true"}});
    admin_tasks
        .create(&PostParams::default(), &pending)
        .await
        .unwrap();
    let hijack = json!({"spec": {"command": "cat /etc/shadow"}});
    let err = alice
        .patch(
            "admins-root",
            &Default::default(),
            &kube::api::Patch::Merge(&hijack),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("UserNotAllowed"), "{err}");
    admin_tasks
        .delete("admins-root", &Default::default())
        .await
        .unwrap();

    // Root without the grant: refused at the API, naming the policy; a forged
    // grant annotation changes nothing.
    let mut as_root = task_obj("as-root", small("root", "id -u"));
    as_root
        .metadata
        .annotations
        .get_or_insert_default()
        .insert("mosaic.dev/task-user-grant".into(), "root".into());
    let err = alice
        .create(&PostParams::default(), &as_root)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("UserNotAllowed") && msg.contains("taskusers") && msg.contains("403"),
        "{msg}"
    );
    assert!(alice.get_opt("as-root").await.unwrap().is_none());

    // A user the agent does not list, with a forged grant: the server drops
    // the annotation and the agent refuses the task.
    let mut unlisted = task_obj("unlisted", small("4242", "id -u"));
    unlisted
        .metadata
        .annotations
        .get_or_insert_default()
        .insert("mosaic.dev/task-user-grant".into(), "4242".into());
    alice
        .create(&PostParams::default(), &unlisted)
        .await
        .unwrap();
    let stored = alice.get("unlisted").await.unwrap();
    assert!(
        !stored
            .annotations()
            .contains_key("mosaic.dev/task-user-grant"),
        "a client-set grant was kept: {:?}",
        stored.annotations()
    );
    let st = wait_task(&alice, "unlisted", Duration::from_secs(30), ended)
        .await
        .unwrap();
    assert_eq!(st["reason"], "UserNotAllowed", "{st}");
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("allowed task users"),
        "{st}"
    );

    // With `use` on taskusers/root in team-a, alice's task runs as root.
    // (A Role from YAML: `kubectl create role` checks resources against
    // discovery, and taskusers is a name for RBAC only, as Pod Security's
    // `use` on policies was.)
    let grant = write_file(
        s.dir.path(),
        "root-user.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: root-user\n  namespace: team-a\n\
         rules:\n- apiGroups: [mosaic.dev]\n  resources: [taskusers]\n  resourceNames: [root]\n  verbs: [use]\n\
         ---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: alice-root\n  namespace: team-a\n\
         roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: root-user}\n\
         subjects:\n- {kind: ServiceAccount, name: alice, namespace: team-a}\n",
    );
    s.kubectl_ok(&["apply", "-f", &grant]);
    let granted = task_obj("as-root", small("root", "id -u"));
    wait_for(
        Duration::from_secs(10),
        "alice's grant to take effect",
        || async { alice.create(&PostParams::default(), &granted).await.is_ok() },
    )
    .await
    .unwrap();
    let st = wait_task(&alice, "as-root", Duration::from_secs(30), ended)
        .await
        .unwrap();
    assert_eq!(st["phase"], "Finished", "{st}");
    let out = std::fs::read_to_string(
        sandbox(&s, &alice, "iso-2", "team-a", "as-root")
            .await
            .join("stdout"),
    )
    .unwrap();
    assert_eq!(out.trim(), "0");

    // A task that swaps its output for a link to a file it may not read gets
    // nothing of that file through its logs (the agent reads as root).
    let linker = task_obj(
        "linker",
        json!({"command": "echo mine >&2; rm \"$MOSAIC_SANDBOX/stderr\"; ln -s /etc/shadow \"$MOSAIC_SANDBOX/stderr\"",
               "resources": {"cpus": "100m", "memory": "32Mi"}}),
    );
    alice.create(&PostParams::default(), &linker).await.unwrap();
    wait_task(&alice, "linker", Duration::from_secs(30), ended)
        .await
        .unwrap();
    let out = tokio::process::Command::new(mosaic_bin())
        .args(["logs", "linker", "--stderr", "-n", "team-a", "--kubeconfig"])
        .arg(s.kubeconfig())
        .output()
        .await
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        !shown.contains("root:"),
        "the task's logs showed /etc/shadow: {shown}"
    );
    assert!(!out.status.success(), "{shown}");

    // A command health check runs as the task's user, in its sandbox.
    let checked = task_obj(
        "checked",
        json!({"command": "sleep 60", "resources": {"cpus": "100m", "memory": "32Mi"},
               "killGracePeriodSeconds": 1,
               "healthCheck": {"exec": {"command": "id -u > \"$MOSAIC_SANDBOX/check-uid\""},
                               "periodSeconds": 1}}),
    );
    alice
        .create(&PostParams::default(), &checked)
        .await
        .unwrap();
    wait_task(&alice, "checked", Duration::from_secs(30), |st| {
        st["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
    })
    .await
    .unwrap();
    let uid = std::fs::read_to_string(
        sandbox(&s, &alice, "iso-2", "team-a", "checked")
            .await
            .join("check-uid"),
    )
    .unwrap();
    assert_ne!(uid.trim(), "0", "the health check ran as root");
    assert!(!uid.trim().is_empty());
}
