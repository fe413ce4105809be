//! High availability: `mosaic server` replicas on one real etcd 3.4 cluster.
//! A watch resumes on another replica, writes ride out the loss of one etcd
//! member and fail clearly without a quorum, and the controllers' leadership
//! moves when its server is killed, with no task placed twice.

use crate::etcd_cluster::{Balancer, EtcdCluster};
use crate::leader::{bound_once, create_tasks, holder, takes_over, wait_running};
use crate::support::{TestServer, client_from, tasks_api, wait_for};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const LEASE_SECONDS: u64 = 3;

fn server_on(etcd: &EtcdCluster, extra: &[&str]) -> TestServer {
    let eps = etcd.endpoints();
    let mut args = vec!["--store", "etcd", "--etcd-endpoints", &eps];
    args.extend_from_slice(extra);
    TestServer::start_with(&args).unwrap()
}

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"ha": "seq"}},
        "data": {"n": name}
    }))
    .unwrap()
}

async fn create(client: &kube::Client, name: &str) -> Result<(), kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &config_map(name))
        .await
        .map(|_| ())
}

#[tokio::test]
async fn a_watch_started_on_one_server_continues_on_the_other_after_kill9() {
    let etcd = EtcdCluster::start(3).unwrap();
    let mut a = server_on(&etcd, &["--no-controllers"]);
    let b = server_on(&etcd, &["--no-controllers"]);
    let (ca, cb) = (a.client().await.unwrap(), b.client().await.unwrap());

    // Written through A, read through B: one state, one revision sequence.
    create(&ca, "from-a").await.unwrap();
    let on_b = Api::<ConfigMap>::namespaced(cb.clone(), "default")
        .get("from-a")
        .await
        .unwrap();
    let on_a = Api::<ConfigMap>::namespaced(ca.clone(), "default")
        .get("from-a")
        .await
        .unwrap();
    assert_eq!(on_b.data, on_a.data);
    assert_eq!(
        on_b.metadata.resource_version,
        on_a.metadata.resource_version
    );
    assert_eq!(on_b.metadata.uid, on_a.metadata.uid);

    // A kube-rs watcher through a balancer that prefers A.
    let lb = Balancer::start(vec![a.port, b.port]).await.unwrap();
    let lb_kubeconfig = a.dir.path().join("lb.kubeconfig");
    lb.kubeconfig(&a.kubeconfig(), a.port, &lb_kubeconfig);
    let via_lb = client_from(&lb_kubeconfig).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(via_lb, "default");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stream = watcher(api, watcher::Config::default().labels("ha=seq")).default_backoff();
    let watching = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(e) = stream.next().await {
            if tx.send(e).is_err() {
                return;
            }
        }
    });
    let mut inits = 0;
    let mut applied: Vec<String> = Vec::new();
    let mut errors = 0;
    type Seen = Result<watcher::Event<ConfigMap>, watcher::Error>;
    let mut recv_until = async |rx: &mut tokio::sync::mpsc::UnboundedReceiver<Seen>,
                                applied: &mut Vec<String>,
                                want: Option<&str>| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let e = tokio::time::timeout(left, rx.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!("the watcher did not see {want:?} within 30 s; saw {applied:?}")
                })
                .expect("the watcher ended");
            match e {
                Ok(watcher::Event::Init) => inits += 1,
                Ok(watcher::Event::InitDone) if want.is_none() => return,
                Ok(watcher::Event::Apply(cm)) => {
                    let name = cm.metadata.name.unwrap_or_default();
                    let done = want == Some(name.as_str());
                    applied.push(name);
                    if done {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => errors += 1,
            }
        }
    };
    recv_until(&mut rx, &mut applied, None).await;
    assert!(applied.is_empty(), "no object was written yet: {applied:?}");

    let names: Vec<String> = (0..20).map(|i| format!("s{i:02}")).collect();
    for n in &names[..10] {
        create(&ca, n).await.unwrap();
    }
    recv_until(&mut rx, &mut applied, Some("s09")).await;

    // A dies without a word; the watcher's connection breaks and the balancer
    // sends its next watch to B, from the last resourceVersion it saw.
    a.kill9();
    for n in &names[10..] {
        create(&cb, n).await.unwrap();
    }
    recv_until(&mut rx, &mut applied, Some("s19")).await;
    watching.abort();

    assert_eq!(
        applied, names,
        "every write seen once, in order, across the failover"
    );
    assert_eq!(
        inits, 1,
        "the watch resumed on B without a relist ({errors} stream errors)"
    );
}

/// A client that reports a 503 at once, where kube-rs would retry it for minutes.
async fn no_retry_client(s: &TestServer) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(s.kubeconfig()).unwrap();
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    cfg.default_retry = false;
    kube::Client::try_from(cfg).unwrap()
}

#[tokio::test]
async fn writes_survive_one_etcd_member_fail_clearly_without_quorum_and_none_is_lost() {
    let mut etcd = EtcdCluster::start(3).unwrap();
    let a = server_on(&etcd, &["--no-controllers"]);
    let b = server_on(&etcd, &["--no-controllers"]);
    let clients = [no_retry_client(&a).await, no_retry_client(&b).await];
    let mut acked = Vec::new();
    let mut attempted = BTreeSet::new();
    let mut n = 0;
    let mut write_all = async |count: usize, acked: &mut Vec<String>| {
        for _ in 0..count {
            let name = format!("w{n:03}");
            attempted.insert(name.clone());
            let r = create(&clients[n % 2], &name).await;
            n += 1;
            r.unwrap_or_else(|e| panic!("write {name} failed: {e}"));
            acked.push(name);
        }
    };
    write_all(10, &mut acked).await;

    // One member of three gone: both servers keep writing (an election, when
    // the leader was the one killed, is ridden out inside the request).
    etcd.kill(0);
    write_all(10, &mut acked).await;

    // Two gone: no quorum. Writes fail with 503 and say why; /readyz says so.
    etcd.kill(1);
    for (i, c) in clients.iter().enumerate() {
        let name = format!("noquorum-{i}");
        match create(c, &name).await {
            Err(kube::Error::Api(s)) => {
                assert_eq!(s.code, 503, "{s:?}");
                assert!(s.message.contains("quorum"), "{}", s.message);
            }
            other => {
                let server = [&a, &b][i];
                let log = crate::support::log_tail(&server.dir.path().join("server.log"), 30);
                panic!("a write without an etcd quorum returned {other:?}\nserver log:\n{log}")
            }
        }
    }
    for c in &clients {
        let ready = c
            .request_text(http::Request::get("/readyz").body(vec![]).unwrap())
            .await;
        assert!(
            matches!(&ready, Err(kube::Error::Api(s)) if s.code == 503),
            "/readyz without a quorum: {ready:?}"
        );
    }

    // A member returns: writes succeed again.
    etcd.restart(1).unwrap();
    etcd.wait_healthy(1, Duration::from_secs(30)).unwrap();
    wait_for(
        Duration::from_secs(30),
        "a write to succeed again",
        || async { create(&clients[0], "after-recovery").await.is_ok() },
    )
    .await
    .unwrap();
    write_all(10, &mut acked).await;

    // Every acknowledged write is there, read through either server.
    for c in &clients {
        let api: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
        let listed: BTreeSet<String> = api
            .list(&ListParams::default().labels("ha=seq"))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|cm| cm.metadata.name)
            .filter(|n| n.starts_with('w'))
            .collect();
        let missing: Vec<_> = acked.iter().filter(|n| !listed.contains(*n)).collect();
        assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");
        assert_eq!(listed.len(), acked.len(), "{listed:?}");
    }
}

#[tokio::test]
async fn killing_the_leaders_server_moves_the_controllers_and_no_task_is_placed_twice() {
    let etcd = EtcdCluster::start(3).unwrap();
    let lease = LEASE_SECONDS.to_string();
    let mut servers = vec![
        server_on(&etcd, &["--leader-lease-seconds", &lease]),
        server_on(&etcd, &["--leader-lease-seconds", &lease]),
    ];
    // The agent reaches whichever server is up, through a balancer.
    let lb = Balancer::start(servers.iter().map(|s| s.port).collect())
        .await
        .unwrap();
    let first = &servers[0];
    let agent_kubeconfig = first.dir.path().join("agent-lb.kubeconfig");
    // Simulated agents take the admin's kubeconfig (no identity of their own).
    lb.kubeconfig(&first.kubeconfig(), first.port, &agent_kubeconfig);
    let _agent = first.spawn_agent_via(
        &agent_kubeconfig,
        "sim",
        "cpus=8,memory=8Gi",
        &["--simulate"],
    );
    let client = servers[0].client().await.unwrap();
    wait_for(Duration::from_secs(30), "a leader", || async {
        holder(&client).await.is_some()
    })
    .await
    .unwrap();
    let leader = holder(&client).await.unwrap();
    let which = servers
        .iter()
        .position(|s| s.pid().is_some_and(|p| leader.ends_with(&format!("-{p}"))))
        .unwrap_or_else(|| panic!("the leader {leader} is neither server"));
    let api = tasks_api(client.clone());
    create_tasks(&api, 0, 5).await;
    wait_running(&api, 5, 30).await;

    // Kill the leader's server outright; the other server's controllers take over.
    let mut dead = servers.remove(which);
    dead.kill9();
    let killed_at = Instant::now();
    let other = &servers[0];
    let client = other.client().await.unwrap();
    let api = tasks_api(client.clone());
    create_tasks(&api, 5, 10).await;
    takes_over(
        &client,
        other.pid().unwrap(),
        killed_at,
        LEASE_SECONDS,
        2000,
    )
    .await;
    wait_running(&api, 10, 60).await;
    bound_once(&client, 10).await;
}

/// A CA, a serving certificate for 127.0.0.1 and a client certificate, as PEM files in `dir`.
fn etcd_certificates(dir: &std::path::Path) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose, SanType,
    };
    let ca_params = || {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, "etcd-ca");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p
    };
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params().self_signed(&ca_key).unwrap();
    std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
    let issuer = Issuer::new(ca_params(), ca_key);
    for (name, usage) in [
        ("server", ExtendedKeyUsagePurpose::ServerAuth),
        ("client", ExtendedKeyUsagePurpose::ClientAuth),
    ] {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.subject_alt_names = vec![SanType::IpAddress([127, 0, 0, 1].into())];
        p.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
}

#[tokio::test]
async fn the_store_reaches_etcd_over_tls_with_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    etcd_certificates(dir.path());
    let etcd = EtcdCluster::start_tls(dir.path()).unwrap();
    let eps = etcd.endpoints();
    let p = |f: &str| dir.path().join(f).to_string_lossy().into_owned();
    let (ca, cert, key) = (p("ca.crt"), p("client.crt"), p("client.key"));
    let s = TestServer::start_with(&[
        "--store",
        "etcd",
        "--etcd-endpoints",
        &eps,
        "--etcd-cafile",
        &ca,
        "--etcd-certfile",
        &cert,
        "--etcd-keyfile",
        &key,
        "--no-controllers",
    ])
    .unwrap();
    let c = s.client().await.unwrap();
    create(&c, "over-tls").await.unwrap();
    let got = Api::<ConfigMap>::namespaced(c, "default")
        .get("over-tls")
        .await
        .unwrap();
    assert_eq!(got.data.unwrap()["n"], "over-tls");

    // Without the client certificate etcd refuses the server, which says so and stops.
    let refused = TestServer::start_with(&[
        "--store",
        "etcd",
        "--etcd-endpoints",
        &eps,
        "--etcd-cafile",
        &ca,
        "--no-controllers",
    ]);
    assert!(
        refused.is_err(),
        "a server without a client certificate started"
    );
}

#[tokio::test]
async fn servers_started_together_on_a_fresh_etcd_share_one_identity() {
    let etcd = EtcdCluster::start(3).unwrap();
    let eps = etcd.endpoints();
    // Both race to write the built-in objects and to publish their identity.
    let starts: Vec<_> = (0..2)
        .map(|_| {
            let eps = eps.clone();
            std::thread::spawn(move || {
                TestServer::start_with(&[
                    "--store",
                    "etcd",
                    "--etcd-endpoints",
                    &eps,
                    "--no-controllers",
                ])
            })
        })
        .collect();
    let servers: Vec<TestServer> = starts
        .into_iter()
        .map(|h| h.join().unwrap().expect("both servers start"))
        .collect();
    for f in [
        "ca.key",
        "ca.crt",
        "admin.token",
        "agent.token",
        "service-account.key",
    ] {
        let [a, b] =
            [0, 1].map(|i| std::fs::read(servers[i].dir.path().join("pki").join(f)).unwrap());
        assert_eq!(a, b, "pki/{f} differs between the servers");
    }
    // One kubeconfig works against either: A's, pointed at B.
    let lb = Balancer::start(vec![servers[1].port]).await.unwrap();
    let path = servers[0].dir.path().join("to-b.kubeconfig");
    lb.kubeconfig(&servers[0].kubeconfig(), servers[0].port, &path);
    let via = client_from(&path).await.unwrap();
    create(&via, "shared-identity").await.unwrap();
    let ns: Api<k8s_openapi::api::core::v1::Namespace> =
        Api::all(servers[0].client().await.unwrap());
    let names: BTreeSet<String> = ns
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert!(
        names.contains("default") && names.contains("mosaic-system"),
        "{names:?}"
    );
}
