//! Manifests as `mosaic apply` reads them: YAML or JSON files (several
//! documents each, or a `kind: List`), a directory of them, or stdin; each
//! object kept with its file, document and first line, so that an error the
//! server reports about a field (`unknown field "spec.resource"`) can name
//! the line it is on.

use anyhow::{Context, bail};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// One object of a manifest, with where it came from.
pub struct Doc {
    /// `FILE, document N` (and `, item M` inside a List).
    pub source: String,
    /// The file, for errors that name a line.
    pub file: String,
    /// The document's text.
    pub text: String,
    /// The line of the file the document starts on (1-based).
    pub first_line: usize,
    /// The object.
    pub object: Value,
}

impl Doc {
    /// `FILE:LINE` of the field at dotted `path` (`spec.resource`), when it
    /// can be found in the document's text: each segment is looked for as a
    /// key (`name:` or `"name":`) among the direct children of the previous
    /// one, within its block (never in a sibling's or a grandchild's).
    pub fn locate(&self, path: &str) -> Option<String> {
        let lines: Vec<&str> = self.text.lines().collect();
        let (mut from, mut parent): (usize, Option<usize>) = (0, None);
        let mut found = None;
        for seg in path.split('.') {
            let key = seg.split('[').next().unwrap_or(seg);
            let (i, col) = child(&lines, from, parent, key)?;
            parent = Some(col);
            from = i + 1;
            found = Some(i);
        }
        found.map(|i| format!("{}:{}", self.file, self.first_line + i))
    }
}

/// The line and column of `key` among the direct children of the key at
/// column `parent` (the document's root when `None`), from line `from` on.
fn child(lines: &[&str], from: usize, parent: Option<usize>, key: &str) -> Option<(usize, usize)> {
    let mut child_col = None;
    for (i, l) in lines.iter().enumerate().skip(from) {
        let body = l.trim_start();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let ind = l.len() - body.len();
        // A list may sit at its key's own indentation ("key:\n- item").
        if parent.is_some_and(|p| ind < p || (ind == p && !body.starts_with("- "))) {
            return None; // The parent's block ended.
        }
        let item = body.trim_start_matches("- ");
        // The key's column: a list item's key starts after its "- ".
        let col = ind + body.len() - item.len();
        if col == *child_col.get_or_insert(col)
            && (item.starts_with(&format!("{key}:")) || item.starts_with(&format!("\"{key}\":")))
        {
            return Some((i, col));
        }
    }
    None
}

/// The documents of `text`, each with the line it starts on.
fn split(text: &str) -> Vec<(usize, String)> {
    let mut docs = vec![(1, String::new())];
    for (i, line) in text.lines().enumerate() {
        if line == "---" || line.starts_with("--- ") {
            docs.push((i + 2, String::new()));
            continue;
        }
        let doc = &mut docs.last_mut().expect("one document at least").1;
        doc.push_str(line);
        doc.push('\n');
    }
    docs
}

fn files(args: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for f in args {
        if f.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(f)
                .with_context(|| format!("reading the directory {}", f.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension()
                        .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
                })
                .collect();
            entries.sort();
            paths.extend(entries);
        } else {
            paths.push(f.clone());
        }
    }
    Ok(paths)
}

/// Reads every object of every file (`-` is stdin).
pub fn read_all(args: &[PathBuf]) -> anyhow::Result<Vec<Doc>> {
    let mut docs = Vec::new();
    for p in files(args)? {
        let (name, text) = if p == Path::new("-") {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .context("reading manifests from stdin")?;
            ("<stdin>".to_string(), s)
        } else {
            let text = std::fs::read_to_string(&p)
                .with_context(|| format!("reading the manifest {}", p.display()))?;
            (p.display().to_string(), text)
        };
        for (i, (first_line, doc)) in split(&text).into_iter().enumerate() {
            let v: Value = serde_saphyr::from_str(&doc).map_err(|e| {
                anyhow::anyhow!(
                    "{name}, document {} (line {first_line}): invalid YAML: {e}",
                    i + 1
                )
            })?;
            if v.is_null() {
                continue; // an empty document (e.g. a trailing ---)
            }
            let source = format!("{name}, document {}", i + 1);
            // A List (as kubectl get -o yaml prints) holds objects.
            let items = if v["kind"] == "List" {
                let items = v["items"].as_array().cloned().unwrap_or_default();
                items
                    .into_iter()
                    .enumerate()
                    .map(|(j, item)| (format!("{source}, item {}", j + 1), item))
                    .collect()
            } else {
                vec![(source, v)]
            };
            for (source, object) in items {
                docs.push(Doc {
                    source,
                    file: name.clone(),
                    text: doc.clone(),
                    first_line,
                    object,
                });
            }
        }
    }
    if docs.is_empty() {
        bail!(
            "no objects found in {}",
            args.iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_keep_their_first_line_and_fields_are_located() {
        let text = "apiVersion: v1\nkind: ConfigMap\n---\n# a task\napiVersion: mosaic.dev/v1alpha1\n\
                    kind: Task\nmetadata:\n  name: t\nspec:\n  command: 'true'\n  resource:\n    cpus: 1\n";
        let docs = split(text);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].0, 4);
        let doc = Doc {
            source: "f, document 2".into(),
            file: "f.yaml".into(),
            text: docs[1].1.clone(),
            first_line: docs[1].0,
            object: Value::Null,
        };
        assert_eq!(doc.locate("spec.resource").as_deref(), Some("f.yaml:11"));
        assert_eq!(
            doc.locate("spec.resource.cpus").as_deref(),
            Some("f.yaml:12")
        );
        assert_eq!(doc.locate("metadata.labelz"), None);
    }

    #[test]
    fn fields_are_looked_for_only_among_direct_children() {
        let text = "spec:\n  env:\n    resource: 1\n  containers:\n  - name: a\n    image: x\n\
                    status:\n  resource: 2\nother:\n- cpus: 1\n";
        let doc = Doc {
            source: "f".into(),
            file: "f.yaml".into(),
            text: text.into(),
            first_line: 1,
            object: Value::Null,
        };
        // Neither the grandchild under env nor the sibling's under status.
        assert_eq!(doc.locate("spec.resource"), None);
        assert_eq!(doc.locate("spec.env.resource").as_deref(), Some("f.yaml:3"));
        assert_eq!(doc.locate("status.resource").as_deref(), Some("f.yaml:8"));
        assert_eq!(
            doc.locate("spec.containers[0].image").as_deref(),
            Some("f.yaml:6")
        );
        assert_eq!(doc.locate("other[0].cpus").as_deref(), Some("f.yaml:10"));
    }
}
