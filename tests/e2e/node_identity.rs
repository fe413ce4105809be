//! One identity per agent and what it may touch (issue 21, item 2): agents
//! join with the bootstrap credential and get their own certificates; with
//! agent A's, B's status, a Task bound to B and the controllers' leader
//! Lease are refused (403) while A's own status and Lease are written; the
//! bootstrap credential may only join, and not as an agent that is running.

use crate::support::*;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use std::time::Duration;

/// A client with agent `name`'s own identity (from its data dir).
pub(crate) async fn agent_identity_client(s: &TestServer, name: &str) -> kube::Client {
    let dir = s.dir.path().join("agents").join(name).join("identity");
    let read =
        |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    let admin = std::fs::read_to_string(s.kubeconfig()).unwrap();
    let ca = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("certificate-authority-data: "))
        .unwrap();
    use base64::Engine;
    let ca_pem = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(ca)
            .unwrap(),
    )
    .unwrap();
    let kc = mosaic_apiserver::pki::kubeconfig_with_certificate(
        &format!("https://127.0.0.1:{}", s.port),
        &ca_pem,
        name,
        &read("client.crt"),
        &read("client.key"),
    );
    let path = write_file(s.dir.path(), &format!("{name}-identity.kubeconfig"), &kc);
    client_from(std::path::Path::new(&path)).await.unwrap()
}

fn code(r: Result<impl std::fmt::Debug, kube::Error>) -> u16 {
    match r {
        Ok(_) => 200,
        Err(kube::Error::Api(s)) => s.code,
        Err(e) => panic!("not an API answer: {e}"),
    }
}

#[tokio::test]
async fn an_agent_may_touch_only_its_own_objects() {
    let s = TestServer::start().unwrap();
    let _a = s.spawn_agent("node-a", "cpus=1,memory=1Gi");
    let _b = s.spawn_agent("node-b", "cpus=1,memory=1Gi");
    let admin = s.client().await.unwrap();
    let agents: Api<kube::api::DynamicObject> =
        Api::all_with(admin.clone(), &mosaic("Agent", "agents"));
    for n in ["node-a", "node-b"] {
        wait_for(
            Duration::from_secs(30),
            &format!("agent {n} to be Ready"),
            || {
                let agents = agents.clone();
                async move {
                    agents.get(n).await.is_ok_and(|a| {
                        a.data["status"]["conditions"].as_array().is_some_and(|cs| {
                            cs.iter()
                                .any(|c| c["type"] == "Ready" && c["status"] == "True")
                        })
                    })
                }
            },
        )
        .await
        .unwrap();
    }
    // A task on B.
    let tasks = tasks_api(admin.clone());
    let mut t = task("on-b");
    t.data["spec"]["command"] = json!("sleep 60");
    t.data["spec"]["resources"] = json!({"cpus": "100m", "memory": "32Mi"});
    t.data["spec"]["killGracePeriodSeconds"] = json!(1);
    t.data["spec"]["agentSelector"] = json!({"matchLabels": {"mosaic.dev/hostname": "node-b"}});
    tasks.create(&PostParams::default(), &t).await.unwrap();
    wait_task(&tasks, "on-b", Duration::from_secs(30), |st| {
        st["phase"] == "Running"
    })
    .await
    .unwrap();

    let a = agent_identity_client(&s, "node-a").await;
    let a_agents: Api<kube::api::DynamicObject> =
        Api::all_with(a.clone(), &mosaic("Agent", "agents"));
    let a_tasks = tasks_api(a.clone());
    let a_leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(a.clone(), "mosaic-system");
    let pp = PatchParams::default();
    let forged = json!({"status": {"phase": "Finished", "reason": "Completed"}});
    assert_eq!(
        code(
            a_agents
                .patch_status(
                    "node-b",
                    &pp,
                    &Patch::Merge(&json!({"status": {"address": "https://evil:1"}}))
                )
                .await
        ),
        403,
        "B's status"
    );
    assert_eq!(
        code(
            a_agents
                .patch(
                    "node-b",
                    &pp,
                    &Patch::Merge(&json!({"metadata": {"labels": {"x": "y"}}}))
                )
                .await
        ),
        403,
        "B's labels"
    );
    assert_eq!(
        code(
            a_tasks
                .patch_status("on-b", &pp, &Patch::Merge(&forged))
                .await
        ),
        403,
        "a Task bound to B"
    );
    let take = json!({"spec": {"holderIdentity": "node-a"}});
    assert_eq!(
        code(
            a_leases
                .patch("mosaic-controllers", &pp, &Patch::Merge(&take))
                .await
        ),
        403,
        "the controllers' Lease"
    );
    assert_eq!(
        code(a_leases.patch("node-b", &pp, &Patch::Merge(&take)).await),
        403,
        "B's Lease"
    );
    assert_eq!(
        code(
            a_agents
                .patch(
                    "node-a",
                    &pp,
                    &Patch::Merge(&json!({"spec": {"unschedulable": true}}))
                )
                .await
        ),
        403,
        "its own spec"
    );
    // Its own status and Lease are its to write.
    assert_eq!(
        code(
            a_agents
                .patch_status(
                    "node-a",
                    &pp,
                    &Patch::Merge(&json!({"status": {"version": "x"}}))
                )
                .await
        ),
        200
    );
    assert_eq!(
        code(
            a_leases
                .patch(
                    "node-a",
                    &pp,
                    &Patch::Merge(&json!({"spec": {"holderIdentity": "node-a"}}))
                )
                .await
        ),
        200
    );
    // B's task runs on, untouched.
    let st = tasks.get("on-b").await.unwrap().data["status"].clone();
    assert_eq!(st["phase"], "Running", "{st}");

    // The bootstrap credential may join agents, and nothing else.
    let bootstrap = client_from(&s.agent_kubeconfig()).await.unwrap();
    let b_tasks = tasks_api(bootstrap.clone());
    assert_eq!(
        code(
            b_tasks
                .patch_status("on-b", &pp, &Patch::Merge(&forged))
                .await
        ),
        403
    );
    let b_leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(bootstrap.clone(), "mosaic-system");
    assert_eq!(
        code(
            b_leases
                .patch("mosaic-controllers", &pp, &Patch::Merge(&take))
                .await
        ),
        403
    );
    // Not as an agent that is running: node-b's identity is node-b's.
    let err = mosaic_agent::join::request(&bootstrap, "node-b", &[])
        .await
        .unwrap_err();
    assert!(
        matches!(err, mosaic_agent::join::JoinError::Running(..)),
        "{err}"
    );
    // Nor under the name of the controllers' Lease.
    assert_eq!(
        mosaic_agent::join::request(&bootstrap, "mosaic-controllers", &[])
            .await
            .ok()
            .flatten()
            .map(|_| ()),
        None
    );
}

/// A TLS endpoint with a self-signed certificate that notes everything it is
/// sent: a fake agent.
async fn fake_endpoint() -> (u16, String, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let pem = cert.cert.pem();
    let cfg = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into()),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 8192];
                if let Ok(n) = tls.read(&mut buf).await {
                    log.lock().unwrap().extend_from_slice(&buf[..n]);
                }
                let _ = tls
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nfake")
                    .await;
            });
        }
    });
    (port, pem, seen)
}

/// Issue 21's acceptance 4: an Agent status pointed (by an administrator) at
/// a fake endpoint: `mosaic logs` fails verification, and the fake endpoint
/// receives no Authorization header (the user's token stays in the API server).
#[tokio::test]
async fn logs_go_through_the_api_server_and_never_to_an_unverified_endpoint() {
    let s = TestServer::start().unwrap();
    let _agent = s.spawn_agent("node-f", "cpus=1,memory=1Gi");
    let tasks = tasks_api(s.client().await.unwrap());
    let mut t = task("said");
    t.data["spec"]["command"] = json!("echo said-this");
    t.data["spec"]["resources"] = json!({"cpus": "100m", "memory": "32Mi"});
    tasks.create(&PostParams::default(), &t).await.unwrap();
    wait_task(&tasks, "said", Duration::from_secs(30), |st| {
        st["phase"] == "Finished"
    })
    .await
    .unwrap();
    // (Run without blocking this test's runtime, which serves the fake endpoint.)
    let logs = |kubeconfig: std::path::PathBuf| async move {
        tokio::process::Command::new(mosaic_bin())
            .args(["logs", "said", "--kubeconfig"])
            .arg(kubeconfig)
            .output()
            .await
            .unwrap()
    };
    let out = logs(s.kubeconfig()).await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "said-this\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (port, pem, seen) = fake_endpoint().await;
    let agents: Api<kube::api::DynamicObject> =
        Api::all_with(s.client().await.unwrap(), &mosaic("Agent", "agents"));
    agents
        .patch_status(
            "node-f",
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"address": format!("https://127.0.0.1:{port}"), "certificate": pem}})),
        )
        .await
        .unwrap();
    let out = logs(s.kubeconfig()).await;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "the fake endpoint was believed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        err.contains("failed verification") || err.contains("certificate"),
        "{err}"
    );
    let sent = String::from_utf8_lossy(&seen.lock().unwrap()).to_lowercase();
    assert!(
        !sent.contains("authorization"),
        "the fake endpoint got: {sent}"
    );
    assert!(!sent.contains("bearer"), "the fake endpoint got: {sent}");
}
