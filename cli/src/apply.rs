//! `mosaic apply -f FILE|DIR|- [--wait]`: creates or updates the objects in
//! YAML or JSON manifests (several documents per file), then with `--wait`
//! shows their progress until each is Ready (a Task: running, and healthy
//! with a health check, or finished) or one fails for good (Stalled).
//!
//! Objects of kinds that report no Ready condition count as done once applied.

use crate::cluster;
use anyhow::{Context, bail};
use clap::Args;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::{ApiResource, Scope};
use kube::{Client, ResourceExt};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Flags of `mosaic apply`.
#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// A manifest file, a directory of them (*.yaml, *.yml, *.json), or `-` for stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Wait until every object is Ready (or one fails for good).
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits, e.g. 90s, 5m.
    #[arg(long, default_value = "5m")]
    pub timeout: String,
    /// The namespace for objects that name none.
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// The kubeconfig to use (default: KUBECONFIG, then ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

/// One document of a manifest, with where it came from.
struct Doc {
    source: String,
    object: Value,
}

/// Applies the manifests; with --wait, waits. Returns the exit code.
pub fn run(args: ApplyArgs) -> anyhow::Result<i32> {
    let timeout: Duration = crate::cluster::parse_duration(&args.timeout)
        .ok()
        .with_context(|| {
            format!(
                "--timeout {:?} is not a duration like 90s or 5m",
                args.timeout
            )
        })?;
    let docs = read_all(&args.files)?;
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        let (client, _) = cluster::user_client(args.kubeconfig.as_deref()).await?;
        let mut applied = Vec::new();
        let mut kinds = HashMap::new();
        for d in &docs {
            applied.push(apply(&client, &mut kinds, d, &args.namespace).await?);
        }
        if !args.wait {
            return Ok(0);
        }
        wait(&applied, timeout).await
    })
}

/// Reads every document of every file, with file and document number for errors.
fn read_all(files: &[PathBuf]) -> anyhow::Result<Vec<Doc>> {
    let mut paths = Vec::new();
    for f in files {
        if f == Path::new("-") {
            paths.push(f.clone());
        } else if f.is_dir() {
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
    let mut docs = Vec::new();
    for p in paths {
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
        let values: Vec<Value> = serde_saphyr::from_multiple(&text)
            .map_err(|e| anyhow::anyhow!("{name}: invalid YAML: {e}"))?;
        for (i, v) in values.into_iter().enumerate() {
            if v.is_null() {
                continue; // an empty document (e.g. a trailing ---)
            }
            // A List (as kubectl get -o yaml prints) holds objects.
            if v["kind"] == "List" {
                for (j, item) in v["items"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .enumerate()
                {
                    docs.push(Doc {
                        source: format!("{name}, document {}, item {}", i + 1, j + 1),
                        object: item,
                    });
                }
                continue;
            }
            docs.push(Doc {
                source: format!("{name}, document {}", i + 1),
                object: v,
            });
        }
    }
    if docs.is_empty() {
        bail!(
            "no objects found in {}",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(docs)
}

/// What was applied, to wait on.
struct Applied {
    api: Api<DynamicObject>,
    name: String,
    label: String,
}

async fn resource(
    client: &Client,
    api_version: &str,
    kind: &str,
) -> anyhow::Result<(ApiResource, Scope)> {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
    match kube::discovery::pinned_kind(client, &gvk).await {
        Ok((ar, caps)) => Ok((ar, caps.scope)),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            bail!(
                "the server has no kind {kind:?} in {api_version} (is the apiVersion right? `kubectl api-resources` lists what it has)"
            )
        }
        Err(kube::Error::Discovery(_)) => {
            bail!(
                "the server has no kind {kind:?} in {api_version} (`kubectl api-resources` lists what it has)"
            )
        }
        Err(e) => Err(e).context(format!("looking up kind {kind} in {api_version}")),
    }
}

/// Kinds looked up so far, by (apiVersion, kind).
type Kinds = HashMap<(String, String), (ApiResource, Scope)>;

async fn apply(
    client: &Client,
    kinds: &mut Kinds,
    d: &Doc,
    default_ns: &str,
) -> anyhow::Result<Applied> {
    let o = &d.object;
    let (Some(api_version), Some(kind)) = (o["apiVersion"].as_str(), o["kind"].as_str()) else {
        bail!("{}: an object needs apiVersion and kind", d.source);
    };
    let Some(name) = o["metadata"]["name"].as_str() else {
        bail!("{}: the {kind} has no metadata.name", d.source);
    };
    let key = (api_version.to_string(), kind.to_string());
    let (ar, scope) = match kinds.get(&key) {
        Some(found) => found.clone(),
        None => {
            let found = resource(client, api_version, kind)
                .await
                .with_context(|| d.source.clone())?;
            kinds.insert(key, found.clone());
            found
        }
    };
    let api: Api<DynamicObject> = match scope {
        Scope::Namespaced => {
            let ns = o["metadata"]["namespace"].as_str().unwrap_or(default_ns);
            Api::namespaced_with(client.clone(), ns, &ar)
        }
        Scope::Cluster => Api::all_with(client.clone(), &ar),
    };
    // As kubectl names objects: the lowercase kind, then the group.
    let label = format!(
        "{}{}/{name}",
        ar.kind.to_lowercase(),
        if ar.group.is_empty() {
            String::new()
        } else {
            format!(".{}", ar.group)
        }
    );
    let obj: DynamicObject = serde_json::from_value(o.clone())
        .with_context(|| format!("{}: not a Kubernetes object", d.source))?;
    let explain = |e: kube::Error| match e {
        kube::Error::Api(s) => anyhow::anyhow!("{}: {label}: {}", d.source, s.message),
        e => anyhow::anyhow!("{}: {label}: {e}", d.source),
    };
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => println!("{label} created"),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let before = api.get(name).await.map_err(explain)?;
            let after = api
                .patch(name, &PatchParams::default(), &Patch::Merge(o))
                .await
                .map_err(explain)?;
            if before.resource_version() == after.resource_version() {
                println!("{label} unchanged");
            } else {
                println!("{label} configured");
            }
        }
        Err(e) => return Err(explain(e)),
    }
    Ok(Applied {
        api,
        name: name.to_string(),
        label,
    })
}

/// Where an object stands: done, failed (with why), or still going (with a summary).
enum Progress {
    Ready(String),
    Failed(String),
    Waiting(String),
}

fn progress(o: &DynamicObject) -> Progress {
    let st = &o.data["status"];
    let cond = |t: &str| {
        st["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == t).cloned())
    };
    let phase = st["phase"].as_str().unwrap_or("");
    let current = st["observedGeneration"].as_i64().is_none()
        || st["observedGeneration"].as_i64() >= o.metadata.generation;
    let summary = match (phase, st["reason"].as_str()) {
        ("", _) => "waiting".to_string(),
        (p, Some(r)) => format!("{p} ({r})"),
        (p, None) => p.to_string(),
    };
    if let Some(c) = cond("Stalled")
        && c["status"] == "True"
        && current
    {
        return Progress::Failed(format!(
            "{summary}: {}",
            c["message"].as_str().unwrap_or_default()
        ));
    }
    match cond("Ready") {
        Some(c) if c["status"] == "True" && current => Progress::Ready(summary),
        Some(_) => Progress::Waiting(summary),
        // A Task always gets a Ready condition; other kinds may report none.
        None if o.types.as_ref().is_some_and(|t| t.kind == "Task") => Progress::Waiting(summary),
        None => Progress::Ready("applied".into()),
    }
}

async fn wait(applied: &[Applied], timeout: Duration) -> anyhow::Result<i32> {
    let deadline = Instant::now() + timeout;
    let mut shown: HashMap<String, String> = HashMap::new();
    loop {
        let mut waiting = Vec::new();
        for a in applied {
            let o = a
                .api
                .get(&a.name)
                .await
                .with_context(|| format!("reading {}", a.label))?;
            let (line, state) = match progress(&o) {
                Progress::Ready(s) => (format!("ready: {s}"), 0),
                Progress::Failed(s) => (format!("failed: {s}"), 2),
                Progress::Waiting(s) => (s, 1),
            };
            if shown.get(&a.label) != Some(&line) {
                println!("{}: {line}", a.label);
                shown.insert(a.label.clone(), line.clone());
            }
            match state {
                2 => {
                    eprintln!("error: {} failed for good: {line}", a.label);
                    return Ok(1);
                }
                1 => waiting.push(a.label.clone()),
                _ => {}
            }
        }
        if waiting.is_empty() {
            println!("all {} object(s) ready", applied.len());
            return Ok(0);
        }
        if Instant::now() >= deadline {
            eprintln!(
                "error: timed out after {timeout:?} waiting for: {}",
                waiting.join(", ")
            );
            return Ok(1);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
