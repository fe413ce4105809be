//! Data on disk is private (issue 21, item 8): the server's data dir, its
//! store and a backup of it, the agent's data dir and a task's sandbox have
//! the modes docs/security.md gives, and a local user who is not root cannot
//! find a Secret's value anywhere under them (tried as user `nobody` with
//! util-linux's `setpriv`).

use crate::support::*;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .mode()
        & 0o777
}

#[tokio::test]
async fn data_files_are_private_and_secrets_unreadable_by_other_users() {
    let s = TestServer::start().unwrap();
    let _agent = s.spawn_agent("modes-1", "cpus=1,memory=1Gi");
    s.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "db",
        "--from-literal=password=sekrit-9f3e1c",
    ]);
    let dir = write_file(s.dir.path(), "task.yaml", &task_yaml("hello", "100m"));
    s.kubectl_ok(&["apply", "-f", &dir]);
    let api = tasks_api(s.client().await.unwrap());
    wait_task(&api, "hello", Duration::from_secs(30), |st| {
        st["phase"] == "Finished"
    })
    .await
    .unwrap();
    let backup = s.dir.path().join("backup");
    let out = std::process::Command::new(mosaic_bin())
        .args(["backup", "--data-dir"])
        .arg(s.dir.path())
        .arg(&backup)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let data = s.dir.path();
    for d in [
        data.to_path_buf(),
        data.join("store"),
        data.join("pki"),
        backup.clone(),
        backup.join("store"),
        backup.join("pki"),
        data.join("agents/modes-1"),
    ] {
        assert_eq!(mode(&d), 0o700, "{}", d.display());
    }
    for f in [
        "store/store.db",
        "store/store.db-wal",
        "pki/ca.key",
        "pki/admin.token",
        "kubeconfig",
    ] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    for f in ["store/store.db", "pki/ca.key", "kubeconfig"] {
        assert_eq!(mode(&backup.join(f)), 0o600, "backup {f}");
    }
    let uid = api.get("hello").await.unwrap().metadata.uid.unwrap();
    let sandbox = data.join(format!("agents/modes-1/sandboxes/default/hello-{uid}/0"));
    assert_eq!(mode(&sandbox), 0o750);
    let meta = std::fs::metadata(&sandbox).unwrap();
    assert_ne!(meta.uid(), 0, "the sandbox belongs to the task's user");
    assert_eq!(mode(&sandbox.join("stdout")), 0o640);

    // Another local user finds the Secret's value nowhere (the test itself,
    // as root, does), even with every directory opened up: the files are
    // private themselves.
    use std::os::unix::fs::PermissionsExt;
    for d in [
        data.to_path_buf(),
        data.join("store"),
        backup.clone(),
        backup.join("store"),
    ] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let grep = |as_nobody: bool| {
        let mut c = if as_nobody {
            let mut c = std::process::Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "grep"]);
            c
        } else {
            std::process::Command::new("grep")
        };
        c.args(["-rla", "--", "c2Vrcml0LTlmM2UxYw"])
            .arg(data)
            .output()
            .unwrap()
    };
    let root = grep(false);
    assert!(
        !root.stdout.is_empty(),
        "the Secret's base64 value should be in the store (checked as root), else this test proves nothing"
    );
    let nobody = grep(true);
    assert!(
        nobody.stdout.is_empty(),
        "user nobody read the Secret's value from: {}",
        String::from_utf8_lossy(&nobody.stdout)
    );
}
