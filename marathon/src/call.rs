//! What every call's handler shares: the call as the router hands it over,
//! the answer, and the reads and writes of Apps, their instances and the
//! agents' hosts that more than one kind of call makes, as the caller.

use crate::error::MarathonError;
use crate::model::DeploymentResult;
use crate::{present, translate};
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use mosaic_crds::Agent;
use mosaic_crds::app::{APP_LABEL, App};
use mosaic_crds::task::Task;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

pub(crate) type Result<T> = std::result::Result<T, MarathonError>;

/// An answer: status, body (JSON unless `text`), extra headers.
pub struct Answer {
    pub code: u16,
    pub body: Vec<u8>,
    pub text: bool,
    pub headers: Vec<(&'static str, String)>,
}

impl Answer {
    /// `value` as JSON with `code`.
    pub fn json(code: u16, value: &impl Serialize) -> Self {
        Self {
            code,
            body: serde_json::to_vec(value).unwrap_or_default(),
            text: false,
            headers: Vec::new(),
        }
    }
}

/// One call, as the router sees it.
pub struct Call<'a> {
    pub client: Client,
    pub namespace: &'a str,
    pub method: &'a http::Method,
    /// The path, with repeated slashes made one.
    pub path: &'a str,
    pub query: HashMap<String, Vec<String>>,
    pub body: &'a [u8],
    /// The port the gateway listens on (for `/v2/info`).
    pub port: u16,
}

impl Call<'_> {
    pub(crate) fn flag(&self, name: &str) -> bool {
        self.query
            .get(name)
            .and_then(|v| v.last())
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    pub(crate) fn apps(&self) -> Api<App> {
        Api::namespaced(self.client.clone(), self.namespace)
    }

    pub(crate) fn tasks(&self) -> Api<Task> {
        Api::namespaced(self.client.clone(), self.namespace)
    }
}

/// The hosts agents serve at, by agent name (none if the caller may not
/// read Agents: tasks then show their agent's name).
pub(crate) async fn hosts(c: &Call<'_>) -> BTreeMap<String, String> {
    let Ok(list) = Api::<Agent>::all(c.client.clone())
        .list(&ListParams::default())
        .await
    else {
        return BTreeMap::new();
    };
    list.items
        .iter()
        .filter_map(|a| Some((a.name_any(), a.status.as_ref()?.host()?.to_string())))
        .collect()
}

/// The instances of the Apps in the namespace, by App name.
pub(crate) async fn instances(
    c: &Call<'_>,
    app: Option<&str>,
) -> Result<HashMap<String, Vec<Task>>> {
    let selector = match app {
        Some(name) => format!("{APP_LABEL}={name}"),
        None => APP_LABEL.to_string(),
    };
    let list = c
        .tasks()
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| MarathonError::from_kube(e, "the tasks"))?;
    let mut by_app: HashMap<String, Vec<Task>> = HashMap::new();
    for t in list.items {
        if let Some(a) = t.labels().get(APP_LABEL).cloned() {
            by_app.entry(a).or_default().push(t);
        }
    }
    Ok(by_app)
}

/// The App an app id names, with the id as Marathon writes it.
pub(crate) async fn get(c: &Call<'_>, id: &str) -> Result<(String, App)> {
    let (canonical, name) = translate::name_of(id)?;
    let app = c
        .apps()
        .get(&name)
        .await
        .map_err(|e| MarathonError::from_kube(e, &format!("App '{canonical}'")))?;
    Ok((canonical, app))
}

/// A change's answer: the deployment it started (and its id in a header).
pub(crate) fn result(app: &App) -> Answer {
    let mut a = Answer::json(
        200,
        &DeploymentResult {
            deployment_id: present::deployment_id(app),
            version: present::version_of(app),
        },
    );
    a.headers
        .push(("Marathon-Deployment-Id", present::deployment_id(app)));
    a
}

/// Changes an App by `f` and writes it whole, guarded by the version read;
/// read again and changed again when it moved meanwhile (its status is
/// written often), a few times.
pub(crate) async fn modify(
    c: &Call<'_>,
    name: &str,
    canonical: &str,
    mut f: impl FnMut(&mut App) -> Result<()>,
) -> Result<App> {
    let what = format!("App '{canonical}'");
    for _ in 0..8 {
        let mut app = c
            .apps()
            .get(name)
            .await
            .map_err(|e| MarathonError::from_kube(e, &what))?;
        f(&mut app)?;
        app.metadata.managed_fields = None;
        match c.apps().replace(name, &PostParams::default(), &app).await {
            Ok(updated) => return Ok(updated),
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(MarathonError::from_kube(e, &what)),
        }
    }
    Err(MarathonError::Conflict(format!(
        "{what} kept changing while it was being updated; try again"
    )))
}
