//! The calls served, each translated to calls on Apps and Tasks in the
//! gateway's namespace, made as the caller.

use crate::error::MarathonError;
use crate::model::{AppIn, Apps, HttpConfig, Info, OneApp, Tasks};
use crate::{present, translate};
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use mosaic_crds::app::App;
use mosaic_crds::task::Task;
use std::collections::BTreeMap;

use crate::call::{Answer, Call, Result, get, hosts, instances, modify, result};

/// Answers a call.
pub async fn route(c: &Call<'_>) -> Result<Answer> {
    use http::Method;
    let path = c.path.trim_end_matches('/');
    let m = c.method;
    if path == "/v2/info" && m == Method::GET {
        return info(c).await;
    }
    if path == "/v2/apps" {
        return match *m {
            Method::GET => list_apps(c).await,
            Method::POST => create_app(c).await,
            _ => Err(MarathonError::NoRoute(format!("{m} {path} is not served"))),
        };
    }
    if path == "/v2/tasks" && m == Method::GET {
        return list_tasks(c, None).await;
    }
    if path == "/v2/tasks/delete" && m == Method::POST {
        return crate::kills::kill_given(c).await;
    }
    if path == "/v2/deployments" && m == Method::GET {
        return list_deployments(c).await;
    }
    if let Some(id) = path.strip_prefix("/v2/deployments/")
        && m == Method::DELETE
    {
        return delete_deployment(c, id).await;
    }
    if let Some(rest) = path.strip_prefix("/v2/apps/") {
        if let Some(id) = rest.strip_suffix("/restart")
            && m == Method::POST
        {
            return restart(c, id).await;
        }
        if let Some(id) = rest.strip_suffix("/tasks") {
            match *m {
                Method::GET => return list_tasks(c, Some(id)).await,
                Method::DELETE => return crate::kills::kill_tasks(c, id).await,
                _ => {}
            }
        }
        if let Some((id, task)) = rest.rsplit_once("/tasks/")
            && m == Method::DELETE
        {
            return crate::kills::kill_task(c, id, task).await;
        }
        // What names a part of an app is never taken for an app's id.
        let part = rest.ends_with("/tasks")
            || rest.contains("/tasks/")
            || rest.ends_with("/restart")
            || rest.contains("/versions");
        return match *m {
            _ if part => Err(MarathonError::NoRoute(format!("{m} {path} is not served"))),
            Method::GET => get_app(c, rest).await,
            Method::PUT | Method::PATCH => update_app(c, rest).await,
            Method::DELETE => delete_app(c, rest).await,
            _ => Err(MarathonError::NoRoute(format!("{m} {path} is not served"))),
        };
    }
    Err(MarathonError::NoRoute(format!("{m} {path} is not served")))
}

async fn info(c: &Call<'_>) -> Result<Answer> {
    // One call as the caller, so that credentials are checked here too.
    c.apps()
        .list(&ListParams::default().limit(1))
        .await
        .map_err(|e| MarathonError::from_kube(e, "the apps"))?;
    Ok(Answer::json(
        200,
        &Info {
            name: "marathon".into(),
            version: "1.10.17".into(),
            buildref: format!("mosaic-{}", env!("CARGO_PKG_VERSION")),
            elected: true,
            leader: format!("mosaic:{}", c.port),
            framework_id: format!("mosaic-{}", c.namespace),
            marathon_config: Default::default(),
            zookeeper_config: Default::default(),
            http_config: HttpConfig {
                http_port: c.port,
                https_port: c.port,
            },
        },
    ))
}

async fn list_apps(c: &Call<'_>) -> Result<Answer> {
    let embed = c.query.get("embed").is_some_and(|e| {
        e.iter()
            .any(|v| v.ends_with("apps.tasks") || v.ends_with("app.tasks") || v == "tasks")
    });
    let apps = c
        .apps()
        .list(&ListParams::default())
        .await
        .map_err(|e| MarathonError::from_kube(e, "the apps"))?;
    let by_app = instances(c, None).await?;
    let hosts = if embed {
        hosts(c).await
    } else {
        BTreeMap::new()
    };
    let one = |k: &str| c.query.get(k).and_then(|v| v.last()).map(String::as_str);
    let (id, cmd, label) = (one("id"), one("cmd"), one("label"));
    let out = apps
        .items
        .iter()
        .filter(|a| id.is_none_or(|id| present::id_of(a).contains(id)))
        .filter(|a| {
            cmd.is_none_or(|cmd| {
                a.spec
                    .template
                    .spec
                    .command
                    .as_deref()
                    .is_some_and(|x| x.contains(cmd))
            })
        })
        .filter(|a| label.is_none_or(|l| labelled(a, l)))
        .map(|a| {
            let tasks: Vec<&Task> = by_app.get(&a.name_any()).into_iter().flatten().collect();
            present::app(a, &tasks, &hosts, embed)
        })
        .collect();
    Ok(Answer::json(200, &Apps { apps: out }))
}

/// Whether an app's labels meet Marathon's `label` filter: `key`,
/// `key==value` or `key!=value`.
fn labelled(a: &App, filter: &str) -> bool {
    let labels = a
        .spec
        .template
        .metadata
        .as_ref()
        .map(|m| m.labels.clone())
        .unwrap_or_default();
    if let Some((k, v)) = filter.split_once("!=") {
        labels.get(k.trim()).is_some_and(|x| x != v.trim())
    } else if let Some((k, v)) = filter.split_once("==") {
        labels.get(k.trim()).is_some_and(|x| x == v.trim())
    } else {
        labels.contains_key(filter.trim())
    }
}

async fn get_app(c: &Call<'_>, id: &str) -> Result<Answer> {
    let (_, app) = get(c, id).await?;
    let by_app = instances(c, Some(&app.name_any())).await?;
    let tasks: Vec<&Task> = by_app.values().flatten().collect();
    let hosts = hosts(c).await;
    Ok(Answer::json(
        200,
        &OneApp {
            app: present::app(&app, &tasks, &hosts, true),
        },
    ))
}

fn parse(body: &[u8]) -> Result<AppIn> {
    serde_json::from_slice(body)
        .map_err(|e| MarathonError::Invalid(vec![("/".into(), format!("Invalid JSON: {e}"))]))
}

/// A new App of Marathon id `id` from `def`.
fn new_app(id: &str, def: AppIn) -> Result<App> {
    let (canonical, name) = translate::name_of(id)?;
    let mut spec = translate::new_spec();
    translate::apply(&mut spec, def)?;
    let mut app = App::new(&name, spec);
    app.annotations_mut()
        .insert(translate::ID_ANNOTATION.into(), canonical);
    Ok(app)
}

fn created(app: &App) -> Answer {
    let mut a = Answer::json(201, &present::app(app, &[], &BTreeMap::new(), false));
    a.headers
        .push(("Location", format!("/v2/apps{}", present::id_of(app))));
    a.headers
        .push(("Marathon-Deployment-Id", present::deployment_id(app)));
    a
}

async fn create_app(c: &Call<'_>) -> Result<Answer> {
    let def = parse(c.body)?;
    let Some(id) = def.id.clone() else {
        return Err(MarathonError::field("/id", "an app needs an id"));
    };
    let app = new_app(&id, def)?;
    let made = match c.apps().create(&PostParams::default(), &app).await {
        Err(kube::Error::Api(s)) if s.code == 409 => {
            return Err(MarathonError::Conflict(format!(
                "An app with id [{}] already exists.",
                present::id_of(&app)
            )));
        }
        other => other.map_err(|e| MarathonError::from_kube(e, "the app"))?,
    };
    Ok(created(&made))
}

async fn update_app(c: &Call<'_>, id: &str) -> Result<Answer> {
    let mut def = parse(c.body)?;
    if let Some(given) = def.id.take()
        && translate::name_of(&given)?.0 != translate::name_of(id)?.0
    {
        return Err(MarathonError::field(
            "/id",
            "the id in the body is not the app's in the path",
        ));
    }
    let (canonical, name) = translate::name_of(id)?;
    match c.apps().get(&name).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 && c.method == http::Method::PUT => {
            let app = new_app(id, def)?;
            let made = c
                .apps()
                .create(&PostParams::default(), &app)
                .await
                .map_err(|e| MarathonError::from_kube(e, "the app"))?;
            let mut a = result(&made);
            a.code = 201;
            return Ok(a);
        }
        Err(e) => return Err(MarathonError::from_kube(e, &format!("App '{canonical}'"))),
    };
    let partial = c
        .query
        .get("partialUpdate")
        .and_then(|v| v.last())
        .is_none_or(|v| !v.eq_ignore_ascii_case("false"));
    let replace = !partial && c.method == http::Method::PUT;
    let updated = modify(c, &name, &canonical, |app| {
        if replace {
            let framework = app.spec.template.spec.framework.clone();
            app.spec = translate::new_spec();
            app.spec.template.spec.framework = framework;
        }
        // A change goes out even after a forced cancel stopped the last.
        app.spec.paused = false;
        translate::apply(&mut app.spec, def.clone())
    })
    .await?;
    Ok(result(&updated))
}

async fn delete_app(c: &Call<'_>, id: &str) -> Result<Answer> {
    let (canonical, app) = get(c, id).await?;
    c.apps()
        .delete(&app.name_any(), &DeleteParams::background())
        .await
        .map_err(|e| MarathonError::from_kube(e, &format!("App '{canonical}'")))?;
    Ok(result(&app))
}

async fn restart(c: &Call<'_>, id: &str) -> Result<Answer> {
    let (canonical, app) = get(c, id).await?;
    let now = present::time(jiff::Timestamp::now());
    let patch = serde_json::json!({"spec": {"paused": false, "template": {"metadata": {"annotations": {
        "mosaic.dev/restartedAt": now}}}}});
    let updated = c
        .apps()
        .patch(
            &app.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|e| MarathonError::from_kube(e, &format!("App '{canonical}'")))?;
    Ok(result(&updated))
}

async fn list_tasks(c: &Call<'_>, id: Option<&str>) -> Result<Answer> {
    let apps: Vec<App> = match id {
        Some(id) => vec![get(c, id).await?.1],
        None => {
            c.apps()
                .list(&ListParams::default())
                .await
                .map_err(|e| MarathonError::from_kube(e, "the apps"))?
                .items
        }
    };
    let by_app = instances(c, id.map(|_| apps[0].name_any()).as_deref()).await?;
    let hosts = hosts(c).await;
    let mut out = Vec::new();
    for a in &apps {
        let (app_id, version) = (present::id_of(a), present::version_of(a));
        for t in by_app.get(&a.name_any()).into_iter().flatten() {
            if t.status.as_ref().and_then(|s| s.agent.as_ref()).is_some() {
                out.push(present::task(&app_id, &version, t, &hosts));
            }
        }
    }
    Ok(Answer::json(200, &Tasks { tasks: out }))
}

async fn list_deployments(c: &Call<'_>) -> Result<Answer> {
    let apps = c
        .apps()
        .list(&ListParams::default())
        .await
        .map_err(|e| MarathonError::from_kube(e, "the apps"))?;
    let out: Vec<_> = apps
        .items
        .iter()
        .filter_map(|a| present::deployment_of(a).map(|id| present::deployment(a, id)))
        .collect();
    Ok(Answer::json(200, &out))
}

async fn delete_deployment(c: &Call<'_>, id: &str) -> Result<Answer> {
    let apps = c
        .apps()
        .list(&ListParams::default())
        .await
        .map_err(|e| MarathonError::from_kube(e, "the apps"))?;
    let Some(app) = apps
        .items
        .into_iter()
        .find(|a| present::deployment_of(a).as_deref() == Some(id))
    else {
        return Err(MarathonError::NotFound(format!(
            "DeploymentPlan {id} does not exist"
        )));
    };
    let name = app.name_any();
    if c.flag("force") {
        // Stopped where it is, as Marathon's forced cancel leaves it.
        let patch = serde_json::json!({"spec": {"paused": true}});
        c.apps()
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| MarathonError::from_kube(e, &format!("App '{}'", present::id_of(&app))))?;
        return Ok(Answer {
            code: 202,
            body: Vec::new(),
            text: false,
            headers: Vec::new(),
        });
    }
    // Rolled back: the template all instances ran before this rollout (the
    // current revision), when the spec has moved from it.
    let st = app.status.clone().unwrap_or_default();
    let previous = st
        .revisions
        .iter()
        .find(|r| Some(&r.revision) == st.current_revision.as_ref())
        .filter(|r| r.template != app.spec.template);
    let Some(previous) = previous else {
        return Err(MarathonError::Conflict(format!(
            "deployment {id} scales the app and has no earlier template to roll back to; cancel it with force=true"
        )));
    };
    let template = previous.template.clone();
    let updated = modify(c, &name, &present::id_of(&app), |a| {
        a.spec.template = template.clone();
        Ok(())
    })
    .await?;
    Ok(result(&updated))
}
