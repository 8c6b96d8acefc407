//! `hybrid-search serve`: the collections of a folder over HTTP (`docs/api.md`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use hybrid_search_server::{Limits, Options, Server, defaults};

/// Serve the collections of a folder over HTTP: a JSON API and a search page at `/`.
#[derive(clap::Args)]
pub struct Args {
    /// The folder whose collection folders are served (created if missing); collections
    /// created through the API are made here.
    #[arg(long)]
    data: PathBuf,
    /// Address to listen on. Only this machine can connect to 127.0.0.1; use 0.0.0.0:PORT to
    /// listen on every interface (set an API key then).
    #[arg(long, default_value = "127.0.0.1:7700")]
    addr: SocketAddr,
    /// The API key every write needs as `Authorization: Bearer KEY`.
    #[arg(long, env = "HYBRID_SEARCH_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Searches and other reads need the API key too.
    #[arg(long, requires = "api_key")]
    protect_search: bool,
    /// The folder `POST /collections` takes models from, by name (default: the standard
    /// model folders, as `index --model` looks them up).
    #[arg(long)]
    models: Option<PathBuf>,
    /// Searches run at once (default: one per CPU).
    #[arg(long)]
    workers: Option<usize>,
    /// Requests admitted at once, running or waiting; more are answered 503.
    #[arg(long, default_value_t = defaults::QUEUE)]
    queue: usize,
    /// The largest request body, in MiB.
    #[arg(long, default_value_t = defaults::MAX_BODY_MB)]
    max_body_mb: usize,
    /// The largest `k` (and fusion depth) a search may ask for.
    #[arg(long, default_value_t = defaults::MAX_K)]
    max_k: usize,
    /// Seconds a client may take to send a request's head (request line and headers); the
    /// connection is closed after it.
    #[arg(long, value_name = "SECONDS", default_value_t = defaults::HEADER_TIMEOUT.as_secs_f64(), value_parser = seconds)]
    header_timeout: f64,
    /// Seconds a client may take to send a request's body once its head is in: answered 408
    /// and the connection closed after it. A request takes a place in the queue only once its
    /// body is read.
    #[arg(long, value_name = "SECONDS", default_value_t = defaults::BODY_TIMEOUT.as_secs_f64(), value_parser = seconds)]
    body_timeout: f64,
    /// How the models' matrices run.
    #[arg(long, value_enum, default_value = "int8")]
    weights: hybrid_search::dense::WeightFormat,
}

/// Runs `serve` until SIGTERM or ctrl-c.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let mut options = Options::new(args.data.clone());
    options.models = args.models.clone();
    if args.api_key.as_deref().is_some_and(|k| k.trim().is_empty()) {
        anyhow::bail!(
            "the API key (--api-key or HYBRID_SEARCH_API_KEY) is empty: give a key, or leave it \
             unset to serve without one"
        );
    }
    options.api_key = args.api_key.clone();
    let loopback = args.addr.ip().is_loopback();
    options.loopback_only = loopback;
    options.protect_search = args.protect_search;
    if let Some(workers) = args.workers {
        options.workers = workers.max(1);
    }
    options.queue = args.queue.max(1);
    options.limits = Limits {
        max_body_bytes: args.max_body_mb.max(1) << 20,
        max_k: args.max_k.max(1),
        ..Limits::default()
    };
    options.weights = args.weights;
    options.header_timeout = std::time::Duration::from_secs_f64(args.header_timeout);
    options.body_timeout = std::time::Duration::from_secs_f64(args.body_timeout);
    let server = Server::load(options)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("listening on {}", args.addr))?;
        let addr = listener.local_addr()?;
        let names = server.collections();
        eprintln!(
            "serving {} collection(s) from {}: {}",
            names.len(),
            args.data.display(),
            names.join(", ")
        );
        if !loopback && args.api_key.is_none() {
            eprintln!(
                "warning: listening on {addr} with no API key: anyone who can reach it can \
                 write; set --api-key or HYBRID_SEARCH_API_KEY"
            );
        }
        // The first line on stdout is the address, for scripts that start the server on port 0.
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{addr}")?;
        out.flush()?;
        drop(out);
        server.serve(listener, shutdown_signal()).await?;
        eprintln!("stopped: requests in flight finished, writes committed");
        anyhow::Ok(())
    })
}

/// A timeout in seconds: a positive number up to a day.
fn seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 86_400.0 => Ok(s),
        _ => Err(format!("{text:?} is not a number of seconds in (0, 86400]")),
    }
}

/// Completes on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
