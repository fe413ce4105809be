//! Marathon's v2 REST API (issue 24, acceptance 8) on `mosaic server
//! --marathon-listen`, driven by the `marathon` Python client from PyPI
//! (0.13.0, unchanged; tests/clients/marathon_flow.py) with a ServiceAccount
//! token that RBAC allows Apps and Tasks, and one it allows nothing: create,
//! list, get, scale, tasks, kill one (with and without scale), kill given
//! tasks, kill an app's tasks (by host, with scale), delete, with an
//! app definition from Marathon's documentation, seen through kubectl too.

use crate::support::{TestServer, kubectl_bin, repo_root, write_file};
use std::process::{Command, Stdio};

/// A free port on loopback (the server binds it a moment later).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn the_marathon_client_drives_apps() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let s = TestServer::start_with(&["--marathon-listen", &listen]).unwrap();
    let _a = s.spawn_agent("marathon-1", "cpus=2,memory=2Gi");
    let dir = s.dir.path();
    // A deployer allowed Apps and Tasks in the namespace, and a nobody.
    let rbac = write_file(
        dir,
        "rbac.yaml",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: deployer, namespace: default}\n---\n\
         apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: nobody, namespace: default}\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: marathon, namespace: default}\n\
         rules:\n- apiGroups: [mosaic.dev]\n  resources: [apps, tasks]\n  verbs: [get, list, watch, create, update, patch, delete]\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: marathon, namespace: default}\n\
         roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: marathon}\n\
         subjects: [{kind: ServiceAccount, name: deployer, namespace: default}]\n",
    );
    s.kubectl_ok(&["apply", "-f", &rbac]);
    let token = s.kubectl_ok(&["create", "token", "deployer"]);
    let denied = s.kubectl_ok(&["create", "token", "nobody"]);
    let python = std::env::var_os("MOSAIC_TEST_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".tools/py/bin/python"));
    assert!(
        python.exists(),
        "{} is missing: tests/run installs the Python clients",
        python.display()
    );
    let out = Command::new(python)
        .current_dir(repo_root().join("tests/clients"))
        .arg("marathon_flow.py")
        .arg(format!("http://{listen}"))
        .arg(token.trim())
        .arg(denied.trim())
        .env("KUBECTL", kubectl_bin())
        .env("KUBECONFIG", s.kubeconfig())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("marathon: ok"),
        "the marathon flow failed ({}):\n{stdout}{stderr}\nserver log:\n{}",
        out.status,
        crate::support::log_tail(&dir.join("server.log"), 40)
    );
}
