//! `mosaic top`: what the cluster's resources go to. Allocation by role and
//! by framework with their dominant shares (the quantity weighted DRF
//! equalises), and each agent's allocation and measured use.

use crate::cluster;
use anyhow::Context;
use clap::Args;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use mosaic_crds::task::TaskPhase;
use mosaic_crds::{Agent, Framework, Role, Task};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Flags of `mosaic top`.
#[derive(Args, Debug)]
pub struct TopArgs {
    /// The kubeconfig to use (default: KUBECONFIG, then ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

/// Millicores and bytes.
#[derive(Clone, Copy, Default)]
struct Use {
    cpus: u64,
    mem: u64,
}

impl Use {
    fn add(&mut self, o: Use) {
        self.cpus += o.cpus;
        self.mem += o.mem;
    }
    fn share(&self, total: Use) -> f64 {
        let c = self.cpus as f64 / total.cpus.max(1) as f64;
        let m = self.mem as f64 / total.mem.max(1) as f64;
        c.max(m)
    }
}

fn of(q: &mosaic_crds::ResourceQuantities) -> Use {
    Use {
        cpus: q.cpus_milli().ok().flatten().unwrap_or(0),
        mem: q.memory_bytes().ok().flatten().unwrap_or(0),
    }
}

fn cpus(m: u64) -> String {
    if m.is_multiple_of(1000) {
        (m / 1000).to_string()
    } else {
        format!("{m}m")
    }
}

fn mem(b: u64) -> String {
    const GI: u64 = 1 << 30;
    const MI: u64 = 1 << 20;
    if b >= GI {
        format!("{:.1}Gi", b as f64 / GI as f64)
    } else {
        format!("{}Mi", b / MI)
    }
}

fn print(rows: Vec<Vec<String>>) {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        println!("{}", cells.join("   ").trim_end());
    }
}

/// Prints the tables.
pub fn run(args: TopArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        let (client, _) = cluster::user_client(args.kubeconfig.as_deref()).await?;
        let lp = ListParams::default();
        let agents = Api::<Agent>::all(client.clone())
            .list(&lp)
            .await
            .context("listing agents")?;
        let tasks = Api::<Task>::all(client.clone())
            .list(&lp)
            .await
            .context("listing tasks")?;
        let frameworks = Api::<Framework>::all(client.clone())
            .list(&lp)
            .await
            .context("listing frameworks")?;
        let roles = Api::<Role>::all(client.clone())
            .list(&lp)
            .await
            .context("listing roles")?;
        let mut total = Use::default();
        for a in &agents {
            if let Some(q) = a
                .status
                .as_ref()
                .and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()))
            {
                total.add(of(&q.quantities()));
            }
        }
        let role_of: BTreeMap<(String, String), String> = frameworks
            .iter()
            .map(|f| {
                (
                    (f.namespace().unwrap_or_default(), f.name_any()),
                    f.spec.role.clone(),
                )
            })
            .collect();
        let weight: BTreeMap<String, f64> = roles
            .iter()
            .map(|r| (r.name_any(), r.spec.weight))
            .collect();
        let mut by_role: BTreeMap<String, (Use, usize)> = BTreeMap::new();
        let mut by_fw: BTreeMap<String, (Use, usize, String)> = BTreeMap::new();
        let mut by_agent: BTreeMap<String, (Use, Use, usize)> = BTreeMap::new();
        // The role `default` always exists, implicitly.
        by_role.entry("default".into()).or_default();
        for r in &roles {
            by_role.entry(r.name_any()).or_default();
        }
        for t in &tasks {
            let st = t.status.clone().unwrap_or_default();
            let live = st.phase.is_some_and(TaskPhase::is_active);
            let Some(agent) = st.agent.filter(|_| live) else {
                continue;
            };
            let u = of(&t.spec.resources);
            let ns = t.namespace().unwrap_or_default();
            let role = role_of
                .get(&(ns.clone(), t.spec.framework.clone()))
                .cloned()
                .unwrap_or_else(|| "default".into());
            let e = by_role.entry(role.clone()).or_default();
            e.0.add(u);
            e.1 += 1;
            let e = by_fw
                .entry(format!("{ns}/{}", t.spec.framework))
                .or_insert((Use::default(), 0, role));
            e.0.add(u);
            e.1 += 1;
            let e = by_agent.entry(agent).or_default();
            e.0.add(u);
            if let Some(used) = &st.usage {
                e.1.add(of(used));
            }
            e.2 += 1;
        }
        println!(
            "Cluster: {} agents, {} cpus, {} memory\n",
            agents.items.len(),
            cpus(total.cpus),
            mem(total.mem)
        );
        let mut rows = vec![vec![
            "ROLE".into(),
            "WEIGHT".into(),
            "TASKS".into(),
            "CPUS".into(),
            "MEMORY".into(),
            "DOMINANT SHARE".into(),
        ]];
        for (role, (u, n)) in &by_role {
            rows.push(vec![
                role.clone(),
                weight.get(role).copied().unwrap_or(1.0).to_string(),
                n.to_string(),
                cpus(u.cpus),
                mem(u.mem),
                format!("{:.1}%", u.share(total) * 100.0),
            ]);
        }
        print(rows);
        println!();
        let mut rows = vec![vec![
            "FRAMEWORK".into(),
            "ROLE".into(),
            "TASKS".into(),
            "CPUS".into(),
            "MEMORY".into(),
            "DOMINANT SHARE".into(),
        ]];
        for (fw, (u, n, role)) in &by_fw {
            rows.push(vec![
                fw.clone(),
                role.clone(),
                n.to_string(),
                cpus(u.cpus),
                mem(u.mem),
                format!("{:.1}%", u.share(total) * 100.0),
            ]);
        }
        if rows.len() > 1 {
            print(rows);
            println!();
        }
        let mut rows = vec![vec![
            "AGENT".into(),
            "READY".into(),
            "TASKS".into(),
            "CPUS ALLOCATED".into(),
            "MEMORY ALLOCATED".into(),
            "CPUS USED".into(),
            "MEMORY USED".into(),
        ]];
        for a in &agents {
            let st = a.status.clone().unwrap_or_default();
            let cap = st
                .allocatable
                .as_ref()
                .or(st.capacity.as_ref())
                .map(|q| of(&q.quantities()))
                .unwrap_or_default();
            let ready = st
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            let (alloc, used, n) = by_agent.get(&a.name_any()).copied().unwrap_or_default();
            rows.push(vec![
                a.name_any(),
                ready.to_string(),
                n.to_string(),
                format!(
                    "{}/{} ({:.0}%)",
                    cpus(alloc.cpus),
                    cpus(cap.cpus),
                    alloc.cpus as f64 * 100.0 / cap.cpus.max(1) as f64
                ),
                format!(
                    "{}/{} ({:.0}%)",
                    mem(alloc.mem),
                    mem(cap.mem),
                    alloc.mem as f64 * 100.0 / cap.mem.max(1) as f64
                ),
                cpus(used.cpus),
                mem(used.mem),
            ]);
        }
        print(rows);
        Ok(())
    })
}
