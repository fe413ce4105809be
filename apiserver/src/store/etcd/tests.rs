//! The store conformance suite against a real etcd member (Debian's
//! etcd-server; `$ETCD` or /usr/bin/etcd), one per test.
use super::*;
use crate::store::conformance;

struct Member {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    url: String,
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

async fn store() -> (Member, EtcdStore) {
    let dir = tempfile::tempdir().unwrap();
    let (client, peer) = (port(), port());
    let url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let bin = std::env::var("ETCD").unwrap_or_else(|_| "/usr/bin/etcd".into());
    let child = std::process::Command::new(&bin)
        .args(["--name", "t", "--data-dir"])
        .arg(dir.path().join("etcd"))
        .args([
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("t={peer_url}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {bin} (apt-get install etcd-server): {e}"));
    let member = Member {
        child,
        _dir: dir,
        url,
    };
    let cfg = EtcdConfig {
        endpoints: vec![member.url.clone()],
        prefix: "/test".into(),
        ..Default::default()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match EtcdStore::connect(&cfg).await {
            Ok(s) => return (member, s),
            Err(e) if std::time::Instant::now() > deadline => {
                panic!("etcd at {} did not answer in 20 s: {e}", member.url)
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test]
async fn writes_and_revisions() {
    let (_m, s) = store().await;
    conformance::writes_and_revisions(&s).await;
}

#[tokio::test]
async fn list_pages_at_a_past_revision() {
    let (_m, s) = store().await;
    conformance::list_pages_at_a_past_revision(&s).await;
}

#[tokio::test]
async fn watch_replays_then_follows() {
    let (_m, s) = store().await;
    conformance::watch_replays_then_follows(&s).await;
}

#[tokio::test]
async fn field_watch_replays_then_follows() {
    let (_m, s) = store().await;
    conformance::field_watch_replays_then_follows(&s).await;
}

#[tokio::test]
async fn compaction() {
    let (_m, s) = store().await;
    conformance::compaction(&s).await;
}

#[tokio::test]
async fn replicas_compact_once_per_interval() {
    let (m, a) = store().await;
    let b = EtcdStore::connect(&EtcdConfig {
        endpoints: vec![m.url.clone()],
        prefix: "/test".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    for i in 0..10 {
        a.create(format!("/k/{i}"), vec![1]).await.unwrap();
    }
    // Both saw the same mark; A compacts first, so B's proposal loses the
    // compare-and-swap and B adopts A's compaction instead of making its own.
    let r = a.revision();
    a.compact(r - 5).await.unwrap();
    b.compact(r - 2).await.unwrap();
    assert_eq!(b.compacted_revision(), r - 5);
    assert_eq!(a.compacted_revision(), r - 5);
    // The next interval: B's turn, seen by A within its next refresh.
    b.compact(r - 2).await.unwrap();
    assert_eq!(b.compacted_revision(), r - 2);
    a.refresh().await.unwrap();
    assert_eq!(a.compacted_revision(), r - 2);
}

#[tokio::test]
async fn the_identity_is_published_once_and_adopted_by_the_others() {
    let (_m, s) = store().await;
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::create_dir_all(first.path().join("pki")).unwrap();
    std::fs::write(first.path().join("pki/ca.crt"), b"first").unwrap();
    s.share_identity(first.path(), &["ca.crt"]).await.unwrap();
    // A second replica with a CA of its own adopts the published one.
    std::fs::create_dir_all(second.path().join("pki")).unwrap();
    std::fs::write(second.path().join("pki/ca.crt"), b"second").unwrap();
    s.share_identity(second.path(), &["ca.crt"]).await.unwrap();
    assert_eq!(
        std::fs::read(second.path().join("pki/ca.crt")).unwrap(),
        b"first"
    );
    // The identity lives outside the API's key space.
    let all = s
        .list(ListRequest {
            prefix: "/",
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(all.items.is_empty(), "{:?}", all.items);
}
