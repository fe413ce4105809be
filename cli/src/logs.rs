//! `mosaic logs TASK [-f] [--stderr]`: a task's output, fetched over HTTPS
//! from the agent that ran it (the address and pinned certificate in its
//! Agent status), with the caller's own credentials.

use crate::cluster;
use anyhow::{Context, bail};
use clap::Args;
use futures::AsyncBufReadExt;
use kube::api::Api;
use kube::{Client, ResourceExt};
use mosaic_crds::{Agent, Task};
use std::io::Write;
use std::path::PathBuf;

/// Flags of `mosaic logs`.
#[derive(Args, Debug)]
pub struct LogsArgs {
    /// The task's name.
    pub task: String,
    /// Keep printing output as it comes, until the task ends.
    #[arg(short, long)]
    pub follow: bool,
    /// Print stderr instead of stdout.
    #[arg(long)]
    pub stderr: bool,
    /// Which run (0 is the first; default: the latest).
    #[arg(long)]
    pub attempt: Option<u32>,
    /// The task's namespace.
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// The kubeconfig to use (default: KUBECONFIG, then ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Ask the agent itself, pinning the certificate its Agent publishes, with
    /// your credentials (for agents without their own identity, as on
    /// Kubernetes; otherwise the API server fetches the output and your
    /// credentials stay there).
    #[arg(long)]
    pub direct: bool,
}

/// Prints the output.
pub fn run(args: LogsArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(print(args))
}

async fn print(args: LogsArgs) -> anyhow::Result<()> {
    let (client, cfg) = cluster::user_client(args.kubeconfig.as_deref()).await?;
    let reader = open(&client, &cfg, &args).await?;
    copy_to_stdout(reader).await
}

/// Writes a task's output to stdout as it arrives.
pub async fn copy_to_stdout(mut reader: impl futures::AsyncBufRead + Unpin) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    loop {
        let buf = reader
            .fill_buf()
            .await
            .context("reading the task's output")?;
        if buf.is_empty() {
            return Ok(());
        }
        out.write_all(buf)?;
        out.flush()?;
        let n = buf.len();
        reader.consume_unpin(n);
    }
}

/// Opens the output stream of a task on its agent.
pub async fn open(
    client: &Client,
    cfg: &kube::Config,
    args: &LogsArgs,
) -> anyhow::Result<impl futures::AsyncBufRead + Unpin + use<>> {
    let (ns, name) = (&args.namespace, &args.task);
    let task = Api::<Task>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .with_context(|| format!("reading task {name} from {}", cfg.cluster_url))?
        .with_context(|| format!("there is no task {name} in namespace {ns}"))?;
    let st = task.status.clone().unwrap_or_default();
    let Some(agent_name) = st.agent.clone() else {
        bail!(
            "task {name} has not been placed on an agent yet (phase {:?}); it has no output",
            st.phase.unwrap_or_default()
        );
    };
    // Through the API server (tasks/NAME/log): the user's credentials stay there.
    let attempt = args.attempt.or(st.attempt).unwrap_or(0);
    let stream = if args.stderr { "stderr" } else { "stdout" };
    if !args.direct {
        let via_server = http::Request::get(format!(
            "/apis/{}/v1alpha1/namespaces/{ns}/tasks/{name}/log?stream={stream}&follow={}&attempt={attempt}",
            mosaic_crds::GROUP,
            args.follow
        ))
        .body(Vec::new())?;
        match client.request_stream(via_server).await {
            Ok(s) => return Ok(futures::future::Either::Left(s)),
            // A server without the subresource (Kubernetes answers an unknown
            // path so): the agent itself, below. (Any other 404 is the agent's own.)
            Err(kube::Error::Api(s))
                if s.code == 405
                    || (s.code == 404
                        && s.message.contains("could not find the requested resource")) => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("fetching the output of task {name} (on agent {agent_name})")
                });
            }
        }
    }
    let agent = Api::<Agent>::all(client.clone())
        .get(&agent_name)
        .await
        .with_context(|| format!("reading agent {agent_name}"))?;
    let ast = agent.status.unwrap_or_default();
    let (Some(address), Some(pem)) = (ast.address, ast.certificate) else {
        bail!("agent {agent_name} publishes no endpoint (it runs without --listen)");
    };
    let der = mosaic_agent::certificate_der(&pem)
        .with_context(|| format!("agent {agent_name} publishes an unreadable certificate"))?;
    let mut agent_cfg = cfg.clone();
    agent_cfg.cluster_url = address
        .parse()
        .with_context(|| format!("agent {agent_name} publishes a bad address {address:?}"))?;
    // An agent with its own identity serves a certificate the cluster CA
    // signed: it is verified against that CA (the kubeconfig's), never
    // pinned. Only an agent without one (on a Kubernetes cluster) has its
    // self-signed certificate pinned.
    if self_signed(&der) || cfg.root_cert.is_none() {
        agent_cfg.root_cert = Some(vec![der]);
    }
    agent_cfg.accept_invalid_certs = false;
    agent_cfg.tls_server_name = None;
    agent_cfg.proxy_url = None;
    let agent_client = Client::try_from(agent_cfg).context("building the agent client")?;
    let path = format!(
        "/tasks/{ns}/{name}/{stream}?uid={}&attempt={attempt}&follow={}",
        task.uid().unwrap_or_default(),
        args.follow
    );
    let req = http::Request::get(path).body(Vec::new())?;
    let s = agent_client.request_stream(req).await.with_context(|| {
        format!("fetching the output of task {name} from agent {agent_name} at {address}")
    })?;
    Ok(futures::future::Either::Right(s))
}

/// Whether a certificate (DER) is its own issuer.
fn self_signed(der: &[u8]) -> bool {
    x509_parser::parse_x509_certificate(der).is_ok_and(|(_, c)| c.issuer() == c.subject())
}
