//! What an App needs now, from what its instances are: which to start,
//! which to kill, which ended ones to clear away, and the status to report.
//! Plain data and no API client, so every rule is tested in microseconds.
//!
//! Rollouts follow Marathon's TaskReplaceActor: with `R` replicas, at least
//! `ceil(R * minimumHealthCapacity)` instances stay healthy and at most
//! `floor(R * (1 + maximumOverCapacity))` run (one more when the two are
//! equal, so a rollout can always start one instance). Old instances are
//! killed while enough stay healthy (unhealthy ones first); new ones start
//! into the capacity left. Instances being killed still count as running
//! until they end. An instance that ends is cleared away and replaced after
//! Marathon's launch backoff (`backoffSeconds * backoffFactor^(n-1)`, at most
//! `maxLaunchDelaySeconds`, for `n` ended in a row), which resets once an
//! instance has stayed healthy for as long as the current delay, or when the
//! template changes.

use jiff::{SignedDuration, Timestamp};
use mosaic_crds::app::{AppSpec, AppStatus, KillSelection, LaunchBackoff, Revision, conditions};
use mosaic_crds::common::condition_types::READY;
use mosaic_crds::task::TaskPhase;
use std::time::Duration;

/// The longest launch delay, whatever the spec says (the CRD refuses more).
pub const MAX_DELAY_SECONDS: f64 = 86_400.0;

/// How long an instance stays healthy, at least, before the backoff resets.
pub const STABLE: SignedDuration = SignedDuration::from_secs(10);

/// One instance as the plan sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    /// The Task's name.
    pub name: String,
    /// The revision (template hash) it runs.
    pub revision: String,
    /// When it was created.
    pub created: Timestamp,
    /// Its phase.
    pub phase: Option<TaskPhase>,
    /// Its reason, when it has one.
    pub reason: Option<String>,
    /// Since when it has been Ready, when it is.
    pub ready_since: Option<Timestamp>,
    /// Being deleted.
    pub terminating: bool,
    /// On an agent being drained: replaced as an old revision's instance is.
    pub draining: bool,
    /// The host its agent is reached at, once it is bound.
    pub host: Option<String>,
    /// The host ports it was given.
    pub ports: Vec<mosaic_crds::ports::TaskPort>,
    /// Its deletion cost: lower goes first when scaling down.
    pub deletion_cost: i64,
}

impl Instance {
    fn ended(&self) -> bool {
        self.phase.is_some_and(TaskPhase::is_terminal)
    }
    fn live(&self) -> bool {
        !self.ended() && !self.terminating
    }
    fn ready(&self) -> bool {
        self.live() && self.ready_since.is_some()
    }
}

/// What the App sees: its spec and generation, the revision its template
/// hashes to, its instances, what it last reported, and the time.
pub struct View<'a> {
    /// The App's name.
    pub name: &'a str,
    /// Its spec.
    pub spec: &'a AppSpec,
    /// Its generation.
    pub generation: Option<i64>,
    /// The hash of its template.
    pub revision: &'a str,
    /// Its instances (Tasks it owns).
    pub instances: &'a [Instance],
    /// Its status as last written.
    pub status: Option<&'a AppStatus>,
    /// Now.
    pub now: Timestamp,
}

/// An Event to record about the App.
#[derive(Clone, Debug, PartialEq)]
pub struct Note {
    /// `Normal` or `Warning`.
    pub type_: &'static str,
    /// CamelCase reason.
    pub reason: &'static str,
    /// A sentence.
    pub message: String,
}

/// What to do.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// New instances (of the current revision) to start.
    pub start: usize,
    /// Live instances to kill (delete).
    pub kill: Vec<String>,
    /// Ended instances to delete.
    pub clear: Vec<String>,
    /// The status to report.
    pub status: AppStatus,
    /// Events to record.
    pub notes: Vec<Note>,
    /// When to look again even if nothing changes.
    pub requeue: Option<Duration>,
}

/// Where the ready instances serve, by port name (names and addresses sorted).
fn endpoints(instances: &[Instance]) -> Vec<mosaic_crds::app::Endpoints> {
    let mut by_name: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for i in instances.iter().filter(|i| i.ready()) {
        let Some(host) = &i.host else { continue };
        for p in &i.ports {
            let addr = if host.contains(':') {
                format!("[{host}]:{}", p.port)
            } else {
                format!("{host}:{}", p.port)
            };
            by_name.entry(&p.name).or_default().push(addr);
        }
    }
    by_name
        .into_iter()
        .map(|(name, mut addresses)| {
            addresses.sort();
            mosaic_crds::app::Endpoints {
                name: name.into(),
                addresses,
            }
        })
        .collect()
}

/// The plan for `v`.
pub fn plan(v: &View<'_>) -> Plan {
    let spec = v.spec;
    let r = spec.replicas.max(0) as usize;
    let mut out = Plan::default();
    let mut requeue = Requeue::default();

    // The launch backoff: instances that ended since the last look add to it.
    let template_changed = v
        .status
        .and_then(|s| s.update_revision.as_deref())
        .is_some_and(|rev| rev != v.revision);
    let mut backoff = v
        .status
        .and_then(|s| s.launch_backoff.clone())
        .filter(|_| !template_changed);
    for i in v.instances.iter().filter(|i| i.ended() && !i.terminating) {
        out.clear.push(i.name.clone());
        let failures = backoff.as_ref().map_or(0, |b| b.failures).saturating_add(1);
        let wait = delay(spec, failures);
        out.notes.push(Note {
            type_: "Warning",
            reason: "BackOff",
            message: format!(
                "instance {} ended ({}{}); its replacement waits {} ({} ended in a row)",
                i.name,
                i.phase.map_or("Unknown".into(), |p| format!("{p:?}")),
                i.reason
                    .as_deref()
                    .map(|r| format!(", {r}"))
                    .unwrap_or_default(),
                human(wait),
                failures
            ),
        });
        backoff = Some(LaunchBackoff {
            failures,
            next_launch_time: (v.now + wait).to_string(),
        });
    }
    // An instance healthy for as long as the current delay (at least
    // STABLE) since the last one ended resets it.
    if let Some(b) = &backoff
        && out.clear.is_empty()
    {
        let wait = delay(spec, b.failures).max(STABLE);
        // Healthy since the last instance ended (its time is the next
        // launch time less the delay it was given).
        let ended_at = b
            .next_launch_time
            .parse::<Timestamp>()
            .map_or(Timestamp::MIN, |at| {
                at.checked_sub(delay(spec, b.failures))
                    .unwrap_or(Timestamp::MIN)
            });
        let stable = v
            .instances
            .iter()
            .filter_map(|i| i.ready().then_some(i.ready_since?))
            .filter(|since| *since >= ended_at)
            .min();
        // (A time an agent wrote may be anything: no overflow.)
        match stable.map(|since| since.checked_add(wait).unwrap_or(Timestamp::MAX)) {
            Some(at) if at <= v.now => backoff = None,
            Some(at) => requeue.at(v.now, at),
            None => {}
        }
    }
    let next_launch = backoff
        .as_ref()
        .and_then(|b| b.next_launch_time.parse::<Timestamp>().ok());

    let live: Vec<&Instance> = v.instances.iter().filter(|i| i.live()).collect();
    // An instance on a draining agent is moved as an old one is: replaced
    // first, then killed, within the same bounds.
    let (new, old): (Vec<&Instance>, Vec<&Instance>) = live
        .iter()
        .partition(|i| i.revision == v.revision && !i.draining);
    let terminating = v
        .instances
        .iter()
        .filter(|i| i.terminating && !i.ended())
        .count();
    let healthy = live.iter().filter(|i| i.ready()).count();
    let (min_healthy, max_capacity) = bounds(spec, r);

    let running = live.len() + terminating;
    let start = if spec.paused {
        // A paused rollout holds where it is, but the App keeps its count:
        // an ended instance is replaced (from the current template) and a
        // scale-down kills by the kill selection, old revisions first.
        if live.len() > r {
            let mut doomed: Vec<&Instance> = ordered(&old, spec.kill_selection).collect();
            doomed.extend(ordered(&new, spec.kill_selection));
            out.kill
                .extend(doomed.iter().take(live.len() - r).map(|i| i.name.clone()));
        }
        r.saturating_sub(live.len())
    } else {
        // Old instances go while enough stay healthy, the unhealthy first.
        let mut budget = healthy.saturating_sub(min_healthy);
        for o in ordered(&old, spec.kill_selection) {
            if !o.ready() {
                out.kill.push(o.name.clone());
            } else if budget > 0 {
                budget -= 1;
                out.kill.push(o.name.clone());
            }
        }
        // Too many new ones (scaled down): the unhealthy first, then by kill selection.
        if new.len() > r {
            let excess = new.len() - r;
            out.kill.extend(
                ordered(&new, spec.kill_selection)
                    .take(excess)
                    .map(|i| i.name.clone()),
            );
        }
        // New ones start into the capacity left.
        let wanted = r.saturating_sub(new.len());
        let room = max_capacity.saturating_sub(running);
        wanted.min(room)
    };
    // Once the backoff allows.
    match next_launch {
        Some(at) if start > 0 && at > v.now => requeue.at(v.now, at),
        _ => out.start = start,
    }

    // What to report.
    let old_left = v
        .instances
        .iter()
        .any(|i| (i.revision != v.revision || i.draining) && !i.ended());
    let new_healthy = new.iter().filter(|i| i.ready()).count();
    let complete = !old_left && new.len() == r && new_healthy == r;
    let previous = v.status.and_then(|s| s.current_revision.clone());
    let current = if old_left {
        previous.or_else(|| old.first().map(|i| i.revision.clone()))
    } else {
        Some(v.revision.to_string())
    };
    let seen = v.status.map(|s| s.conditions.as_slice()).unwrap_or(&[]);
    let cond = |t: &str, ok: bool, reason: &str, message: String| {
        let mut c = mosaic_crds::conditions::new(t, ok, reason, &message, v.generation, v.now);
        mosaic_crds::conditions::keep_transition(seen, &mut c);
        c
    };
    let available = healthy >= min_healthy;
    let counts = format!(
        "{healthy} of {r} healthy, {} up to date, {} old",
        new.len(),
        old.len()
    );
    let waiting = next_launch.filter(|at| *at > v.now && !complete);
    let (progress_reason, ready_reason) = match () {
        _ if complete => ("NewRevisionAvailable", "Ready"),
        _ if spec.paused => ("Paused", "Paused"),
        _ if waiting.is_some() => ("NewRevisionProgressing", "BackOff"),
        _ if old_left => ("NewRevisionProgressing", "RolloutInProgress"),
        _ => ("NewRevisionProgressing", "InstancesNotReady"),
    };
    let ready_message = match waiting {
        Some(at) => format!("{counts}; replacements wait until {at}"),
        None => counts.clone(),
    };
    out.status = AppStatus {
        replicas: live.len() as i32,
        ready_replicas: healthy as i32,
        updated_replicas: new.len() as i32,
        available_replicas: healthy as i32,
        observed_generation: v.generation,
        selector: Some(format!("{}={}", mosaic_crds::app::APP_LABEL, v.name)),
        current_revision: current,
        update_revision: Some(v.revision.to_string()),
        launch_backoff: backoff,
        revisions: history(v),
        endpoints: endpoints(v.instances),
        conditions: vec![
            cond(
                conditions::AVAILABLE,
                available,
                if available {
                    "MinimumReplicasAvailable"
                } else {
                    "MinimumReplicasUnavailable"
                },
                format!("{healthy} healthy, {min_healthy} needed"),
            ),
            cond(
                conditions::PROGRESSING,
                !spec.paused || complete,
                progress_reason,
                counts,
            ),
            cond(READY, complete, ready_reason, ready_message),
        ],
    };
    out.requeue = requeue.0;
    out
}

/// The revision history: the last one written, with the current template
/// added (or, when an undo brought an older one back, renumbered as the
/// newest), trimmed to the current one and `revisionHistoryLimit` others.
fn history(v: &View<'_>) -> Vec<Revision> {
    let mut list: Vec<Revision> = v.status.map(|s| s.revisions.clone()).unwrap_or_default();
    let newest = list.iter().map(|r| r.number).max().unwrap_or(0);
    match list.iter_mut().find(|r| r.revision == v.revision) {
        Some(r) if r.number != newest => r.number = newest + 1,
        Some(_) => {}
        None => list.push(Revision {
            revision: v.revision.to_string(),
            number: newest + 1,
            template: v.spec.template.clone(),
        }),
    }
    list.sort_by_key(|r| r.number);
    let keep = v.spec.revision_history_limit.max(0) as usize + 1;
    if list.len() > keep {
        list.drain(..list.len() - keep);
    }
    list
}

/// Marathon's bounds for `r` replicas: the fewest healthy and the most running.
pub fn bounds(spec: &AppSpec, r: usize) -> (usize, usize) {
    let s = &spec.upgrade_strategy;
    let min_healthy = (r as f64 * s.minimum_health_capacity.clamp(0.0, 1.0)).ceil() as usize;
    let mut max_capacity =
        (r as f64 * (1.0 + s.maximum_over_capacity.clamp(0.0, 1.0))).floor() as usize;
    if min_healthy == max_capacity {
        max_capacity += 1;
    }
    (min_healthy, max_capacity)
}

/// The launch delay after `failures` instances ended in a row.
pub fn delay(spec: &AppSpec, failures: u32) -> SignedDuration {
    let exp = failures.saturating_sub(1).min(1000) as i32;
    let secs = (spec.backoff_seconds.max(0.0) * spec.backoff_factor.max(1.0).powi(exp))
        .min(spec.max_launch_delay_seconds.max(0.0))
        .min(MAX_DELAY_SECONDS);
    SignedDuration::from_secs_f64(if secs.is_finite() { secs } else { 0.0 })
}

/// The order instances go in: unhealthy (and unplaced) ones first, then by
/// the App's kill selection.
fn ordered<'a>(list: &[&'a Instance], by: KillSelection) -> impl Iterator<Item = &'a Instance> {
    let mut v: Vec<&Instance> = list.to_vec();
    v.sort_by(|a, b| {
        let age = match by {
            KillSelection::YoungestFirst => b.created.cmp(&a.created),
            KillSelection::OldestFirst => a.created.cmp(&b.created),
        };
        a.deletion_cost
            .cmp(&b.deletion_cost)
            .then(a.ready().cmp(&b.ready()))
            .then(age)
            .then(a.name.cmp(&b.name))
    });
    v.into_iter()
}

fn human(d: SignedDuration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

/// The earliest time to look again.
#[derive(Default)]
struct Requeue(Option<Duration>);

impl Requeue {
    fn at(&mut self, now: Timestamp, when: Timestamp) {
        let d = Duration::try_from(when.duration_since(now))
            .unwrap_or_default()
            .min(Duration::from_secs(300))
            + Duration::from_millis(10);
        self.0 = Some(self.0.map_or(d, |e| e.min(d)));
    }
}

#[cfg(test)]
mod tests;
