//! Host ports (issue 24, acceptance 1) against a real `mosaic server` and
//! real agents, driven with kubectl: agents offer port ranges
//! (`--resources ...,ports=[..]`, shown in their capacity); an App of 3
//! replicas whose HTTP health check names its port becomes Available with
//! each instance on distinct host ports, exported as Marathon exports them
//! (`PORT0`, `PORT`, `PORT_<NAME>`, `PORTS`), and `status.endpoints` lists 3
//! addresses the test connects to; a fixed `hostPort` no agent offers waits,
//! is honoured when an agent offering it comes, and a second task asking for
//! it waits until the first lets it go. An agent may not rewrite the ports
//! its task was given; the CRD refuses a health check naming no port, and a
//! task asking for one port twice is told so.

use crate::node_identity::agent_identity_client;
use crate::support::{TestServer, mosaic, wait_for, write_file};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn app_yaml() -> String {
    r#"apiVersion: mosaic.dev/v1alpha1
kind: App
metadata:
  name: echo
spec:
  replicas: 3
  ports:
    - name: http
    - name: admin
  template:
    spec:
      command: >-
        echo "$MOSAIC_TASK $PORT0 $PORT $PORT_HTTP $PORT1 $PORT_ADMIN $PORTS" > "$MOSAIC_SANDBOX/who";
        cd "$MOSAIC_SANDBOX" && exec python3 -m http.server "$PORT_HTTP" --bind 127.0.0.1
      resources:
        cpus: 100m
        memory: 64Mi
      killGracePeriodSeconds: 1
      healthCheck:
        http:
          portName: http
          path: /who
        initialDelaySeconds: 1
        periodSeconds: 1
        timeoutSeconds: 2
"#
    .into()
}

fn fixed_task(name: &str, port: u16) -> String {
    format!(
        r#"apiVersion: mosaic.dev/v1alpha1
kind: Task
metadata:
  name: {name}
spec:
  command: echo "$PORT_FIXED" > "$MOSAIC_SANDBOX/port"; sleep 3600
  ports:
    - name: fixed
      hostPort: {port}
  resources:
    cpus: 100m
    memory: 16Mi
  killGracePeriodSeconds: 1
"#
    )
}

/// GET `path` on `addr` (HTTP/1.0): the body, if the answer is 200.
async fn get(addr: &str, path: &str) -> Result<String, String> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .await
        .map_err(|e| e.to_string())?;
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    if head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200") {
        Ok(body.to_string())
    } else {
        Err(format!("{addr}{path} answered {head:?}"))
    }
}

fn status<'a>(t: &'a DynamicObject, f: &str) -> &'a Value {
    &t.data["status"][f]
}

/// A task's given ports, by name.
fn given(t: &DynamicObject) -> BTreeMap<String, u16> {
    status(t, "ports")
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_string(),
                p["port"].as_u64().unwrap_or_default() as u16,
            )
        })
        .collect()
}

#[tokio::test]
async fn instances_get_distinct_host_ports_and_serve_at_their_endpoints() {
    let s = TestServer::start().unwrap();
    // Ports of their own, so tests running beside this one never share them.
    let base = 20_000 + (std::process::id() % 800) as u16 * 10;
    let (r1, r2, r3) = (
        format!("[{}-{}]", base, base + 3),
        format!("[{}-{}]", base + 4, base + 7),
        format!("[{}]", base + 8),
    );
    let _a1 = s.spawn_agent("ports-1", &format!("cpus=2,memory=1Gi,ports={r1}"));
    let _a2 = s.spawn_agent("ports-2", &format!("cpus=2,memory=1Gi,ports={r2}"));
    let client = s.client().await.unwrap();
    let tasks: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &mosaic("Task", "tasks"));
    let dir = s.dir.path();
    wait_for(
        Duration::from_secs(30),
        "both agents registered",
        || async {
            let out = s.kubectl(&[
                "get",
                "agent",
                "ports-1",
                "-o",
                "jsonpath={.status.capacity.ports}",
            ]);
            String::from_utf8_lossy(&out.stdout) == r1
                && s.kubectl(&["get", "agent", "ports-2"]).status.success()
        },
    )
    .await
    .unwrap();

    // The CRD refuses a health check that names no port; a task asking for
    // one fixed port twice is told it can never run.
    let bad = app_yaml()
        .replace("portName: http", "portName: web")
        .replace("name: echo", "name: bad");
    let out = s.kubectl(&["apply", "-f", &write_file(dir, "bad.yaml", &bad)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted: {err}");
    assert!(
        err.contains("spec.template.spec.healthCheck") && err.contains("portName names none"),
        "{err}"
    );
    let same_name =
        fixed_task("same-name", base).replace("  resources:", "    - name: fixed\n  resources:");
    let out = s.kubectl(&["apply", "-f", &write_file(dir, "same.yaml", &same_name)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted: {err}");
    assert!(
        err.contains("spec.ports[1]") && err.contains("Duplicate value"),
        "{err}"
    );
    let twice = fixed_task("twice", base).replace(
        "  resources:",
        &format!("    - name: again\n      hostPort: {base}\n  resources:"),
    );
    s.kubectl_ok(&["apply", "-f", &write_file(dir, "twice.yaml", &twice)]);
    wait_for(
        Duration::from_secs(30),
        "twice is refused a place",
        || async {
            let t = tasks.get("twice").await.unwrap();
            status(&t, "reason") == "Unschedulable"
                && status(&t, "message")
                    .as_str()
                    .is_some_and(|m| m.contains(&format!("host port {base} twice")))
        },
    )
    .await
    .unwrap();

    // Three instances, each serving on the port it was given.
    s.kubectl_ok(&["apply", "-f", &write_file(dir, "echo.yaml", &app_yaml())]);
    let waited = s.kubectl(&[
        "wait",
        "--for=condition=Available",
        "app/echo",
        "--timeout=90s",
    ]);
    let all = tasks
        .list(&ListParams::default().labels("mosaic.dev/app=echo"))
        .await
        .unwrap()
        .items;
    assert!(
        waited.status.success(),
        "{}; instances: {:?}",
        String::from_utf8_lossy(&waited.stderr),
        all.iter().map(|t| &t.data["status"]).collect::<Vec<_>>()
    );
    // status.endpoints follows the instances' readiness: wait for all 3.
    let apps: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &mosaic("App", "apps"));
    let read = || async {
        let app = apps.get("echo").await.unwrap();
        app.data["status"]["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                let addrs = e["addresses"].as_array().into_iter().flatten();
                (
                    e["name"].as_str().unwrap_or_default().to_string(),
                    addrs.filter_map(|a| a.as_str().map(String::from)).collect(),
                )
            })
            .collect::<BTreeMap<String, Vec<String>>>()
    };
    let three = |e: &BTreeMap<String, Vec<String>>| {
        e.get("http").is_some_and(|a| a.len() == 3) && e.get("admin").is_some_and(|a| a.len() == 3)
    };
    if let Err(e) = wait_for(Duration::from_secs(60), "3 endpoints per port", || async {
        three(&read().await)
    })
    .await
    {
        panic!("{e}: {:?}", read().await);
    }
    let endpoints = read().await;
    let live: Vec<DynamicObject> = tasks
        .list(&ListParams::default().labels("mosaic.dev/app=echo"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|t| status(t, "phase") == "Running")
        .collect();
    assert_eq!(live.len(), 3);
    // Distinct on each agent, and from that agent's ranges.
    let mut per_agent = BTreeMap::<String, BTreeSet<u16>>::new();
    for t in &live {
        let ports = given(t);
        assert_eq!(ports.len(), 2, "{:?}", t.data["status"]);
        let agent = status(t, "agent").as_str().unwrap().to_string();
        let (lo, hi) = if agent == "ports-1" {
            (base, base + 3)
        } else {
            (base + 4, base + 7)
        };
        for p in ports.values() {
            assert!((lo..=hi).contains(p), "{p} outside {agent}'s ports");
            assert!(
                per_agent.entry(agent.clone()).or_default().insert(*p),
                "{p} given twice on {agent}"
            );
        }
    }
    // Each endpoint answers, from the instance given that port, which got
    // its ports in Marathon's variables.
    for addr in &endpoints["http"] {
        let who = get(addr, "/who").await.unwrap();
        let f: Vec<&str> = who.split_whitespace().collect();
        let port: u16 = addr.rsplit_once(':').unwrap().1.parse().unwrap();
        let t = live
            .iter()
            .find(|t| t.metadata.name.as_deref() == Some(f[0]))
            .unwrap_or_else(|| panic!("{addr} is served by {who:?}, no live instance"));
        let ports = given(t);
        assert_eq!(ports["http"], port, "{who}");
        let (http, admin) = (port.to_string(), ports["admin"].to_string());
        assert_eq!(
            f[1..],
            [
                http.as_str(),
                http.as_str(),
                http.as_str(),
                admin.as_str(),
                admin.as_str(),
                format!("{http},{admin}").as_str()
            ],
            "{who}"
        );
        assert!(
            endpoints["admin"].contains(&format!("127.0.0.1:{admin}")),
            "{endpoints:?}"
        );
    }

    // An agent may not rewrite the ports its own task was given.
    let victim = &live[0];
    let owner = status(victim, "agent").as_str().unwrap();
    let as_agent: Api<DynamicObject> = Api::namespaced_with(
        agent_identity_client(&s, owner).await,
        "default",
        &mosaic("Task", "tasks"),
    );
    let forged =
        json!({"status": {"ports": [{"name": "http", "port": 22}, {"name": "admin", "port": 23}]}});
    let name = victim.metadata.name.as_deref().unwrap();
    match as_agent
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&forged))
        .await
    {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 403, "{e:?}");
            assert!(e.message.contains("host ports"), "{e:?}");
        }
        other => panic!("an agent rewrote its task's ports: {other:?}"),
    }
    assert_eq!(given(&tasks.get(name).await.unwrap()), given(victim));

    // A fixed port no agent offers: the task waits, saying so, until an
    // agent that offers it comes; then it gets exactly that port.
    let fixed = base + 8;
    s.kubectl_ok(&[
        "apply",
        "-f",
        &write_file(dir, "fixed.yaml", &fixed_task("fixed", fixed)),
    ]);
    wait_for(
        Duration::from_secs(30),
        "fixed waits for its port",
        || async {
            let t = tasks.get("fixed").await.unwrap();
            status(&t, "reason") == "Unschedulable"
                && status(&t, "message")
                    .as_str()
                    .is_some_and(|m| m.contains("no agent offers the host ports"))
        },
    )
    .await
    .unwrap();
    let _a3 = s.spawn_agent("ports-3", &format!("cpus=1,memory=1Gi,ports={r3}"));
    wait_for(Duration::from_secs(60), "fixed runs on ports-3", || async {
        let t = tasks.get("fixed").await.unwrap();
        status(&t, "phase") == "Running"
            && status(&t, "agent") == "ports-3"
            && given(&t).get("fixed") == Some(&fixed)
    })
    .await
    .unwrap();
    // A second asker for that port waits (naming it) while the first holds it.
    s.kubectl_ok(&[
        "apply",
        "-f",
        &write_file(dir, "fixed2.yaml", &fixed_task("fixed2", fixed)),
    ]);
    wait_for(
        Duration::from_secs(30),
        "fixed2 waits on the port",
        || async {
            let t = tasks.get("fixed2").await.unwrap();
            status(&t, "phase") == "Pending"
                && status(&t, "message").as_str().is_some_and(|m| {
                    m.contains("host ports taken") && m.contains(&fixed.to_string())
                })
        },
    )
    .await
    .unwrap();
    s.kubectl_ok(&["delete", "task", "fixed", "--wait=false"]);
    wait_for(Duration::from_secs(60), "fixed2 gets the port", || async {
        let t = tasks.get("fixed2").await.unwrap();
        status(&t, "phase") == "Running" && given(&t).get("fixed") == Some(&fixed)
    })
    .await
    .unwrap();
}

/// A task that listens on `port` (0: any the kernel picks) with `ports` asked
/// for, on the agent labelled `policy=<policy>`.
fn listener(name: &str, port: &str, policy: &str, ports: &str) -> String {
    let command = format!("exec python3 -m http.server {port} --bind 127.0.0.1");
    task(name, &command, policy, ports, 1)
}

/// A hostile squatter: its listener is a child of its shell, both ignore
/// SIGTERM, and it asks for an hour's grace before SIGKILL.
fn squatter(name: &str, port: u16, policy: &str) -> String {
    let serve = format!(
        "import signal, http.server; signal.signal(signal.SIGTERM, signal.SIG_IGN); \
         http.server.HTTPServer(('127.0.0.1', {port}), http.server.SimpleHTTPRequestHandler).serve_forever()"
    );
    let command = format!("trap '' TERM; python3 -c \"{serve}\" & wait");
    task(name, &command, policy, "[]", 3600)
}

fn task(name: &str, command: &str, policy: &str, ports: &str, grace: u32) -> String {
    let command = serde_json::to_string(command).unwrap();
    format!(
        r#"apiVersion: mosaic.dev/v1alpha1
kind: Task
metadata:
  name: {name}
spec:
  command: {command}
  agentSelector:
    matchLabels:
      policy: {policy}
  ports: {ports}
  resources:
    cpus: 100m
    memory: 64Mi
  killGracePeriodSeconds: {grace}
"#
    )
}

/// The attack of a task that holds a host port it was not given (and so
/// could take the port the scheduler gives another task next), listening on
/// it or bound to it and connected: the agent kills it at once, whatever grace it
/// asked for and though its listener is a child ignoring SIGTERM (Failed,
/// reason PortNotAllocated, its ports named, an Event), as Mesos's
/// `network/ports` isolator does. By default only the agent's `ports` range
/// is held; `--port-isolation all` holds every port. A task listening on the
/// port it was given runs on.
#[tokio::test]
async fn a_task_listening_on_a_port_it_was_not_given_is_killed() {
    let s = TestServer::start().unwrap();
    let base = 12_000 + (std::process::id() % 800) as u16 * 10;
    let every = ["--port-check-interval", "300ms"];
    let range = format!("cpus=2,memory=1Gi,ports=[{}-{}]", base, base + 3);
    let all = format!("cpus=2,memory=1Gi,ports=[{}-{}]", base + 4, base + 7);
    let _a1 = s.spawn_agent_with(
        "held-range",
        &range,
        &[&every[..], &["--labels", "policy=range"]].concat(),
    );
    let _a2 = s.spawn_agent_with(
        "held-all",
        &all,
        &[
            &every[..],
            &["--labels", "policy=all", "--port-isolation", "all"],
        ]
        .concat(),
    );
    let client = s.client().await.unwrap();
    let tasks: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &mosaic("Task", "tasks"));
    let dir = s.dir.path();
    let apply = |name: &str, port: &str, policy: &str, ports: &str| {
        let yaml = listener(name, port, policy, ports);
        s.kubectl_ok(&[
            "apply",
            "-f",
            &write_file(dir, &format!("{name}.yaml"), &yaml),
        ]);
    };
    // The squatter takes a port of the range the honest task was not given.
    apply("honest", "\"$PORT_HTTP\"", "range", "[{name: http}]");
    wait_for(Duration::from_secs(60), "honest given its port", || async {
        given(&tasks.get("honest").await.unwrap()).contains_key("http")
    })
    .await
    .unwrap();
    let honest = given(&tasks.get("honest").await.unwrap())["http"];
    assert!((base..=base + 3).contains(&honest), "{honest}");
    let mut free = (base..=base + 3).filter(|p| *p != honest);
    let (squat, bound) = (free.next().unwrap(), free.next().unwrap());
    apply("outside", "0", "range", "[]");
    let yaml = squatter("squat", squat, "range");
    s.kubectl_ok(&["apply", "-f", &write_file(dir, "squat.yaml", &yaml)]);
    // Bound to a port of the range and connected (to the honest task, once
    // it listens) rather than listening: it keeps the port from its owner as
    // surely.
    let hold = format!(
        "exec python3 -c \"
import socket, time
while True:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('127.0.0.1', {bound}))
    try:
        s.connect(('127.0.0.1', {honest}))
        break
    except OSError:
        s.close()
        time.sleep(0.1)
time.sleep(3600)
\""
    );
    let yaml = task("bound", &hold, "range", "[]", 1);
    s.kubectl_ok(&["apply", "-f", &write_file(dir, "bound.yaml", &yaml)]);
    apply("outside-all", "0", "all", "[]");
    let phase = |t: &DynamicObject| status(t, "phase").as_str().unwrap_or_default().to_string();
    for name in ["squat", "bound", "outside-all"] {
        let ended = wait_for(
            Duration::from_secs(60),
            &format!("{name} killed"),
            || async { phase(&tasks.get(name).await.unwrap()) == "Failed" },
        )
        .await;
        let t = tasks.get(name).await.unwrap();
        assert!(ended.is_ok(), "{name}: {:?}", t.data["status"]);
        assert_eq!(
            status(&t, "reason"),
            "PortNotAllocated",
            "{:?}",
            t.data["status"]
        );
        let message = status(&t, "message").as_str().unwrap_or_default();
        let named: Option<u16> = message
            .strip_prefix("the task listened on port(s) ")
            .and_then(|m| m.split_once(' '))
            .and_then(|(p, _)| p.parse().ok());
        match name {
            "squat" => assert_eq!(named, Some(squat), "{message}"),
            "bound" => assert_eq!(named, Some(bound), "{message}"),
            _ => assert!(
                named.is_some_and(|p| !(base..=base + 7).contains(&p)),
                "{message}"
            ),
        }
        assert!(message.ends_with("(its ports: none)"), "{message}");
        let events = s.kubectl(&[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={name},reason=PortNotAllocated"),
            "-o",
            "name",
        ]);
        assert!(
            !events.stdout.is_empty(),
            "no PortNotAllocated event for {name}"
        );
    }
    // The task listening on its own port, and the one outside the range on
    // the agent that holds only its range, run on through several checks.
    wait_for(
        Duration::from_secs(30),
        "honest and outside Running",
        || async {
            phase(&tasks.get("honest").await.unwrap()) == "Running"
                && phase(&tasks.get("outside").await.unwrap()) == "Running"
        },
    )
    .await
    .unwrap();
    let since = std::time::Instant::now();
    while since.elapsed() < Duration::from_secs(2) {
        for name in ["honest", "outside"] {
            let t = tasks.get(name).await.unwrap();
            assert_eq!(phase(&t), "Running", "{name}: {:?}", t.data["status"]);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
