//! What isolation costs a launch (issue 21's benchmark): the `mosaic
//! executor` started on one run's spec, once plainly and once isolated (its
//! user, PID and mount namespaces, seccomp: `mosaic_agent::launch`), in
//! alternation, timed from the executor's start to its `started` line (the
//! task's process running) and to its end.

use anyhow::{Context, Result};
use mosaic_agent::cgroup::{Limits, Mode};
use mosaic_agent::executor::ExecSpec;
use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, Instant};

/// Launch latencies, plain and isolated: (to started, to ended) of each run.
pub struct Figures {
    pub plain: Vec<(Duration, Duration)>,
    pub isolated: Vec<(Duration, Duration)>,
}

/// Runs `n` pairs of `/bin/true` launches through `mosaic` (the binary) in `dir`.
pub fn pairs(mosaic: &Path, dir: &Path, n: usize) -> Result<Figures> {
    let identity = mosaic_agent::users::ensure_task_user(mosaic_agent::users::DEFAULT_TASK_USER)
        .map_err(anyhow::Error::msg)?;
    let mode = Mode::detect(Path::new("/sys/fs/cgroup"));
    let mut figures = Figures {
        plain: Vec::new(),
        isolated: Vec::new(),
    };
    for i in 0..n {
        for isolated in [false, true] {
            let run = dir.join(format!("run-{i}-{isolated}"));
            let sandbox = dir.join(format!("sandbox-{i}-{isolated}/0"));
            std::fs::create_dir_all(&run)?;
            std::fs::create_dir_all(&sandbox)?;
            let spec = ExecSpec {
                argv: vec!["/bin/true".into()],
                env: vec![("PATH".into(), "/usr/bin:/bin".into())],
                working_dir: sandbox.clone(),
                sandbox: sandbox.clone(),
                cgroup: mode.clone(),
                cgroup_name: format!("bench-isolation-{i}-{isolated}"),
                limits: Limits {
                    cpus_milli: 100,
                    memory_bytes: 64 << 20,
                    pids_max: 64,
                },
                isolation: isolated.then(|| mosaic_agent::launch::Isolation {
                    identity: identity.clone(),
                    hide: vec![dir.to_path_buf()],
                    tmp_bytes: 64 << 20,
                }),
            };
            mosaic_agent::executor::write_atomically(&run, mosaic_agent::executor::SPEC, &spec)?;
            let t = Instant::now();
            let mut child = std::process::Command::new(mosaic)
                .arg("executor")
                .arg(&run)
                .envs(mosaic_agent::executor::env())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .context("starting mosaic executor")?;
            let mut lines = std::io::BufReader::new(child.stdout.take().expect("piped")).lines();
            let first = lines.next().transpose()?.unwrap_or_default();
            let started = t.elapsed();
            anyhow::ensure!(
                first.starts_with("started"),
                "the executor said {first:?} (see {}/executor.log)",
                run.display()
            );
            for _ in lines.by_ref() {}
            child.wait()?;
            let ended = t.elapsed();
            let exit: mosaic_agent::executor::Exited =
                mosaic_agent::executor::read(&run, mosaic_agent::executor::EXIT)
                    .context("no exit.json")?;
            anyhow::ensure!(exit.exit_code == Some(0), "the task ended {exit:?}");
            let into = if isolated {
                &mut figures.isolated
            } else {
                &mut figures.plain
            };
            into.push((started, ended));
        }
    }
    Ok(figures)
}
