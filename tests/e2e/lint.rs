//! The lifecycle vocabulary holds by construction: no status body in the
//! controllers or the agent is assembled as raw `json!`; each is built from
//! the typed status builders in `crds/` (`mosaic_crds::lifecycle` and the
//! kinds' own), so a phase reads the same whoever writes it.

use crate::support::{repo_root, rust_sources};

/// Every `json!(...)` invocation in `text`, with its line number.
fn json_macros(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("json!(") {
        let start = from + i + "json!(".len();
        let mut depth = 1;
        let mut end = start;
        for (k, c) in text[start..].char_indices() {
            match c {
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                end = start + k;
                break;
            }
        }
        let line = text[..start].lines().count();
        out.push((line, &text[start..end.max(start)]));
        from = end.max(start);
    }
    out
}

/// What makes a `json!` a status body: the fields of a status or of a `Status`.
fn is_status_body(body: &str) -> bool {
    ["\"status\"", "\"conditions\"", "\"phase\"", "\"Status\""]
        .iter()
        .any(|k| body.contains(k))
}

#[test]
fn no_status_body_in_the_controllers_or_the_agent_is_raw_json() {
    let mut files = Vec::new();
    for dir in ["controllers/src", "agent/src"] {
        files.extend(rust_sources(&repo_root().join(dir)));
    }
    assert!(files.len() > 20, "found only {files:?}");
    let mut found = Vec::new();
    for (f, test) in &files {
        // Unit tests' fixtures describe objects as the API holds them (and
        // answers the fake API gives); they write no status.
        if *test || f.ends_with("fake_api.rs") {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        for (line, body) in json_macros(&text) {
            if is_status_body(body) {
                found.push(format!("{}:{line}: json!({body})", f.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "status bodies built as raw json! (build them with mosaic_crds::lifecycle or the kind's typed status):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_lint_sees_a_status_body() {
    let sample = r#"let x = json!({"a": 1}); let b = json!({"status": {"phase": "Running"}});"#;
    let found: Vec<bool> = json_macros(sample)
        .into_iter()
        .map(|(_, b)| is_status_body(b))
        .collect();
    assert_eq!(found, [false, true]);
}
