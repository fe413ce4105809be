//! `mosaic get KIND [NAME]`: Mosaic's objects as a table (the columns the
//! server's Table view gives, as kubectl shows them), or as YAML or JSON.

use crate::cluster;
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::ApiResource;
use serde_json::Value;
use std::path::PathBuf;

/// Output formats.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Output {
    /// More columns.
    Wide,
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}

/// Flags of `mosaic get`.
#[derive(Args, Debug)]
pub struct GetArgs {
    /// agents (ag), frameworks (fw), roles, reservations, tasks (tk) or offers.
    pub kind: String,
    /// One object's name (default: all of them).
    pub name: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum)]
    pub output: Option<Output>,
    /// The namespace (for namespaced kinds).
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// Every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// The kubeconfig to use (default: KUBECONFIG, then ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

/// Mosaic's kinds: (names users type, kind, plural, namespaced).
const KINDS: &[(&[&str], &str, &str, bool)] = &[
    (&["agents", "agent", "ag"], "Agent", "agents", false),
    (
        &["frameworks", "framework", "fw"],
        "Framework",
        "frameworks",
        true,
    ),
    (&["roles", "role"], "Role", "roles", false),
    (
        &["reservations", "reservation"],
        "Reservation",
        "reservations",
        false,
    ),
    (&["tasks", "task", "tk"], "Task", "tasks", true),
    (&["offers", "offer"], "Offer", "offers", true),
];

/// The API resource of a kind name as users type it, and whether it is namespaced.
pub fn resource(kind: &str) -> anyhow::Result<(ApiResource, bool)> {
    let Some((_, k, plural, namespaced)) = KINDS.iter().find(|(names, ..)| names.contains(&kind))
    else {
        bail!(
            "unknown kind {kind:?}: mosaic get knows agents, frameworks, roles, reservations, tasks and offers (kubectl get works for everything else)"
        );
    };
    let gvk = kube::api::GroupVersionKind::gvk("mosaic.dev", "v1alpha1", k);
    Ok((ApiResource::from_gvk_with_plural(&gvk, plural), *namespaced))
}

/// Prints the objects.
pub fn run(args: GetArgs) -> anyhow::Result<()> {
    let (ar, namespaced) = resource(&args.kind)?;
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        let (client, _) = cluster::user_client(args.kubeconfig.as_deref()).await?;
        let api: Api<DynamicObject> = if !namespaced || args.all_namespaces {
            Api::all_with(client.clone(), &ar)
        } else {
            Api::namespaced_with(client.clone(), &args.namespace, &ar)
        };
        let fail = |e: kube::Error| match e {
            kube::Error::Api(s) => anyhow::anyhow!("{}", s.message),
            e => anyhow::anyhow!("{e}"),
        };
        match args.output {
            Some(Output::Yaml | Output::Json) => {
                let value: Value = match &args.name {
                    Some(n) => serde_json::to_value(api.get(n).await.map_err(fail)?)?,
                    None => {
                        let list = api.list(&ListParams::default()).await.map_err(fail)?;
                        serde_json::json!({"apiVersion": "v1", "kind": "List", "items": list.items})
                    }
                };
                if matches!(args.output, Some(Output::Json)) {
                    println!("{}", serde_json::to_string_pretty(&value)?);
                } else {
                    print!("{}", serde_saphyr::to_string(&value)?);
                }
            }
            _ => {
                let mut path = if !namespaced || args.all_namespaces {
                    format!("/apis/mosaic.dev/v1alpha1/{}", ar.plural)
                } else {
                    format!(
                        "/apis/mosaic.dev/v1alpha1/namespaces/{}/{}",
                        args.namespace, ar.plural
                    )
                };
                if let Some(n) = &args.name {
                    path = format!("{path}/{n}");
                }
                let req = http::Request::get(&path)
                    .header(
                        http::header::ACCEPT,
                        "application/json;as=Table;v=v1;g=meta.k8s.io",
                    )
                    .body(Vec::new())?;
                let table: Value = client.request(req).await.map_err(fail)?;
                print_table(
                    &table,
                    matches!(args.output, Some(Output::Wide)),
                    namespaced && args.all_namespaces,
                );
            }
        }
        Ok(())
    })
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "<none>".into(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

fn print_table(table: &Value, wide: bool, with_namespace: bool) {
    let cols = table["columnDefinitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let rows = table["rows"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        eprintln!("No resources found.");
        return;
    }
    let shown: Vec<usize> = (0..cols.len())
        .filter(|&i| wide || cols[i]["priority"].as_i64().unwrap_or(0) == 0)
        .collect();
    let mut lines: Vec<Vec<String>> = Vec::new();
    let mut header: Vec<String> = shown
        .iter()
        .map(|&i| cols[i]["name"].as_str().unwrap_or("").to_uppercase())
        .collect();
    if with_namespace {
        header.insert(0, "NAMESPACE".into());
    }
    lines.push(header);
    for r in &rows {
        let cells = r["cells"].as_array().cloned().unwrap_or_default();
        let mut line: Vec<String> = shown
            .iter()
            .map(|&i| cells.get(i).map(cell).unwrap_or_default())
            .collect();
        if with_namespace {
            line.insert(
                0,
                r["object"]["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            );
        }
        lines.push(line);
    }
    let widths: Vec<usize> = (0..lines[0].len())
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for l in lines {
        let text: Vec<String> = l
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        println!("{}", text.join("   ").trim_end());
    }
}
