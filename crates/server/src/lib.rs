//! hybrid-search as an HTTP service: every collection folder under a data folder served through
//! a JSON API (search, documents, collections) and a search page at `/`, on axum and tokio.
//! `hybrid-search serve` runs it; `docs/api.md` documents every request with curl examples.
//!
//! - **One engine**: a search is the engine's own [`hybrid_search::SearchRequest`] run by
//!   [`hybrid_search::Collection::run`], and answers the JSON of `hybrid-search search --json`.
//! - **Concurrency**: searches run on blocking threads, at most [`Options::workers`] at once;
//!   at most [`Options::queue`] requests are admitted (running or waiting), and the next one
//!   is answered 503 with `Retry-After`. Each collection has one write handle: writes queue on
//!   it and never interleave; after each write, searches move to a new handle on the new
//!   commit ([`hybrid_search::Collection::snapshot`]), so a search always sees whole commits.
//! - **Security**: an API key ([`Options::api_key`]) guards writes (and reads with
//!   [`Options::protect_search`]), compared in constant time; names are checked so no request
//!   reaches outside the data folder; bodies, `k` and queries have limits ([`Limits`]).
//! - **Shutdown**: on the future given to [`Server::serve`] (SIGTERM or ctrl-c in the CLI),
//!   the server stops accepting, lets requests in flight finish, and waits for every write to
//!   commit before returning.
//!
//! Writes by another process (`hybrid-search add` on a served folder) are seen after this
//! server's next write to that collection, or a restart.

mod api;
pub mod defaults;
mod error;
mod openapi;
mod state;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hybrid_search::Collection;
use hybrid_search::dense::WeightFormat;

pub use error::ApiError;
pub use openapi::{description as openapi_description, documented as documented_openapi};
use state::{AppState, Served};

/// Limits on what one request may ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest request body, in bytes (413 above it).
    pub max_body_bytes: usize,
    /// The largest `k` (and fusion depth) of a search.
    pub max_k: usize,
    /// The longest query, in characters (Unicode scalar values, as JSON Schema's `maxLength`
    /// counts them, so the OpenAPI description states the limit exactly).
    pub max_query_chars: usize,
}

impl Default for Limits {
    /// [`defaults::MAX_BODY_MB`] (16 MiB) bodies, `k` up to [`defaults::MAX_K`] (1000),
    /// queries up to [`defaults::MAX_QUERY_CHARS`] (4096) characters.
    fn default() -> Self {
        Self {
            max_body_bytes: defaults::MAX_BODY_MB << 20,
            max_k: defaults::MAX_K,
            max_query_chars: defaults::MAX_QUERY_CHARS,
        }
    }
}

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The folder whose collection folders are served (and where new ones are created).
    pub data: PathBuf,
    /// The folder that `POST /collections` takes models from, by name; `None`: the standard
    /// model folders (`$HYBRID_SEARCH_MODELS`, the data folder's `models/`, `models/`).
    pub models: Option<PathBuf>,
    /// The API key writes need (`Authorization: Bearer KEY`); `None`: no key.
    pub api_key: Option<String>,
    /// With an API key, reads need it too.
    pub protect_search: bool,
    /// Answer only requests whose `Host` names this machine (a server on a loopback address;
    /// a guard against DNS rebinding). Requests from another site's page (`Origin`) are
    /// refused either way.
    pub loopback_only: bool,
    /// Searches run at once (blocking threads).
    pub workers: usize,
    /// Requests admitted at once (running or waiting); more are answered 503.
    pub queue: usize,
    /// Request limits.
    pub limits: Limits,
    /// How the models' matrices run.
    pub weights: WeightFormat,
    /// How long a client may take to send a request's head; the connection is closed after it.
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body once its head is in; the request
    /// is answered 408 and the connection closed after it.
    pub body_timeout: Duration,
}

impl Options {
    /// Serves `data` with no key, for requests to this machine's names only, one worker per
    /// CPU, a queue of [`defaults::QUEUE`] (64), the default limits and the default read
    /// timeouts ([`defaults::HEADER_TIMEOUT`], [`defaults::BODY_TIMEOUT`]).
    pub fn new(data: PathBuf) -> Self {
        Self {
            data,
            models: None,
            api_key: None,
            protect_search: false,
            loopback_only: true,
            workers: std::thread::available_parallelism().map_or(2, usize::from),
            queue: defaults::QUEUE,
            limits: Limits::default(),
            weights: WeightFormat::default(),
            header_timeout: defaults::HEADER_TIMEOUT,
            body_timeout: defaults::BODY_TIMEOUT,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data folder cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A collection could not be opened.
    #[error("collection {name:?}: {source}")]
    Collection {
        /// The collection's folder name.
        name: String,
        /// The engine's error.
        #[source]
        source: Box<hybrid_search::Error>,
    },
    /// The engine failed.
    #[error(transparent)]
    Engine(Box<hybrid_search::Error>),
}

impl From<hybrid_search::Error> for Error {
    fn from(e: hybrid_search::Error) -> Self {
        Self::Engine(Box::new(e))
    }
}

/// A loaded server: the collections of [`Options::data`] open, their models loaded once.
pub struct Server {
    state: Arc<AppState>,
}

impl Server {
    /// Opens every collection folder under `options.data` (created if missing) and loads the
    /// models they were built with (each model once). A collection whose model is not found
    /// is served with hybrid searches falling back to BM25 (each answer says so).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the data folder cannot be read or created;
    /// [`Error::Collection`] naming the collection that cannot be opened.
    pub fn load(options: Options) -> Result<Self, Error> {
        let data = &options.data;
        std::fs::create_dir_all(data).map_err(|source| Error::Io {
            path: data.clone(),
            source,
        })?;
        let state = AppState::new(options.clone(), BTreeMap::new());
        let entries = std::fs::read_dir(data).map_err(|source| Error::Io {
            path: data.clone(),
            source,
        })?;
        let mut collections = BTreeMap::new();
        for entry in entries {
            let entry = entry.map_err(|source| Error::Io {
                path: data.clone(),
                source,
            })?;
            let dir = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            // What a collection deletion left behind when the server stopped part way.
            if name.starts_with(".deleted-") {
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    tracing::warn!("{}: {e}", dir.display());
                }
                continue;
            }
            if !Collection::exists(&dir) {
                continue;
            }
            if state::check_name(&name, "collection").is_err() {
                tracing::warn!("{}: not served: its name is not valid", dir.display());
                continue;
            }
            let _span = tracing::info_span!("load", collection = %name).entered();
            let served = Served::open(&name, &dir, &state.models).map_err(|e| match e {
                Error::Engine(source) => Error::Collection {
                    name: name.clone(),
                    source,
                },
                e => e,
            })?;
            collections.insert(name, Arc::new(served));
        }
        *state.collections.write().unwrap_or_else(|e| e.into_inner()) = collections;
        Ok(Self {
            state: Arc::new(state),
        })
    }

    /// The names of the collections served, in order.
    pub fn collections(&self) -> Vec<String> {
        self.state
            .collections
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// The HTTP routes (`docs/api.md`).
    pub fn router(&self) -> axum::Router {
        api::router(self.state.clone())
    }

    /// Serves requests on `listener` until `shutdown` completes; then stops accepting, lets
    /// requests in flight finish, and waits for every collection's write in progress to
    /// commit.
    ///
    /// Each connection is HTTP/1.1 with keep-alive. A request's head must arrive within
    /// [`Options::header_timeout`] and its body within [`Options::body_timeout`], or the
    /// connection is closed (a body cut short is answered 408 first): a client that stalls
    /// holds a connection for that long at most, and never a place in the queue, which a
    /// request takes only once its body is read.
    ///
    /// # Errors
    ///
    /// None today: a failed `accept` (too many open files, a connection reset before it was
    /// accepted) is logged and retried, as a server must keep serving through it.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        use hyper_util::rt::{TokioIo, TokioTimer};
        use hyper_util::server::graceful::GracefulShutdown;
        use hyper_util::service::TowerToHyperService;

        let router = self.router();
        let graceful = GracefulShutdown::new();
        let header_timeout = self.state.options.header_timeout;
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _peer)) => stream,
                    Err(e) => {
                        tracing::warn!("accepting a connection: {e}");
                        // EMFILE and the like: give connections time to close.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(true);
            let connection = graceful.watch(builder.serve_connection(
                TokioIo::new(stream),
                TowerToHyperService::new(router.clone()),
            ));
            let open = Open::count(&self.state);
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!("connection: {e}");
                }
                drop(open);
            });
        }
        drop(listener);
        // Idle connections close now; each request in flight is answered first.
        graceful.shutdown().await;
        // A write whose client went away still runs to its commit: wait for every one.
        let _all_written = self.state.writes.write().await;
        Ok(())
    }
}

/// One open connection, counted in [`AppState::connections`] while it lives.
struct Open(Arc<AppState>);

impl Open {
    fn count(state: &Arc<AppState>) -> Self {
        state.connections.fetch_add(1, Ordering::Relaxed);
        Self(state.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}
