//! Garbage collection of ended runs (as Mesos's agent `--gc_delay`): a run's
//! executor record and sandbox (its output) are kept for `gc_delay` after the
//! run ended, so `mosaic logs` works for a while, then removed.

use crate::executor::{self, ExecSpec};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Removes the runs under `data_dir` that ended more than `delay` ago; returns how many.
pub fn collect(data_dir: &Path, delay: Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(data_dir.join("executors")) else {
        return 0;
    };
    let now = SystemTime::now();
    let mut removed = 0;
    for e in entries.flatten() {
        let dir = e.path();
        // A run that has not ended (no exit.json) is never collected.
        let Ok(ended) = std::fs::metadata(dir.join(executor::EXIT)).and_then(|m| m.modified())
        else {
            continue;
        };
        if now.duration_since(ended).unwrap_or_default() < delay {
            continue;
        }
        if let Some(spec) = executor::read::<ExecSpec>(&dir, executor::SPEC) {
            let _ = std::fs::remove_dir_all(&spec.sandbox);
            // The task's directory goes with its last run.
            if let Some(parent) = spec.sandbox.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
        if std::fs::remove_dir_all(&dir).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Collects every `delay / 4` (at most every 10 minutes) until aborted.
pub async fn run(data_dir: std::path::PathBuf, delay: Duration) {
    let every = (delay / 4).clamp(Duration::from_millis(250), Duration::from_secs(600));
    loop {
        tokio::time::sleep(every).await;
        let dir = data_dir.clone();
        let n = tokio::task::spawn_blocking(move || collect(&dir, delay))
            .await
            .unwrap_or(0);
        if n > 0 {
            tracing::info!(
                runs = n,
                "removed the sandboxes of runs that ended more than {delay:?} ago"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ended_runs_go_and_running_ones_stay() {
        let data = tempfile::tempdir().unwrap();
        let make = |name: &str, ended: bool| {
            let run = data.path().join("executors").join(name);
            let sandbox = data
                .path()
                .join("sandboxes/default")
                .join(format!("t-{name}"))
                .join("0");
            std::fs::create_dir_all(&run).unwrap();
            std::fs::create_dir_all(&sandbox).unwrap();
            std::fs::write(sandbox.join("stdout"), "out").unwrap();
            let spec = ExecSpec {
                argv: vec!["true".into()],
                env: vec![],
                working_dir: sandbox.clone(),
                sandbox: sandbox.clone(),
                cgroup: crate::cgroup::Mode::None,
                cgroup_name: name.into(),
                limits: crate::cgroup::Limits {
                    cpus_milli: 100,
                    memory_bytes: 1 << 20,
                    pids_max: 10,
                },
                isolation: None,
            };
            executor::write_atomically(&run, executor::SPEC, &spec).unwrap();
            if ended {
                std::fs::write(run.join(executor::EXIT), "{}").unwrap();
            }
            (run, sandbox)
        };
        let (done_run, done_sandbox) = make("done", true);
        let (live_run, live_sandbox) = make("live", false);
        assert_eq!(
            collect(data.path(), Duration::from_secs(3600)),
            0,
            "too recent"
        );
        assert_eq!(collect(data.path(), Duration::ZERO), 1);
        assert!(!done_run.exists() && !done_sandbox.exists());
        assert!(
            !done_sandbox.parent().unwrap().exists(),
            "the task's directory went with its last run"
        );
        assert!(live_run.exists() && live_sandbox.join("stdout").exists());
    }
}
