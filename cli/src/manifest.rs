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
    /// key (`name:` or `"name":`) after the previous one, more indented.
    pub fn locate(&self, path: &str) -> Option<String> {
        let lines: Vec<&str> = self.text.lines().collect();
        let mut from = 0;
        let mut indent: Option<usize> = None;
        let mut found = None;
        for seg in path.split('.') {
            let key = seg.split('[').next().unwrap_or(seg);
            let hit = lines.iter().enumerate().skip(from).find(|(_, l)| {
                let body = l.trim_start().trim_start_matches("- ");
                let ind = l.len() - l.trim_start().len();
                indent.is_none_or(|i| ind > i)
                    && (body.starts_with(&format!("{key}:"))
                        || body.starts_with(&format!("\"{key}\":")))
            })?;
            indent = Some(hit.1.len() - hit.1.trim_start().len());
            from = hit.0 + 1;
            found = Some(hit.0);
        }
        found.map(|i| format!("{}:{}", self.file, self.first_line + i))
    }
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
}
