//! The crates' structure has no import cycles between their top-level
//! modules (a module that imports one which imports it back is one thing
//! split in two, or a layer upside down): each crate's `crate::module`
//! references, outside tests and comments, form a graph without cycles.

use crate::support::{repo_root, rust_sources};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The crates whose module graph is checked.
const CRATES: [&str; 8] = [
    "allocator",
    "crds",
    "apiserver",
    "controllers",
    "agent",
    "cli",
    "marathon",
    "listener",
];

/// Each identifier that follows `prefix` (`crate::`, or `super::` in a
/// top-level module's file, which names a sibling) in `text`, also inside
/// `prefix{a, b::c}`, comments left out.
fn referenced_after(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find(prefix) {
            rest = &rest[i + prefix.len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or("");
                for item in inner.split(',') {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        out.insert(name);
                    }
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        }
    }
    out
}

/// The modules `crate::` names in `text`.
fn referenced(text: &str) -> BTreeSet<String> {
    referenced_after(text, "crate::")
}

/// The top-level module a file under `src` belongs to (`None`: the crate root).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    (name != "lib" && name != "main").then(|| name.to_string())
}

/// The module graph of the crate whose sources are in `src`: test files
/// (`tests.rs`, `*_tests.rs`) left out.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (f, test) in rust_sources(src) {
        if test {
            continue;
        }
        let Some(module) = module_of(src, &f) else {
            continue;
        };
        let text = std::fs::read_to_string(&f).unwrap();
        let edges = g.entry(module.clone()).or_default();
        edges.extend(referenced(&text).into_iter().filter(|m| *m != module));
        // In a top-level module's own file (its tests left out), `super::`
        // is the crate root: `super::x` names the sibling `x`.
        if f.parent() == Some(src) {
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            let siblings = referenced_after(code, "super::");
            edges.extend(siblings.into_iter().filter(|m| *m != module));
        }
    }
    g
}

/// A cycle through `from`, if there is one (depth-first search).
fn cycle(g: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
    fn walk(
        g: &BTreeMap<String, BTreeSet<String>>,
        at: &str,
        target: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in g.get(at).into_iter().flatten() {
            if next == target {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(g, next, target, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![from.to_string()];
    walk(g, from, from, &mut path, &mut BTreeSet::new()).then(|| {
        path.push(from.to_string());
        path
    })
}

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    let mut found = Vec::new();
    for c in CRATES {
        let src = repo_root().join(c).join("src");
        let g = graph(&src);
        assert!(!g.is_empty(), "no modules found in {}", src.display());
        let mut reported = BTreeSet::new();
        for m in g.keys() {
            if let Some(cyc) = cycle(&g, m) {
                let key: BTreeSet<String> = cyc.iter().cloned().collect();
                if reported.insert(key) {
                    found.push(format!("{c}: {}", cyc.join(" -> ")));
                }
            }
        }
    }
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

#[test]
fn the_cycle_check_sees_a_cycle() {
    let text = "use crate::{b, c::D};\nlet x = crate::e::f(); // crate::ignored";
    let names: Vec<String> = referenced(text).into_iter().collect();
    assert_eq!(names, ["b", "c", "e"]);
    let siblings: Vec<String> = referenced_after("let n = super::http::now();", "super::")
        .into_iter()
        .collect();
    assert_eq!(siblings, ["http"]);
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    g.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(cycle(&g, "a").unwrap(), ["a", "b", "c", "a"]);
    g.get_mut("c").unwrap().clear();
    assert!(cycle(&g, "a").is_none());
}
