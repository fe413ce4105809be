use super::*;
use mosaic_crds::app::{InstanceTemplate, UpgradeStrategy};
use proptest::prelude::*;

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_000_000 + s).unwrap()
}

fn spec(replicas: i32, min: f64, over: f64) -> AppSpec {
    AppSpec {
        replicas,
        template: InstanceTemplate::default(),
        constraints: Vec::new(),
        ports: Vec::new(),
        upgrade_strategy: UpgradeStrategy {
            minimum_health_capacity: min,
            maximum_over_capacity: over,
        },
        paused: false,
        revision_history_limit: 10,
        kill_selection: KillSelection::YoungestFirst,
        backoff_seconds: 1.0,
        backoff_factor: 1.15,
        max_launch_delay_seconds: 300.0,
    }
}

fn inst(name: &str, rev: &str, created: i64, ready: bool) -> Instance {
    Instance {
        name: name.into(),
        revision: rev.into(),
        created: t(created),
        phase: Some(if ready {
            TaskPhase::Running
        } else {
            TaskPhase::Pending
        }),
        reason: None,
        ready_since: ready.then(|| t(created + 1)),
        terminating: false,
        draining: false,
        host: None,
        ports: Vec::new(),
        deletion_cost: 0,
    }
}

#[test]
fn an_instance_with_the_lowest_deletion_cost_goes_first_when_scaling_down() {
    let mut list = vec![
        inst("a", "new", 1, true),
        inst("b", "new", 2, true),
        inst("c", "new", 3, false),
    ];
    list[0].deletion_cost = i64::MIN;
    let s = spec(2, 1.0, 1.0);
    let p = plan(&view(&s, &list, None, 10));
    assert_eq!(
        p.kill,
        vec!["a".to_string()],
        "the oldest and ready, marked to go, before the one not ready"
    );
}

fn view<'a>(
    spec: &'a AppSpec,
    instances: &'a [Instance],
    status: Option<&'a AppStatus>,
    now: i64,
) -> View<'a> {
    View {
        name: "web",
        spec,
        generation: Some(1),
        revision: "new",
        instances,
        status,
        now: t(now),
    }
}

fn condition(s: &AppStatus, ty: &str) -> (String, String) {
    let c = s.conditions.iter().find(|c| c.type_ == ty).unwrap();
    (c.status.clone(), c.reason.clone())
}

#[test]
fn a_new_app_starts_its_replicas_and_is_ready_once_they_are_healthy() {
    let s = spec(3, 1.0, 1.0);
    let p = plan(&view(&s, &[], None, 0));
    assert_eq!((p.start, p.kill.len()), (3, 0));
    assert_eq!(condition(&p.status, READY).0, "False");
    assert_eq!(p.status.selector.as_deref(), Some("mosaic.dev/app=web"));

    let all: Vec<_> = (0..3)
        .map(|n| inst(&format!("i{n}"), "new", n, true))
        .collect();
    let p = plan(&view(&s, &all, None, 10));
    assert_eq!((p.start, p.kill.len()), (0, 0));
    assert_eq!(condition(&p.status, READY), ("True".into(), "Ready".into()));
    assert_eq!(condition(&p.status, conditions::AVAILABLE).0, "True");
    assert_eq!(
        (
            p.status.replicas,
            p.status.ready_replicas,
            p.status.updated_replicas
        ),
        (3, 3, 3)
    );
    assert_eq!(p.status.current_revision.as_deref(), Some("new"));
}

#[test]
fn scaling_down_kills_the_youngest_first_or_the_oldest_when_asked() {
    let mut s = spec(2, 1.0, 1.0);
    let all: Vec<_> = (0..5)
        .map(|n| inst(&format!("i{n}"), "new", n, true))
        .collect();
    let p = plan(&view(&s, &all, None, 10));
    assert_eq!(p.kill, vec!["i4", "i3", "i2"]);
    assert_eq!(p.start, 0);
    s.kill_selection = KillSelection::OldestFirst;
    let p = plan(&view(&s, &all, None, 10));
    assert_eq!(p.kill, vec!["i0", "i1", "i2"]);
    // Unhealthy ones go before any healthy one.
    let mut some = all.clone();
    some[1].ready_since = None;
    let p = plan(&view(&s, &some, None, 10));
    assert_eq!(p.kill[0], "i1");
}

#[test]
fn marathon_bounds() {
    assert_eq!(bounds(&spec(5, 0.5, 0.2), 5), (3, 6));
    assert_eq!(bounds(&spec(5, 1.0, 1.0), 5), (5, 10));
    // Equal bounds leave room for one more, so a rollout can begin.
    assert_eq!(bounds(&spec(4, 1.0, 0.0), 4), (4, 5));
    assert_eq!(bounds(&spec(0, 1.0, 1.0), 0), (0, 1));
}

#[test]
fn an_ended_instance_is_cleared_and_replaced_after_the_backoff() {
    let s = spec(2, 1.0, 1.0);
    let mut failed = inst("i0", "new", 0, false);
    failed.phase = Some(TaskPhase::Failed);
    failed.reason = Some("NonZeroExit".into());
    let all = vec![failed, inst("i1", "new", 1, true)];
    let p = plan(&view(&s, &all, None, 10));
    assert_eq!(p.clear, vec!["i0"]);
    assert_eq!(p.start, 0, "the replacement waits for the backoff");
    assert_eq!(p.notes[0].reason, "BackOff");
    assert!(p.notes[0].message.contains("NonZeroExit"), "{:?}", p.notes);
    let b = p.status.launch_backoff.clone().unwrap();
    assert_eq!(b.failures, 1);
    assert!(p.requeue.unwrap() <= Duration::from_millis(1100));
    assert_eq!(condition(&p.status, READY).1, "BackOff");

    // Once the instance is gone (being deleted) and the delay has passed: started.
    let mut gone = all.clone();
    gone[0].terminating = true;
    let p2 = plan(&view(&s, &gone, Some(&p.status), 10));
    assert_eq!((p2.start, p2.clear.len()), (0, 0), "still within the delay");
    let p3 = plan(&view(&s, &all[1..], Some(&p.status), 12));
    assert_eq!(p3.start, 1);
    assert_eq!(
        p3.status.launch_backoff.unwrap().failures,
        1,
        "kept until healthy"
    );
}

#[test]
fn the_backoff_grows_by_the_factor_up_to_the_maximum_and_resets_once_healthy() {
    let s = spec(1, 1.0, 1.0);
    let d = |n| delay(&s, n).as_secs_f64();
    assert!((d(1) - 1.0).abs() < 1e-9);
    assert!((d(2) - 1.15).abs() < 1e-9);
    assert!((d(3) - 1.3225).abs() < 1e-9);
    assert!((d(100) - 300.0).abs() < 1e-9);

    let status = AppStatus {
        update_revision: Some("new".into()),
        launch_backoff: Some(LaunchBackoff {
            failures: 3,
            next_launch_time: t(0).to_string(),
        }),
        ..AppStatus::default()
    };
    // Healthy since t=1: still within the 10 s it must hold at t=2, reset at t=11.
    let one = vec![inst("i0", "new", 0, true)];
    let p = plan(&view(&s, &one, Some(&status), 2));
    assert!(p.status.launch_backoff.is_some());
    assert!(p.requeue.is_some());
    let p = plan(&view(&s, &one, Some(&status), 11));
    assert_eq!(p.status.launch_backoff, None);
    // A template change resets it too.
    let mut changed = status.clone();
    changed.update_revision = Some("older".into());
    let p = plan(&view(&s, &[], Some(&changed), 0));
    assert_eq!((p.start, p.status.launch_backoff), (1, None));
}

#[test]
fn a_paused_rollout_holds_but_the_app_keeps_its_count() {
    let mut s = spec(2, 1.0, 1.0);
    s.paused = true;
    let all = vec![inst("a", "old", 0, true), inst("b", "old", 1, true)];
    let p = plan(&view(&s, &all, None, 5));
    assert_eq!((p.start, p.kill.len()), (0, 0), "no rollout while paused");
    assert_eq!(condition(&p.status, conditions::PROGRESSING).1, "Paused");
    // An instance ended: replaced (from the current template).
    let p = plan(&view(&s, &all[..1], None, 5));
    assert_eq!(p.start, 1);
    // Scaled down: old revisions go first.
    s.replicas = 1;
    let mixed = vec![
        inst("a", "old", 0, true),
        inst("n", "new", 1, true),
        inst("b", "old", 2, true),
    ];
    let p = plan(&view(&s, &mixed, None, 5));
    assert_eq!(p.kill, vec!["b", "a"]);
}

#[test]
fn absurd_backoff_values_are_bounded_not_a_panic() {
    let mut s = spec(1, 1.0, 1.0);
    s.backoff_seconds = 1e300;
    s.max_launch_delay_seconds = f64::INFINITY;
    s.backoff_factor = 1e10;
    assert_eq!(delay(&s, u32::MAX).as_secs_f64(), MAX_DELAY_SECONDS);
    let mut failed = inst("i0", "new", 0, false);
    failed.phase = Some(TaskPhase::Failed);
    let status = AppStatus {
        update_revision: Some("new".into()),
        launch_backoff: Some(LaunchBackoff {
            failures: u32::MAX,
            next_launch_time: "9999-12-31T00:00:00Z".into(),
        }),
        ..AppStatus::default()
    };
    let p = plan(&view(&s, &[failed], Some(&status), 0));
    assert_eq!(p.status.launch_backoff.unwrap().failures, u32::MAX);
    assert!(p.requeue.unwrap() <= Duration::from_secs(301));
}

/// One state of a simulated rollout.
#[derive(Clone)]
struct Sim {
    instances: Vec<Instance>,
    next: i64,
}

impl Sim {
    fn running(&self) -> usize {
        self.instances.iter().filter(|i| !i.ended()).count()
    }
    fn healthy(&self) -> usize {
        self.instances.iter().filter(|i| i.ready()).count()
    }
}

proptest! {
    /// Marathon's guarantee, over any order in which instances become
    /// healthy and kills complete: never fewer healthy than the minimum,
    /// never more running than the capacity, and the rollout ends with
    /// every instance new and healthy.
    #[test]
    fn a_rollout_keeps_within_its_bounds_whatever_the_order_of_events(
        replicas in 1i32..8,
        min in prop::sample::select(vec![0.0, 0.5, 0.8, 1.0]),
        over in prop::sample::select(vec![0.0, 0.2, 0.5, 1.0]),
        choices in prop::collection::vec(any::<u16>(), 400),
    ) {
        let s = spec(replicas, min, over);
        let r = replicas as usize;
        let (min_healthy, max_capacity) = bounds(&s, r);
        let mut sim = Sim {
            instances: (0..r).map(|n| inst(&format!("old{n}"), "old", n as i64, true)).collect(),
            next: 100,
        };
        for (step, c) in choices.iter().enumerate() {
            let p = plan(&view(&s, &sim.instances, None, step as i64 + 100));
            for k in &p.kill {
                sim.instances.iter_mut().find(|i| &i.name == k).unwrap().terminating = true;
            }
            for _ in 0..p.start {
                sim.next += 1;
                sim.instances.push(inst(&format!("new{}", sim.next), "new", sim.next, false));
            }
            prop_assert!(sim.running() <= max_capacity, "{} running > {}", sim.running(), max_capacity);
            prop_assert!(sim.healthy() >= min_healthy, "{} healthy < {}", sim.healthy(), min_healthy);
            // One event: a new instance becomes healthy, or a kill completes.
            let events: Vec<usize> = (0..sim.instances.len())
                .filter(|&n| {
                    let i = &sim.instances[n];
                    i.terminating || (!i.ready() && !i.ended())
                })
                .collect();
            if events.is_empty() {
                break;
            }
            let n = events[*c as usize % events.len()];
            let i = &mut sim.instances[n];
            if i.terminating {
                sim.instances.remove(n);
            } else {
                i.phase = Some(TaskPhase::Running);
                i.ready_since = Some(t(step as i64));
            }
            prop_assert!(sim.healthy() >= min_healthy, "{} healthy < {} after an event", sim.healthy(), min_healthy);
        }
        prop_assert_eq!(sim.instances.len(), r);
        prop_assert!(sim.instances.iter().all(|i| i.revision == "new" && i.ready()));
        let p = plan(&view(&s, &sim.instances, None, 10_000));
        prop_assert_eq!(condition(&p.status, READY).0, "True");
    }
}

#[test]
fn the_history_keeps_each_template_numbered_and_an_undo_renumbers_it() {
    let mut s = spec(1, 1.0, 1.0);
    s.revision_history_limit = 2;
    let mut status: Option<AppStatus> = None;
    let at = |rev: &'static str, status: &mut Option<AppStatus>| {
        let mut v = view(&s, &[], status.as_ref(), 0);
        v.revision = rev;
        let p = plan(&v);
        *status = Some(p.status);
    };
    for rev in ["a", "b", "c"] {
        at(rev, &mut status);
    }
    let numbers = |st: &Option<AppStatus>| -> Vec<(String, i64)> {
        st.as_ref()
            .unwrap()
            .revisions
            .iter()
            .map(|r| (r.revision.clone(), r.number))
            .collect()
    };
    assert_eq!(
        numbers(&status),
        [("a".into(), 1), ("b".into(), 2), ("c".into(), 3)]
    );
    // Back to b (an undo): b becomes the newest.
    at("b", &mut status);
    assert_eq!(
        numbers(&status),
        [("a".into(), 1), ("c".into(), 3), ("b".into(), 4)]
    );
    // A fourth template: the oldest beyond the limit goes.
    at("d", &mut status);
    assert_eq!(
        numbers(&status),
        [("c".into(), 3), ("b".into(), 4), ("d".into(), 5)]
    );
}

#[test]
fn instances_on_a_draining_agent_are_replaced_before_they_are_killed() {
    let s = spec(4, 1.0, 1.0);
    let mut all: Vec<_> = (0..4)
        .map(|n| inst(&format!("i{n}"), "new", n, true))
        .collect();
    all[0].draining = true;
    all[1].draining = true;
    let p = plan(&view(&s, &all, None, 10));
    assert_eq!((p.start, p.kill.len()), (2, 0), "replacements first");
    assert_eq!(condition(&p.status, READY).0, "False");
    all.push(inst("r0", "new", 20, true));
    all.push(inst("r1", "new", 21, true));
    let p = plan(&view(&s, &all, None, 30));
    let mut kill = p.kill.clone();
    kill.sort();
    assert_eq!(
        (p.start, kill),
        (0, vec!["i0".to_string(), "i1".to_string()])
    );
}
