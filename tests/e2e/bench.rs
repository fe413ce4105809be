//! `mosaic bench` end to end, small: it starts its own server and simulated
//! agents, every task runs, and the JSON carries the keys the spec names with
//! figures that agree with each other.

use crate::support::mosaic_bin;
use anyhow::{Context, Result, ensure};
use std::process::Command;

#[test]
fn bench_runs_every_task_and_writes_its_figures() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let json = dir.path().join("figures.json");
    let out = Command::new(mosaic_bin())
        .args([
            "bench",
            "--agents",
            "4",
            "--tasks",
            "200",
            "--frameworks",
            "4",
            "--roles",
            "2",
        ])
        .args([
            "--agent-resources",
            "cpus=8,memory=16Gi",
            "--timeout",
            "120",
            "--dir",
        ])
        .arg(dir.path())
        .arg("--json")
        .arg(&json)
        .output()
        .context("running mosaic bench")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "mosaic bench failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        stdout.contains("placement throughput"),
        "no table:\n{stdout}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json)?)?;
    ensure!(
        v["tasks"] == 200 && v["running"] == 200,
        "not every task ran: {v}"
    );
    for key in [
        "tasks_per_second",
        "latency_p50_ms",
        "latency_p99_ms",
        "allocator_cycle_ms",
        "peak_rss_bytes",
    ] {
        ensure!(v[key].is_number(), "{key} is missing: {v}");
    }
    let f = |k: &str| v[k].as_f64().unwrap_or(-1.0);
    ensure!(f("tasks_per_second") > 0.0, "no throughput: {v}");
    ensure!(
        0.0 < f("latency_p50_ms") && f("latency_p50_ms") <= f("latency_p99_ms"),
        "latencies out of order: {v}"
    );
    ensure!(
        f("bind_p50_ms") <= f("latency_p50_ms"),
        "bound after Running: {v}"
    );
    ensure!(f("peak_rss_bytes") > 1e6, "no server memory read: {v}");
    // At the least a create, a bind and a Running report per task.
    ensure!(
        f("requests_per_task") >= 3.0,
        "server requests not counted: {v}"
    );
    ensure!(
        v["cycles"].as_u64().unwrap_or(0) >= 1,
        "no scheduler cycle: {v}"
    );
    ensure!(
        v["fairness"]["starved_frameworks"] == 0,
        "a framework starved: {v}"
    );
    Ok(())
}
