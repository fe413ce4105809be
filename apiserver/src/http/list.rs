//! LIST (with selectors, limit/continue and consistent pages) and DELETE of a collection.

use super::body::{self, Body};
use super::objects::Request;
use super::selectors::{FieldSelector, LabelSelector};
use super::{meta, table};
use crate::error::ApiError;
use crate::store::{ListRequest, Precondition};
use base64::Engine;
use http::{Response, StatusCode};
use serde_json::{Value, json};

/// The selectors of a request.
pub struct Selectors {
    /// Labels.
    pub labels: LabelSelector,
    /// Fields.
    pub fields: FieldSelector,
}

impl Selectors {
    /// Parses the request's selectors (a name in the path pins `metadata.name`).
    pub fn of(req: &Request) -> Result<Self, ApiError> {
        let info = &req.route.info;
        let mut field = req.params.field_selector.clone();
        if let Some(n) = &req.route.name {
            if !field.is_empty() {
                field.push(',');
            }
            field.push_str(&format!("metadata.name={n}"));
        }
        Ok(Self {
            labels: LabelSelector::parse(&req.params.label_selector)?,
            fields: FieldSelector::parse(&field, &info.selectable_fields, &info.group_resource())?,
        })
    }

    /// Whether an object is selected.
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }

    /// What of an object the selectors read.
    pub fn paths(&self) -> crate::paths::Paths {
        let mut p = crate::paths::Paths::none();
        if !self.labels.is_empty() {
            p.add(&["metadata", "labels"]);
        }
        for k in self.fields.keys() {
            p.add(&k.split('.').collect::<Vec<_>>());
        }
        p
    }

    /// Whether every object matches (no selector was given).
    pub fn is_everything(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }
}

fn encode_continue(rev: i64, key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"rv": rev, "start": key}).to_string())
}

fn decode_continue(token: &str) -> Result<(i64, String), ApiError> {
    let bad = || ApiError::bad_request("continue key is not valid: the token is malformed");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    Ok((
        v["rv"].as_i64().ok_or_else(bad)?,
        v["start"].as_str().ok_or_else(bad)?.to_string(),
    ))
}

/// One page of matching objects, the revision it reflects, and the key to continue after.
pub async fn collect(
    req: &Request,
    sel: &Selectors,
) -> Result<(Vec<Value>, i64, Option<String>), ApiError> {
    let prefix = req
        .route
        .info
        .collection_prefix(req.route.namespace.as_deref());
    let (mut revision, mut after) = match &req.params.continue_token {
        Some(t) => {
            let (rev, key) = decode_continue(t)?;
            (Some(rev), Some(key))
        }
        None => match (
            req.params.resource_version_match.as_deref(),
            &req.params.resource_version,
        ) {
            (Some("Exact"), Some(rv)) => (
                Some(rv.parse::<i64>().map_err(|_| {
                    ApiError::bad_request(format!("invalid resourceVersion {rv:?}"))
                })?),
                None,
            ),
            _ => (None, None),
        },
    };
    if let Some(pinned) = sel.fields.pinned_name()
        && (req.route.namespace.is_some() || !req.route.info.namespaced)
        && revision.is_none()
    {
        // A single-name list (kubectl wait, get by field selector) needs no scan.
        let key = req.route.info.key(req.route.namespace.as_deref(), pinned);
        let rev = req.app.store.revision();
        let mut items = Vec::new();
        if let Some(kv) = req.app.store.get(&key).await? {
            let obj = meta::load(&req.route.info, &kv)?;
            if sel.matches(&obj) {
                items.push(obj);
            }
        }
        return Ok((items, rev, None));
    }
    let limit = req.params.limit;
    let mut items = Vec::new();
    loop {
        let want = if limit == 0 {
            0
        } else {
            (limit - items.len()).max(64)
        };
        let page = req
            .app
            .store
            .list(ListRequest {
                prefix: &prefix,
                after: after.as_deref(),
                limit: want,
                revision,
            })
            .await
            .map_err(|e| match e {
                crate::store::StoreError::Compacted { .. } if req.params.continue_token.is_some() => ApiError::expired(
                    "The provided continue parameter is too old to display a consistent list result. \
                     You can start a new list without the continue parameter.",
                ),
                e => e.into(),
            })?;
        revision = Some(page.revision);
        let n = page.items.len();
        for (i, kv) in page.items.iter().enumerate() {
            let obj = meta::load(&req.route.info, kv)?;
            if sel.matches(&obj) {
                items.push(obj);
            }
            if limit > 0 && items.len() == limit {
                let more = i + 1 < n || page.more_after.is_some();
                let next = more.then(|| kv.key.clone());
                return Ok((items, page.revision, next));
            }
        }
        match page.more_after {
            Some(k) => after = Some(k),
            None => return Ok((items, page.revision, None)),
        }
    }
}

/// GET a collection.
pub async fn list(req: Request) -> Result<Response<Body>, ApiError> {
    let sel = Selectors::of(&req)?;
    let (items, rev, next) = collect(&req, &sel).await?;
    let mut list_meta = json!({"resourceVersion": rev.to_string()});
    if let Some(k) = next {
        list_meta["continue"] = json!(encode_continue(rev, &k));
    }
    if table::wants_table(&req.accept) {
        let t = table::table(&req.route.info, &items, &req.params, list_meta, true);
        return Ok(body::json(StatusCode::OK, &t));
    }
    let info = &req.route.info;
    Ok(body::json(
        StatusCode::OK,
        &json!({"apiVersion": info.api_version(), "kind": format!("{}List", info.kind), "metadata": list_meta, "items": items}),
    ))
}

/// DELETE a collection: each selected object as a single DELETE would.
pub async fn delete_collection(req: Request) -> Result<Response<Body>, ApiError> {
    let sel = Selectors::of(&req)?;
    let (items, _, _) = collect(&req, &sel).await?;
    let mut deleted = Vec::new();
    for obj in items {
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let key = req.key(&name);
        let rv = meta::resource_version(&obj)?.unwrap_or_default();
        let has_finalizers = obj["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if req.params.dry_run {
            deleted.push(obj);
            continue;
        }
        let res = if has_finalizers {
            let mut o = obj.clone();
            if o["metadata"]["deletionTimestamp"].is_string() {
                deleted.push(o);
                continue;
            }
            o["metadata"]["deletionTimestamp"] = json!(meta::now());
            req.app
                .store
                .update(
                    key,
                    meta::store_bytes(&req.route.info, &o),
                    Precondition::ModRevision(rv),
                )
                .await
        } else {
            req.app
                .store
                .delete(key, Precondition::ModRevision(rv))
                .await
        };
        match res {
            Ok(kv) => deleted.push(meta::load(&req.route.info, &kv)?),
            Err(crate::store::StoreError::NotFound(_)) => {}
            Err(e) => return Err(ApiError::from_store(e, req.subject(&name))),
        }
    }
    let info = &req.route.info;
    Ok(body::json(
        StatusCode::OK,
        &json!({"apiVersion": info.api_version(), "kind": format!("{}List", info.kind), "metadata": {}, "items": deleted}),
    ))
}
