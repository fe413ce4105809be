//! Whatever the server accepts stays readable (issue 21, item 3): random
//! objects written through create, update and every patch type (JSON patch
//! `add`s that deepen what is there, merge patches, server-side apply), some
//! nested past what any JSON reader takes, against a real server (embedded
//! store, through its request handler). After every write, accepted or
//! refused, the object (if stored) can be got, the collection listed and
//! watched from the start, and at the end the object deleted.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::sync::Arc;

const CRD: &str = r#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
 "metadata":{"name":"blobs.example.com"},
 "spec":{"group":"example.com","scope":"Namespaced",
  "names":{"plural":"blobs","singular":"blob","kind":"Blob","listKind":"BlobList"},
  "versions":[{"name":"v1","served":true,"storage":true,
   "schema":{"openAPIV3Schema":{"type":"object","properties":{
    "spec":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}}}]}}"#;

const BASE: &str = "/apis/example.com/v1/namespaces/default/blobs";

struct Server {
    app: Arc<mosaic_apiserver::http::App>,
    token: String,
    _dir: tempfile::TempDir,
    _server: mosaic_apiserver::RunningServer,
}

impl Server {
    async fn call(&self, method: &str, path: &str, ctype: &str, body: String) -> (u16, Bytes) {
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", ctype)
            .body(Full::new(Bytes::from(body)))
            .expect("a request");
        let resp = self.app.clone().handle(req).await;
        let status = resp.status().as_u16();
        if path.contains("watch=true") {
            // A watch streams: the first event is enough (the object's ADDED).
            let mut body = resp.into_body();
            let frame = tokio::time::timeout(std::time::Duration::from_secs(5), body.frame())
                .await
                .expect("a watch event within 5 s");
            let data = frame
                .and_then(|f| f.ok())
                .and_then(|f| f.into_data().ok())
                .unwrap_or_default();
            return (status, data);
        }
        let bytes = resp.into_body().collect().await.expect("a body").to_bytes();
        (status, bytes)
    }
}

fn nested(levels: usize, leaf: Value) -> Value {
    let mut v = leaf;
    for _ in 0..levels {
        v = json!({ "k": v });
    }
    v
}

/// One write of a random kind with random depths.
#[derive(Clone, Debug)]
enum Write {
    Update(usize),
    JsonPatchDeepen(usize, usize),
    ManagedFieldsDeepen(usize, usize),
    Merge(usize),
    Apply(usize),
}

fn write() -> impl Strategy<Value = Write> {
    let d = 0usize..140;
    prop_oneof![
        d.clone().prop_map(Write::Update),
        (d.clone(), d.clone()).prop_map(|(a, b)| Write::JsonPatchDeepen(a, b)),
        (d.clone(), d.clone()).prop_map(|(a, b)| Write::ManagedFieldsDeepen(a, b)),
        d.clone().prop_map(Write::Merge),
        d.prop_map(Write::Apply),
    ]
}

/// A JSON pointer `k` repeated `n` times under `base`.
fn pointer(base: &str, n: usize) -> String {
    format!("{base}{}", "/k".repeat(n))
}

async fn apply(s: &Server, w: &Write) -> u16 {
    let obj = |spec: Value| {
        json!({"apiVersion": "example.com/v1", "kind": "Blob",
               "metadata": {"name": "b"}, "spec": spec})
        .to_string()
    };
    let path = format!("{BASE}/b");
    match w {
        Write::Update(d) => {
            s.call("PUT", &path, "application/json", obj(nested(*d, json!(1))))
                .await
                .0
        }
        Write::JsonPatchDeepen(a, b) => {
            let ops = json!([
                {"op": "add", "path": "/spec/x", "value": nested(*a, json!(1))},
                {"op": "add", "path": pointer("/spec/x", *a), "value": nested(*b, json!(2))},
            ]);
            s.call(
                "PATCH",
                &path,
                "application/json-patch+json",
                ops.to_string(),
            )
            .await
            .0
        }
        Write::ManagedFieldsDeepen(a, b) => {
            let ops = json!([
                {"op": "add", "path": "/metadata/managedFields/0/fieldsV1/f:x", "value": nested(*a, json!({}))},
                {"op": "add", "path": pointer("/metadata/managedFields/0/fieldsV1/f:x", *a), "value": nested(*b, json!({}))},
            ]);
            s.call(
                "PATCH",
                &path,
                "application/json-patch+json",
                ops.to_string(),
            )
            .await
            .0
        }
        Write::Merge(d) => {
            let patch = json!({"spec": {"m": nested(*d, json!("v"))}});
            s.call(
                "PATCH",
                &path,
                "application/merge-patch+json",
                patch.to_string(),
            )
            .await
            .0
        }
        Write::Apply(d) => {
            s.call(
                "PATCH",
                &format!("{path}?fieldManager=prop&force=true"),
                "application/apply-patch+yaml",
                obj(json!({"a": nested(*d, json!(true))})),
            )
            .await
            .0
        }
    }
}

/// Everything a client does with what was stored still works.
async fn readable(s: &Server) -> Result<(), String> {
    let (code, body) = s.call("GET", &format!("{BASE}/b"), "", String::new()).await;
    if code != 200 || serde_json::from_slice::<Value>(&body).is_err() {
        return Err(format!("GET: {code} {}", String::from_utf8_lossy(&body)));
    }
    let (code, body) = s.call("GET", BASE, "", String::new()).await;
    let items = serde_json::from_slice::<Value>(&body)
        .ok()
        .map(|l| l["items"].clone());
    if code != 200 || items.and_then(|i| i.as_array().map(Vec::len)) != Some(1) {
        return Err(format!("LIST: {code} {}", String::from_utf8_lossy(&body)));
    }
    let (code, body) = s
        .call(
            "GET",
            &format!("{BASE}?watch=true&resourceVersion=0"),
            "",
            String::new(),
        )
        .await;
    let event = serde_json::from_slice::<Value>(&body).ok();
    if code != 200 || event.is_none_or(|e| e["type"] != "ADDED") {
        return Err(format!("WATCH: {code} {}", String::from_utf8_lossy(&body)));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_accepted_write_stays_readable_listable_watchable_and_deletable(
        first in 0usize..140,
        writes in prop::collection::vec(write(), 1..5),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let server = mosaic_apiserver::start(mosaic_apiserver::ServerConfig::new(
                dir.path().to_path_buf(),
                "127.0.0.1:0".parse().unwrap(),
            ))
            .await
            .unwrap();
            let s = Server {
                app: server.app.clone(),
                token: server.admin_token.clone(),
                _dir: dir,
                _server: server,
            };
            let (code, body) = s
                .call("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", "application/json", CRD.into())
                .await;
            assert_eq!(code, 201, "{}", String::from_utf8_lossy(&body));
            let create = json!({"apiVersion": "example.com/v1", "kind": "Blob",
                                "metadata": {"name": "b"}, "spec": nested(first, json!(0))});
            let mut code = 0;
            for _ in 0..100 {
                code = s.call("POST", BASE, "application/json", create.to_string()).await.0;
                if code != 404 {
                    break; // the CRD is served
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            prop_assert!(matches!(code, 201 | 400 | 422), "create answered {code}");
            if code != 201 {
                // Too deep for the reader or the limit: nothing stored, the collection lists.
                let (c, _) = s.call("GET", BASE, "", String::new()).await;
                prop_assert_eq!(c, 200);
                return Ok(());
            }
            prop_assert_eq!(readable(&s).await, Ok(()));
            for w in &writes {
                let code = apply(&s, w).await;
                prop_assert!(code < 500, "{w:?} answered {code}");
                prop_assert_eq!(readable(&s).await, Ok(()), "after {:?} ({})", w, code);
            }
            let (code, body) = s.call("DELETE", &format!("{BASE}/b"), "", String::new()).await;
            prop_assert_eq!(code, 200, "DELETE: {}", String::from_utf8_lossy(&body));
            Ok(())
        })?;
    }
}
