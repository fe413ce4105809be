//! Killing an app's tasks through Marathon's API: one (`DELETE
//! /v2/apps/{id}/tasks/{taskId}`), all of an app's or those on one host
//! (`DELETE /v2/apps/{id}/tasks`), or any list of them (`POST
//! /v2/tasks/delete`). Without `scale` each is deleted and its App replaces
//! it; with `scale` each is marked to go first and its App asks for as many
//! fewer, so its controller kills exactly those.

use crate::call::{Answer, Call, Result, get, hosts, instances, modify, result};
use crate::error::MarathonError;
use crate::model::{OneTask, TaskOut, Tasks};
use crate::present;
use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams};
use mosaic_crds::app::{APP_LABEL, App, DELETION_COST_ANNOTATION};
use mosaic_crds::task::{Task, TaskPhase};
use std::collections::{BTreeMap, BTreeSet};

/// `DELETE /v2/apps/{id}/tasks/{taskId}[?scale=true]`.
pub async fn kill_task(c: &Call<'_>, id: &str, task: &str) -> Result<Answer> {
    no_scale_with_wipe(c)?;
    let (canonical, app) = get(c, id).await?;
    let missing = || MarathonError::NotFound(format!("Task '{task}' does not exist"));
    if !is_name(task) {
        return Err(missing());
    }
    let t = match c.tasks().get(task).await {
        Ok(t) => t,
        Err(kube::Error::Api(s)) if s.code == 404 => return Err(missing()),
        Err(e) => return Err(MarathonError::from_kube(e, &format!("Task '{task}'"))),
    };
    // Only a live instance of this App, as Marathon knows only those.
    if !killable(&t, &app) {
        return Err(missing());
    }
    if c.flag("scale") {
        // This one goes first, then the App asks for one fewer (as a Pod's
        // deletion cost ranks a ReplicaSet's scale-down).
        let updated = scale_down(c, &app.name_any(), &canonical, std::slice::from_ref(&t)).await?;
        return Ok(result(&updated));
    }
    c.tasks()
        .delete(task, &DeleteParams::default())
        .await
        .map_err(|e| MarathonError::from_kube(e, &format!("Task '{task}'")))?;
    let hosts = hosts(c).await;
    Ok(Answer::json(
        200,
        &OneTask {
            task: present::task(&canonical, &present::version_of(&app), &t, &hosts),
        },
    ))
}

/// Whether `task` could be an instance's name (anything else names no task,
/// and never reaches the API server as a path).
fn is_name(task: &str) -> bool {
    !task.is_empty()
        && task.len() <= 253
        && task
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// Whether a kill takes `t`, an instance of `app`: owned by it, launched,
/// live and not already being killed.
fn killable(t: &Task, app: &App) -> bool {
    let uid = app.uid().unwrap_or_default();
    t.owner_references().iter().any(|o| o.uid == uid)
        && t.labels().get(APP_LABEL) == Some(&app.name_any())
        && t.metadata.deletion_timestamp.is_none()
        && t.status
            .as_ref()
            .is_some_and(|s| s.agent.is_some() && !s.phase.is_some_and(TaskPhase::is_terminal))
}

fn no_scale_with_wipe(c: &Call<'_>) -> Result<()> {
    if c.flag("scale") && c.flag("wipe") {
        return Err(MarathonError::BadRequest(
            "You cannot use scale and wipe at the same time.".into(),
        ));
    }
    Ok(())
}

/// `DELETE /v2/apps/{id}/tasks[?host=H][&scale=true]`: every killable
/// instance of the app (those on `host` only, when given and not `*`, as
/// Marathon names an agent's host). With `scale` the deployment is
/// answered, else the tasks killed. `scale` with `wipe` is refused, as
/// Marathon refuses it.
pub async fn kill_tasks(c: &Call<'_>, id: &str) -> Result<Answer> {
    no_scale_with_wipe(c)?;
    let (canonical, app) = get(c, id).await?;
    let name = app.name_any();
    let host = c
        .query
        .get("host")
        .and_then(|v| v.last())
        .filter(|h| *h != "*")
        .cloned();
    let hosts = hosts(c).await;
    let version = present::version_of(&app);
    let chosen: Vec<(Task, TaskOut)> = instances(c, Some(&name))
        .await?
        .remove(&name)
        .unwrap_or_default()
        .into_iter()
        .filter(|t| killable(t, &app))
        .map(|t| {
            let out = present::task(&canonical, &version, &t, &hosts);
            (t, out)
        })
        .filter(|(_, out)| {
            host.as_ref()
                .is_none_or(|h| *h == out.host || *h == out.slave_id)
        })
        .collect();
    if c.flag("scale") {
        let tasks: Vec<Task> = chosen.into_iter().map(|(t, _)| t).collect();
        return Ok(result(&scale_down(c, &name, &canonical, &tasks).await?));
    }
    Ok(Answer::json(
        200,
        &Tasks {
            tasks: delete_each(c, chosen).await?,
        },
    ))
}

/// `POST /v2/tasks/delete[?scale=true]` with `{"ids": [...]}`: the named
/// tasks, of whichever apps. An id that is not a task's name is refused
/// (400, as Marathon refuses an id it cannot parse); one naming no live
/// instance is passed over. With `scale`, each App asks for as many fewer and
/// the last one's deployment is answered (Marathon answers one plan for all);
/// else the tasks killed.
pub async fn kill_given(c: &Call<'_>) -> Result<Answer> {
    no_scale_with_wipe(c)?;
    #[derive(serde::Deserialize)]
    struct Ids {
        ids: Vec<String>,
    }
    let ids: Ids = serde_json::from_slice(c.body)
        .map_err(|e| MarathonError::BadRequest(format!("Invalid JSON: {e}")))?;
    if let Some(bad) = ids.ids.iter().find(|i| !is_name(i)) {
        return Err(MarathonError::BadRequest(format!(
            "Invalid task id '{bad}'."
        )));
    }
    // A set, as Marathon reads them: a task named twice is killed once.
    let ids: BTreeSet<String> = ids.ids.into_iter().collect();
    // One list of the namespace's instances, however many ids.
    let mut by_app: BTreeMap<String, Vec<Task>> = BTreeMap::new();
    for (app, tasks) in instances(c, None).await? {
        let named: Vec<Task> = tasks
            .into_iter()
            .filter(|t| ids.contains(&t.name_any()))
            .collect();
        if !named.is_empty() {
            by_app.insert(app, named);
        }
    }
    let hosts = hosts(c).await;
    let mut killed = Vec::new();
    let mut last = None;
    for (name, tasks) in by_app {
        let app = match c.apps().get(&name).await {
            Ok(a) => a,
            Err(kube::Error::Api(s)) if s.code == 404 => continue,
            Err(e) => return Err(MarathonError::from_kube(e, &format!("App '{name}'"))),
        };
        let canonical = present::id_of(&app);
        let tasks: Vec<Task> = tasks.into_iter().filter(|t| killable(t, &app)).collect();
        if c.flag("scale") {
            last = Some(scale_down(c, &name, &canonical, &tasks).await?);
        } else {
            let version = present::version_of(&app);
            let chosen = tasks
                .into_iter()
                .map(|t| {
                    let out = present::task(&canonical, &version, &t, &hosts);
                    (t, out)
                })
                .collect();
            killed.extend(delete_each(c, chosen).await?);
        }
    }
    match last {
        Some(app) => Ok(result(&app)),
        None => Ok(Answer::json(200, &Tasks { tasks: killed })),
    }
}

/// Deletes each task (its App replaces it); the ones deleted by this call.
async fn delete_each(c: &Call<'_>, chosen: Vec<(Task, TaskOut)>) -> Result<Vec<TaskOut>> {
    let mut killed = Vec::with_capacity(chosen.len());
    for (t, out) in chosen {
        let task = t.name_any();
        match c.tasks().delete(&task, &DeleteParams::default()).await {
            Ok(_) => killed.push(out),
            // Gone meanwhile: not killed by this call.
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(MarathonError::from_kube(e, &format!("Task '{task}'"))),
        }
    }
    Ok(killed)
}

/// Marks `tasks` to go first, then has App `name` ask for as many fewer; the
/// marks are taken back when the App cannot be changed.
async fn scale_down(c: &Call<'_>, name: &str, canonical: &str, tasks: &[Task]) -> Result<App> {
    let mark = |cost: Option<String>| serde_json::json!({"metadata": {"annotations": {DELETION_COST_ANNOTATION: cost}}});
    let first = mark(Some(i64::MIN.to_string()));
    for t in tasks {
        let task = t.name_any();
        c.tasks()
            .patch(&task, &PatchParams::default(), &Patch::Merge(&first))
            .await
            .map_err(|e| MarathonError::from_kube(e, &format!("Task '{task}'")))?;
    }
    let fewer = i32::try_from(tasks.len()).unwrap_or(i32::MAX);
    let updated = modify(c, name, canonical, |a| {
        a.spec.replicas = a.spec.replicas.saturating_sub(fewer).max(0);
        Ok(())
    })
    .await;
    if updated.is_err() {
        // Not scaled: no later scale-down takes these first.
        let unmark = mark(None);
        for t in tasks {
            let _ = c
                .tasks()
                .patch(
                    &t.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&unmark),
                )
                .await;
        }
    }
    updated
}
