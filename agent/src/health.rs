//! Health checks of a running task (`spec.healthCheck`): a command (exit 0 is
//! healthy), an HTTP GET (2xx and 3xx are healthy) or a TCP connect, on the
//! agent's host. After `initialDelaySeconds`, one check every `periodSeconds`,
//! each failing after `timeoutSeconds`; `failureThreshold` failures in a row
//! report the task unhealthy, which kills it with reason HealthCheckFailed.

use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use mosaic_crds::ports::TaskPort;
use mosaic_crds::task::{HealthCheck, check_port};
use std::path::PathBuf;
use std::time::Duration;

/// Where a command check runs.
pub enum Runner {
    /// In the task itself, through `EXECUTOR executor --enter RUN_DIR COMMAND`
    /// (as the task's user, in its namespaces and cgroup).
    InTask {
        /// The `mosaic` binary.
        executor: PathBuf,
        /// The run's directory.
        run_dir: PathBuf,
    },
    /// By `/bin/sh -c` in this directory, as the caller (unit tests).
    #[cfg_attr(not(test), allow(dead_code))]
    Here(PathBuf),
}

/// What a check reports to.
pub struct Target {
    /// Where a command check runs.
    pub runner: Runner,
    /// Called when the task becomes healthy (first success, or success after failures).
    pub healthy: Box<dyn Fn() + Send + Sync>,
    /// Called once when the failures reach the threshold, with the last one.
    pub failed: Box<dyn Fn(String) + Send + Sync>,
    /// The host ports the task was given (what a `portName` names).
    pub ports: Vec<TaskPort>,
}

/// Checks until the threshold of failures is reached (or the caller aborts it).
pub async fn check(hc: HealthCheck, target: Target) {
    tokio::time::sleep(Duration::from_secs(hc.initial_delay_seconds.into())).await;
    let timeout = Duration::from_secs(hc.timeout_seconds.max(1).into());
    let period = Duration::from_secs(hc.period_seconds.max(1).into());
    let mut failures = 0;
    let mut healthy = false;
    loop {
        let result = match tokio::time::timeout(timeout, once(&hc, &target)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {} s", timeout.as_secs())),
        };
        match result {
            Ok(()) => {
                failures = 0;
                if !healthy {
                    healthy = true;
                    (target.healthy)();
                }
            }
            Err(msg) => {
                failures += 1;
                healthy = false;
                tracing::info!(
                    failures,
                    threshold = hc.failure_threshold,
                    "health check failed: {msg}"
                );
                if failures >= hc.failure_threshold.max(1) {
                    (target.failed)(format!(
                        "{failures} checks in a row failed; the last: {msg}"
                    ));
                    return;
                }
            }
        }
        tokio::time::sleep(period).await;
    }
}

/// One check.
async fn once(hc: &HealthCheck, target: &Target) -> Result<(), String> {
    if let Some(exec) = &hc.exec {
        let mut cmd = match &target.runner {
            Runner::InTask { executor, run_dir } => {
                let mut c = tokio::process::Command::new(executor);
                c.envs(crate::executor::env())
                    .arg("executor")
                    .arg("--enter")
                    .arg(&exec.command)
                    .arg(run_dir);
                c
            }
            Runner::Here(dir) => {
                let mut c = tokio::process::Command::new("/bin/sh");
                c.arg("-c").arg(&exec.command).current_dir(dir);
                c
            }
        };
        let status = cmd
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .status()
            .await
            .map_err(|e| format!("could not run `{}`: {e}", exec.command))?;
        return match status.code() {
            Some(0) => Ok(()),
            Some(c) => Err(format!("`{}` exited {c}", exec.command)),
            None => Err(format!("`{}` was killed by a signal", exec.command)),
        };
    }
    if let Some(http) = &hc.http {
        let port = check_port(http.port, http.port_name.as_deref(), &target.ports)?;
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connecting to port {port}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP to port {port}: {e}"))?;
        tokio::spawn(conn);
        let req = http::Request::get(&http.path)
            .header(http::header::HOST, format!("127.0.0.1:{port}"))
            .header(http::header::USER_AGENT, "mosaic-agent health check")
            .body(Empty::<bytes::Bytes>::new())
            .map_err(|e| format!("bad path {:?}: {e}", http.path))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("GET {} on port {port}: {e}", http.path))?;
        let code = resp.status().as_u16();
        return if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("GET {} on port {port} answered {code}", http.path))
        };
    }
    if let Some(tcp) = &hc.tcp {
        let port = check_port(tcp.port, tcp.port_name.as_deref(), &target.ports)?;
        return tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map(|_| ())
            .map_err(|e| format!("connecting to port {port}: {e}"));
    }
    Err("the health check names no exec, http or tcp check".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mosaic_crds::task::{ExecCheck, TcpCheck};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn quick(hc: HealthCheck) -> HealthCheck {
        HealthCheck {
            initial_delay_seconds: 0,
            period_seconds: 1,
            timeout_seconds: 2,
            failure_threshold: 2,
            ..hc
        }
    }

    async fn run(hc: HealthCheck) -> (usize, Option<String>) {
        let healthy = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(std::sync::Mutex::new(None));
        let (h, f) = (healthy.clone(), failed.clone());
        let target = Target {
            runner: Runner::Here(std::env::temp_dir()),
            healthy: Box::new(move || {
                h.fetch_add(1, Ordering::SeqCst);
            }),
            failed: Box::new(move |m| *f.lock().unwrap() = Some(m)),
            ports: Vec::new(),
        };
        // A check that keeps passing runs forever: look at it for a while.
        let _ = tokio::time::timeout(Duration::from_secs(4), check(hc, target)).await;
        let f = failed.lock().unwrap().clone();
        (healthy.load(Ordering::SeqCst), f)
    }

    #[tokio::test]
    async fn a_passing_exec_check_reports_healthy_once() {
        let (healthy, failed) = run(quick(HealthCheck {
            exec: Some(ExecCheck {
                command: "true".into(),
            }),
            ..Default::default()
        }))
        .await;
        assert_eq!(healthy, 1);
        assert_eq!(failed, None);
    }

    #[tokio::test]
    async fn a_closed_port_fails_after_the_threshold() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let (healthy, failed) = run(quick(HealthCheck {
            tcp: Some(TcpCheck {
                port: Some(port),
                port_name: None,
            }),
            ..Default::default()
        }))
        .await;
        assert_eq!(healthy, 0);
        let msg = failed.expect("the check should have failed");
        assert!(msg.contains("2 checks in a row"), "{msg}");
    }
}
