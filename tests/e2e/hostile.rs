//! A client trying to break the server for everyone (issue 21, items 3 to 5):
//! each test is the attack, then a check that other clients are still served.

use crate::support::*;
use std::time::Duration;

/// `{"f:k": {"f:k": ... {}}}`, `levels` deep.
fn nested(levels: usize) -> serde_json::Value {
    let mut v = serde_json::json!({});
    for _ in 0..levels {
        v = serde_json::json!({ "f:k": v });
    }
    v
}

#[tokio::test]
async fn a_patch_that_would_make_an_object_unreadable_is_refused() {
    let s = TestServer::start().unwrap();
    let f = write_file(s.dir.path(), "t.yaml", &task_yaml("victim", "100m"));
    s.kubectl_ok(&["apply", "-f", &f]);
    // Two adds, each within the reader's limit, together far past it: the
    // patch that once left every list and watch of Tasks failing with 500.
    let base = "/metadata/managedFields/0/fieldsV1/f:x";
    let deeper = format!("{base}{}", "/f:k".repeat(90));
    let ops = serde_json::json!([
        {"op": "add", "path": base, "value": nested(90)},
        {"op": "add", "path": deeper, "value": nested(90)},
    ]);
    let out = s.kubectl(&[
        "patch",
        "task",
        "victim",
        "--type=json",
        "-p",
        &ops.to_string(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the patch was accepted");
    assert!(
        err.contains("Invalid")
            && err.contains("nested more than 100 levels")
            && err.contains("metadata.managedFields[0].fieldsV1.f:x"),
        "{err}"
    );
    // Everything still reads: get, list, a watch from the start, delete.
    s.kubectl_ok(&["get", "task", "victim", "-o", "json"]);
    let list = s.kubectl_ok(&["get", "tasks", "-o", "name"]);
    assert!(list.contains("task.mosaic.dev/victim"), "{list}");
    let api = tasks_api(s.client().await.unwrap());
    let lp = kube::api::WatchParams::default().timeout(1);
    use futures::StreamExt;
    let mut events = api.watch(&lp, "0").await.unwrap().boxed();
    let first = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("a watch event")
        .expect("the stream is open")
        .expect("a readable event");
    assert!(
        matches!(first, kube::api::WatchEvent::Added(_)),
        "{first:?}"
    );
    s.kubectl_ok(&["delete", "task", "victim", "--wait=false"]);
}

/// A TLS client that trusts anything: an attacker's, holding connections open.
fn attacker_tls() -> tokio_rustls::TlsConnector {
    use rustls::DigitallySignedStruct;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    #[derive(Debug)]
    struct Anything(std::sync::Arc<rustls::crypto::CryptoProvider>);
    impl ServerCertVerifier for Anything {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(Anything(provider)))
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
}

/// `n` TLS connections to `addr` that finish the handshake and then say nothing.
async fn idle_connections(
    addr: std::net::SocketAddr,
    n: usize,
) -> Vec<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tls = attacker_tls();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        held.push(tls.connect(name.clone(), tcp).await.unwrap());
    }
    held
}

/// How many of `conns` the far end has closed (a read sees EOF or an error).
async fn closed(conns: &mut [tokio_rustls::client::TlsStream<tokio::net::TcpStream>]) -> usize {
    use tokio::io::AsyncReadExt;
    let mut n = 0;
    for c in conns.iter_mut() {
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(1), c.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => n += 1,
            _ => {}
        }
    }
    n
}

#[tokio::test]
async fn idle_connections_neither_lock_out_clients_nor_stay_open() {
    mosaic_listener::raise_open_files_limit().unwrap();
    let idle = ["--idle-timeout", "4s"];
    let s = TestServer::start_with(&idle).unwrap();
    let _agent = s.spawn_agent_with("idle-1", "cpus=1,memory=1Gi", &idle);
    let api = tasks_api(s.client().await.unwrap());
    let address = wait_agent_address(&s, "idle-1").await;
    let agent_addr: std::net::SocketAddr = address
        .trim_start_matches("https://")
        .parse()
        .unwrap_or_else(|e| panic!("agent address {address}: {e}"));
    let server_addr: std::net::SocketAddr = format!("127.0.0.1:{}", s.port).parse().unwrap();

    let mut to_server = idle_connections(server_addr, 2000).await;
    let mut to_agent = idle_connections(agent_addr, 2000).await;
    // Everyone else is still served: kubectl at once, and a task launches.
    let started = std::time::Instant::now();
    s.kubectl_ok(&["get", "tasks", "--request-timeout=5s"]);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "kubectl get tasks took {took:?}"
    );
    let f = write_file(s.dir.path(), "t.yaml", &task_yaml("still-runs", "100m"));
    s.kubectl_ok(&["apply", "-f", &f]);
    wait_task(&api, "still-runs", Duration::from_secs(30), |st| {
        st["phase"] == "Finished"
    })
    .await
    .unwrap();
    // The idle ones are closed once the idle timeout has passed.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (a, b) = (closed(&mut to_server).await, closed(&mut to_agent).await);
        if a == to_server.len() && b == to_agent.len() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after 30 s, {a} of {} idle connections to the server and {b} of {} to the agent were closed",
            to_server.len(),
            to_agent.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The agent's published endpoint, once it has registered.
async fn wait_agent_address(s: &TestServer, name: &str) -> String {
    let mut address = String::new();
    wait_for(
        Duration::from_secs(30),
        "the agent to publish its address",
        || {
            let out = s.kubectl(&["get", "agent", name, "-o", "jsonpath={.status.address}"]);
            address = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let ok = !address.is_empty();
            async move { ok }
        },
    )
    .await
    .unwrap();
    address
}

/// The resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap()
}

#[tokio::test]
async fn unread_watches_do_not_grow_the_server_without_bound() {
    use tokio::io::AsyncWriteExt;
    let s = TestServer::start().unwrap();
    let pid = s.pid().unwrap();
    s.kubectl_ok(&["create", "namespace", "big"]);
    // 20 MB of ConfigMaps: 200 of 100 KB.
    let client = s.client().await.unwrap();
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(client, "big");
    let value = "x".repeat(100 * 1024);
    let creates = (0..200).map(|i| {
        let cms = cms.clone();
        let cm: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("cm-{i}")}, "data": {"v": value}}))
        .unwrap();
        async move { cms.create(&Default::default(), &cm).await }
    });
    for r in futures::future::join_all(creates).await {
        r.unwrap();
    }
    let before = rss(pid);
    // 50 watches from the start, whose client never reads a byte.
    let token = std::fs::read_to_string(s.dir.path().join("pki/admin.token")).unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", s.port).parse().unwrap();
    let mut watches = idle_connections(addr, 50).await;
    for w in &mut watches {
        let req = format!(
            "GET /api/v1/namespaces/big/configmaps?watch=true&resourceVersion=0 HTTP/1.1\r\n\
             host: localhost\r\nauthorization: Bearer {}\r\n\r\n",
            token.trim()
        );
        w.write_all(req.as_bytes()).await.unwrap();
    }
    // Meanwhile, and after, others are served; the server's memory stays bounded.
    let mut peak = before;
    let until = std::time::Instant::now() + Duration::from_secs(8);
    while std::time::Instant::now() < until {
        let names = s.kubectl_ok(&[
            "get",
            "configmaps",
            "-n",
            "big",
            "-o",
            "name",
            "--request-timeout=10s",
        ]);
        assert_eq!(names.lines().count(), 200);
        peak = peak.max(rss(pid));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let grown = peak.saturating_sub(before);
    eprintln!(
        "50 unread watches: server RSS {} MiB, peak {} MiB",
        before >> 20,
        peak >> 20
    );
    assert!(
        grown < 300 << 20,
        "50 unread watches grew the server by {} MiB (from {} MiB)",
        grown >> 20,
        before >> 20
    );
    drop(watches);
}
