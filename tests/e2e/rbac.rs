//! RBAC in `mosaic server`, driven by the real kubectl: ServiceAccount tokens
//! from `kubectl create token`, Roles and bindings from `kubectl create`, a
//! user confined to one namespace, and `kubectl auth can-i` agreeing with what
//! the server then allows.

use crate::support::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Output;

fn kubectl_as(s: &TestServer, kubeconfig: &std::path::Path, args: &[&str]) -> Output {
    let mut c = s.kubectl_cmd(args);
    c.env("KUBECONFIG", kubeconfig);
    c.output().expect("running kubectl")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_user_bound_in_one_namespace_works_there_and_nowhere_else() {
    let s = TestServer::start().unwrap();
    for ns in ["team-a", "team-b"] {
        s.kubectl_ok(&["create", "namespace", ns]);
    }
    // A Mosaic Role and a Task in team-b, made by the admin.
    let dir = s.dir.path();
    let role = write_file(
        dir,
        "role.yaml",
        "apiVersion: mosaic.dev/v1alpha1\nkind: Role\nmetadata:\n  name: analytics\nspec:\n  weight: 1\n",
    );
    s.kubectl_ok(&["apply", "-f", &role]);
    let task = write_file(dir, "task.yaml", &task_yaml("job-1", "100m"));
    s.kubectl_ok(&["apply", "-n", "team-b", "-f", &task]);

    // alice may work with Tasks in team-a only.
    let alice = s.service_account_kubeconfig("team-a", "alice");
    s.kubectl_ok(&[
        "create",
        "role",
        "task-author",
        "-n",
        "team-a",
        "--verb=get,list,watch,create,patch,delete",
        "--resource=tasks.mosaic.dev",
    ]);
    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "alice-authors",
        "-n",
        "team-a",
        "--role=task-author",
        "--serviceaccount=team-a:alice",
    ]);

    let out = kubectl_as(&s, &alice, &["apply", "-n", "team-a", "-f", &task]);
    assert!(
        out.status.success(),
        "alice creates a task in team-a: {}",
        text(&out)
    );
    let out = kubectl_as(&s, &alice, &["get", "tasks", "-n", "team-a", "-o", "name"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "task.mosaic.dev/job-1",
        "{}",
        text(&out)
    );

    let out = kubectl_as(&s, &alice, &["get", "tasks", "-n", "team-b"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("User \"system:serviceaccount:team-a:alice\" cannot list resource \"tasks\" in API group \"mosaic.dev\" in the namespace \"team-b\""),
        "{}",
        text(&out)
    );
    let out = kubectl_as(&s, &alice, &["apply", "-n", "team-b", "-f", &task]);
    assert!(!out.status.success(), "no writes in team-b either");
    let out = kubectl_as(
        &s,
        &alice,
        &[
            "patch",
            "roles.mosaic.dev",
            "analytics",
            "--type=merge",
            "-p",
            "{\"spec\":{\"weight\":5}}",
        ],
    );
    assert!(
        !out.status.success() && text(&out).contains("Forbidden"),
        "{}",
        text(&out)
    );
    let reservation = write_file(
        dir,
        "reservation.yaml",
        "apiVersion: mosaic.dev/v1alpha1\nkind: Reservation\nmetadata:\n  name: grab\nspec:\n  role: analytics\n  agent: node-1\n  resources:\n    cpus: 1\n    memory: 1Gi\n",
    );
    let out = kubectl_as(&s, &alice, &["create", "-f", &reservation]);
    assert!(
        !out.status.success() && text(&out).contains("Forbidden"),
        "{}",
        text(&out)
    );
    let weight = s.kubectl_ok(&[
        "get",
        "roles.mosaic.dev",
        "analytics",
        "-o",
        "jsonpath={.spec.weight}",
    ]);
    assert_eq!(weight, "1", "the refused patch changed nothing");
    let out = s.kubectl(&["get", "reservations", "-o", "name"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "",
        "the refused create stored nothing"
    );

    // kubectl auth can-i says the same (exit 0 for yes, 1 for no).
    for (args, yes) in [
        (vec!["create", "tasks.mosaic.dev", "-n", "team-a"], true),
        (vec!["delete", "tasks.mosaic.dev", "-n", "team-a"], true),
        (vec!["create", "tasks.mosaic.dev", "-n", "team-b"], false),
        (vec!["get", "tasks.mosaic.dev", "-n", "team-b"], false),
        (vec!["update", "roles.mosaic.dev"], false),
        (vec!["create", "reservations.mosaic.dev"], false),
        (vec!["create", "rolebindings", "-n", "team-a"], false),
    ] {
        let mut full = vec!["auth", "can-i"];
        full.extend(&args);
        let out = kubectl_as(&s, &alice, &full);
        let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(
            said,
            if yes { "yes" } else { "no" },
            "can-i {args:?}: {}",
            text(&out)
        );
        assert_eq!(out.status.success(), yes, "can-i {args:?} exit status");
    }
    let admin_says = s.kubectl_ok(&["auth", "can-i", "delete", "reservations.mosaic.dev"]);
    assert_eq!(admin_says.trim(), "yes");
    let list = text(&kubectl_as(
        &s,
        &alice,
        &["auth", "can-i", "--list", "-n", "team-a"],
    ));
    assert!(
        list.lines().any(|l| l.starts_with("tasks.mosaic.dev")
            && l.contains("[get list watch create patch delete]")),
        "{list}"
    );

    // Unbinding takes effect at once; deleting the account voids its tokens.
    s.kubectl_ok(&["delete", "rolebinding", "alice-authors", "-n", "team-a"]);
    let out = kubectl_as(&s, &alice, &["get", "tasks", "-n", "team-a"]);
    assert!(text(&out).contains("Forbidden"), "{}", text(&out));
    s.kubectl_ok(&["delete", "serviceaccount", "alice", "-n", "team-a"]);
    let out = kubectl_as(&s, &alice, &["get", "tasks", "-n", "team-a"]);
    assert!(
        !out.status.success() && text(&out).contains("Unauthorized"),
        "{}",
        text(&out)
    );
}

#[test]
fn tokens_are_checked_and_issued_only_for_accounts_that_exist() {
    let s = TestServer::start().unwrap();
    let out = s.kubectl(&["create", "token", "nobody"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("serviceaccounts \"nobody\" not found"),
        "{}",
        text(&out)
    );
    let out = s.kubectl(&["create", "token", "nobody", "--duration=1m"]);
    assert!(!out.status.success());
    s.kubectl_ok(&["create", "serviceaccount", "short"]);
    let out = s.kubectl(&["create", "token", "short", "--duration=5m"]);
    assert!(
        text(&out).contains("may not specify a duration less than 10 minutes"),
        "{}",
        text(&out)
    );
    // A forged token (signed with another key) is refused.
    let kc = s.service_account_kubeconfig("default", "short");
    let good = std::fs::read_to_string(&kc).unwrap();
    let token = good
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .unwrap()
        .to_string();
    let (head, _sig) = token.rsplit_once('.').unwrap();
    let forged = write_file(
        s.dir.path(),
        "forged.kubeconfig",
        &with_token(&s.kubeconfig(), &format!("{head}.AAAA")),
    );
    let out = kubectl_as(&s, std::path::Path::new(&forged), &["get", "tasks"]);
    assert!(text(&out).contains("Unauthorized"), "{}", text(&out));
    // The genuine one authenticates, and is allowed nothing beyond discovery.
    let out = kubectl_as(&s, &kc, &["get", "tasks"]);
    assert!(
        text(&out).contains("User \"system:serviceaccount:default:short\" cannot list"),
        "{}",
        text(&out)
    );
}

fn user_kubeconfig(
    s: &TestServer,
    data_dir: &std::path::Path,
    user: &str,
    group: &str,
) -> std::path::PathBuf {
    let path = s.dir.path().join(format!("{user}.kubeconfig"));
    let out = std::process::Command::new(mosaic_bin())
        .args(["kubeconfig", "--user", user, "--group", group, "--data-dir"])
        .arg(data_dir)
        .arg("-o")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    path
}

#[test]
fn a_client_certificate_names_a_user_and_group_that_bindings_grant_to() {
    let s = TestServer::start().unwrap();
    let bob = user_kubeconfig(&s, s.dir.path(), "bob", "analysts");
    let out = kubectl_as(&s, &bob, &["get", "tasks", "-A"]);
    assert!(
        text(&out).contains("User \"bob\" cannot list resource \"tasks\""),
        "{}",
        text(&out)
    );
    s.kubectl_ok(&[
        "create",
        "clusterrole",
        "task-viewer",
        "--verb=get,list,watch",
        "--resource=tasks.mosaic.dev",
    ]);
    s.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "analysts",
        "--clusterrole=task-viewer",
        "--group=analysts",
    ]);
    let out = kubectl_as(&s, &bob, &["get", "tasks", "-A"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = kubectl_as(
        &s,
        &bob,
        &[
            "auth",
            "can-i",
            "list",
            "tasks.mosaic.dev",
            "-n",
            "anywhere",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "yes");
    let out = kubectl_as(&s, &bob, &["auth", "can-i", "delete", "tasks.mosaic.dev"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no");

    // A certificate from another cluster's CA does not get through the handshake.
    let other = TestServer::start().unwrap();
    let stranger = user_kubeconfig(&s, other.dir.path(), "mallory", "analysts");
    let url = format!("https://127.0.0.1:{}", s.port);
    let kc = std::fs::read_to_string(&stranger).unwrap();
    let kc: String = kc
        .lines()
        .map(|l| match l.split_once("server: ") {
            Some((indent, _)) => format!("{indent}server: {url}"),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    // Trust this server's CA, so that only the client certificate is in question.
    let admin = std::fs::read_to_string(s.kubeconfig()).unwrap();
    let ca = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("certificate-authority-data: "))
        .unwrap()
        .to_string();
    let kc: String = kc
        .lines()
        .map(|l| match l.split_once("certificate-authority-data: ") {
            Some((indent, _)) => format!("{indent}certificate-authority-data: {ca}"),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let stranger = write_file(s.dir.path(), "stranger.kubeconfig", &kc);
    let out = kubectl_as(&s, std::path::Path::new(&stranger), &["get", "tasks", "-A"]);
    assert!(!out.status.success(), "{}", text(&out));
    // Refused at the transport (the handshake), never reaching the API. In
    // TLS 1.3 the client sends its certificate after the server's Finished,
    // so the server's refusal can also reach kubectl as a reset connection
    // while it writes its request.
    let t = text(&out).to_lowercase();
    let transport = [
        "tls",
        "unable to connect",
        "connection reset",
        "broken pipe",
    ];
    assert!(
        !t.contains("forbidden") && transport.iter().any(|w| t.contains(w)),
        "{t}"
    );
}

/// Kubernetes's escalation prevention (issue 21, item 9): alice may manage
/// RoleBindings and Roles in team-a, but may grant there only what she holds,
/// unless she holds `bind` (bindings) or `escalate` (roles) on the role.
#[test]
fn a_user_cannot_grant_more_than_they_hold() {
    let s = TestServer::start().unwrap();
    s.kubectl_ok(&["create", "namespace", "team-a"]);
    let alice = s.service_account_kubeconfig("team-a", "alice");
    s.kubectl_ok(&[
        "create",
        "role",
        "binder",
        "-n",
        "team-a",
        "--verb=get,list,create,update,patch,delete",
        "--resource=rolebindings.rbac.authorization.k8s.io,roles.rbac.authorization.k8s.io",
    ]);
    s.kubectl_ok(&[
        "create",
        "role",
        "task-author",
        "-n",
        "team-a",
        "--verb=get,list,create",
        "--resource=tasks.mosaic.dev",
    ]);
    for role in ["binder", "task-author"] {
        s.kubectl_ok(&[
            "create",
            "rolebinding",
            &format!("alice-{role}"),
            "-n",
            "team-a",
            &format!("--role={role}"),
            "--serviceaccount=team-a:alice",
        ]);
    }
    let as_alice = |args: &[&str]| kubectl_as(&s, &alice, args);

    // cluster-admin bound to herself in team-a: refused, naming what she lacks.
    let out = as_alice(&[
        "create",
        "rolebinding",
        "mine",
        "-n",
        "team-a",
        "--clusterrole=cluster-admin",
        "--serviceaccount=team-a:alice",
    ]);
    assert!(
        !out.status.success(),
        "alice bound cluster-admin: {}",
        text(&out)
    );
    let t = text(&out);
    assert!(
        t.contains("forbidden")
            && t.contains("attempting to grant RBAC permissions not currently held"),
        "{t}"
    );
    let can = as_alice(&["auth", "can-i", "delete", "namespaces"]);
    assert_eq!(String::from_utf8_lossy(&can.stdout).trim(), "no");

    // A Role with more than she holds: refused; one within it: made and bound.
    let out = as_alice(&[
        "create",
        "role",
        "everything",
        "-n",
        "team-a",
        "--verb=*",
        "--resource=tasks.mosaic.dev",
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("not currently held"), "{}", text(&out));
    let out = as_alice(&[
        "create",
        "role",
        "reader",
        "-n",
        "team-a",
        "--verb=get,list",
        "--resource=tasks.mosaic.dev",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = as_alice(&[
        "create",
        "rolebinding",
        "bob-reads",
        "-n",
        "team-a",
        "--role=reader",
        "--serviceaccount=team-a:bob",
    ]);
    assert!(
        out.status.success(),
        "binding what she holds: {}",
        text(&out)
    );

    // With `bind` on cluster-admin (given by the admin), the binding is hers to make.
    s.kubectl_ok(&[
        "create",
        "clusterrole",
        "bind-admin",
        "--verb=bind",
        "--resource=clusterroles.rbac.authorization.k8s.io",
        "--resource-name=cluster-admin",
    ]);
    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "alice-bind-admin",
        "-n",
        "team-a",
        "--clusterrole=bind-admin",
        "--serviceaccount=team-a:alice",
    ]);
    let out = as_alice(&[
        "create",
        "rolebinding",
        "mine",
        "-n",
        "team-a",
        "--clusterrole=cluster-admin",
        "--serviceaccount=team-a:alice",
    ]);
    assert!(out.status.success(), "with bind: {}", text(&out));
}

/// `mosaic rotate-credentials` (issue 21, item 8): the old admin token stops
/// working on the running server, the rewritten kubeconfig works.
#[test]
fn rotated_tokens_replace_the_old_ones_on_a_running_server() {
    let s = TestServer::start().unwrap();
    let old = s.dir.path().join("old.kubeconfig");
    std::fs::copy(s.kubeconfig(), &old).unwrap();
    s.kubectl_ok(&["get", "namespaces"]);
    let out = std::process::Command::new(mosaic_bin())
        .args(["rotate-credentials", "--data-dir"])
        .arg(s.dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let o = kubectl_as(&s, &old, &["get", "namespaces"]);
        if !o.status.success() {
            assert!(text(&o).contains("Unauthorized"), "{}", text(&o));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the old admin token still works after 15 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    s.kubectl_ok(&["get", "namespaces"]);
    assert_eq!(
        std::fs::metadata(s.kubeconfig())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}
