//! The limits against a real TLS listener on loopback.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Fixture {
    addr: std::net::SocketAddr,
    client: tokio_rustls::TlsConnector,
    counters: Arc<Counters>,
}

/// A listener whose `/slow` answers after `slow`, everything else at once.
async fn start(limits: Limits, slow: Duration) -> Fixture {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into()),
        )
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counters = Arc::new(Counters::default());
    let make = move |_: &Arc<ConnInfo>, req: Request| async move {
        if req.uri().path() == "/slow" {
            tokio::time::sleep(slow).await;
        }
        http::Response::new(http_body_util::Full::new(Bytes::from_static(b"ok")))
    };
    tokio::spawn(serve(
        listener,
        TlsAcceptor::from(Arc::new(server)),
        limits,
        make,
        counters.clone(),
        std::future::pending(),
    ));
    Fixture {
        addr,
        client: tokio_rustls::TlsConnector::from(Arc::new(client)),
        counters,
    }
}

impl Fixture {
    async fn connect(&self) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        self.client.connect(name, tcp).await.unwrap()
    }
}

/// Sends one HTTP/1.1 GET and reads until the far end closes or `wait` passes.
async fn get(
    c: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    path: &str,
    wait: Duration,
) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    c.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, c.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn past_the_cap_a_connection_is_told_why_in_a_status() {
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    let f = start(limits, Duration::ZERO).await;
    let _held = (f.connect().await, f.connect().await);
    let mut third = f.connect().await;
    let answer = get(&mut third, "/", Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains("\"kind\":\"Status\"")
            && answer.contains("\"reason\":\"ServiceUnavailable\""),
        "{answer}"
    );
    assert_eq!(f.counters.refused_connections(), 1);
}

#[tokio::test]
async fn an_idle_connection_is_closed_but_a_request_under_way_is_not() {
    let limits = Limits {
        idle: Duration::from_millis(400),
        ..Limits::default()
    };
    let f = start(limits, Duration::from_millis(1500)).await;
    let mut idle = f.connect().await;
    let mut busy = f.connect().await;
    // The slow request outlives the idle timeout several times over.
    let answer = get(&mut busy, "/slow", Duration::from_secs(5)).await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"),
        "{answer}"
    );
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf))
        .await
        .expect("the idle connection to be closed within 5 s");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert!(f.counters.idle_closed_connections() >= 1);
}
