//! The conformance-style suite of tests/clients/: third-party Kubernetes
//! clients as published (the official Python `kubernetes`, kr8s, lightkube,
//! @kubernetes/client-node; pinned in tests/clients/requirements.txt and
//! package.json, installed by tests/run) against one real `mosaic up`. Each
//! client's flow asserts results and exits non-zero naming what differed;
//! each runs in a namespace of its own, so the one slow set-up is shared.

use crate::support::{Up, repo_root};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The Python with the clients installed: `$MOSAIC_TEST_PYTHON`, else
/// `.tools/py/bin/python` (tests/run makes it).
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("MOSAIC_TEST_PYTHON") {
        return p.into();
    }
    let p = repo_root().join(".tools/py/bin/python");
    assert!(
        p.exists(),
        "{} is missing: tests/run installs the Python clients (pip install -r tests/clients/requirements.txt into .tools/py)",
        p.display()
    );
    p
}

fn clients_dir() -> PathBuf {
    repo_root().join("tests/clients")
}

#[tokio::test]
async fn third_party_clients_work_unchanged() {
    let node_modules = clients_dir().join("node_modules/@kubernetes/client-node");
    assert!(
        node_modules.exists(),
        "{} is missing: tests/run installs it (npm ci in tests/clients)",
        node_modules.display()
    );
    let up = Up::start().await;
    let py = python();
    let flows: [(&str, Vec<&str>, &str); 4] = [
        ("python-kubernetes", vec!["python_kubernetes.py"], "py"),
        ("kr8s", vec!["kr8s_flow.py"], "py"),
        ("lightkube", vec!["lightkube_flow.py"], "py"),
        ("client-node", vec!["client_node.mjs"], "node"),
    ];
    let mut failed = Vec::new();
    for (name, args, runtime) in flows {
        let program = if runtime == "py" {
            py.clone()
        } else {
            PathBuf::from("node")
        };
        let out = Command::new(program)
            .current_dir(clients_dir())
            .args(args)
            .arg(format!("client-{name}"))
            .env("KUBECONFIG", up.kubeconfig())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("starting the {name} flow: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() || !stdout.contains(": ok") {
            failed.push(format!("{name} ({}):\n{stdout}{stderr}", out.status));
        }
    }
    assert!(
        failed.is_empty(),
        "client flows failed:\n{}",
        failed.join("\n")
    );
}
