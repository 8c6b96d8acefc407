//! What the server holds: the collections of its data folder (a search handle and a write
//! handle each), the loaded models, the request queue and the worker limit.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::http::{HeaderMap, StatusCode, header};
use hybrid_search::dense::Encoder;
use hybrid_search::{Collection, Snapshot, Wait, load_encoder};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;
use crate::{Error, Options};

use crate::defaults::WRITE_WAIT;

/// One served collection: one handle, and the snapshot searches read.
pub(crate) struct Served {
    pub(crate) name: String,
    /// The snapshot searches use: one commit, replaced whole after each write.
    current: RwLock<Arc<Snapshot>>,
    /// The collection's handle, which writes go through one at a time (waiting writes queue on
    /// this lock).
    pub(crate) handle: Arc<tokio::sync::Mutex<Collection>>,
    /// Set when the collection was deleted: writes that were waiting answer 404.
    pub(crate) deleted: AtomicBool,
}

impl Served {
    /// Opens the collection in `dir` for serving, its model taken from `models`.
    pub(crate) fn open(name: &str, dir: &Path, models: &ModelCache) -> Result<Self, Error> {
        let mut handle = Collection::open(dir)?;
        for warning in handle.take_warnings() {
            tracing::warn!(collection = name, "{warning}");
        }
        // Each model is loaded once through the cache; without it, hybrid searches fall back
        // to BM25 and say why.
        let attached = handle.find_model(None).and_then(|model| match model {
            Some(model) => handle.attach_encoder(models.get(&model)?),
            None => Ok(()),
        });
        if let Err(e) = attached {
            tracing::warn!(collection = name, "{e}; hybrid searches fall back to BM25");
            handle.model_unavailable(&e);
        }
        Ok(Self::with_handle(name, handle))
    }

    /// Serves `handle` (with its model attached), its vector segments opened now.
    pub(crate) fn with_handle(name: &str, mut handle: Collection) -> Self {
        let current = handle.snapshot();
        if let Err(e) = current.warm() {
            tracing::warn!(collection = name, "{e}");
        }
        handle.set_write_wait(Wait::For(WRITE_WAIT));
        Self {
            name: name.to_string(),
            current: RwLock::new(current),
            handle: Arc::new(tokio::sync::Mutex::new(handle)),
            deleted: AtomicBool::new(false),
        }
    }

    /// The snapshot of the last commit this server saw: a search keeps it for its whole run,
    /// so it sees one commit however many writes land meanwhile.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Makes `next` the snapshot later searches use.
    fn publish(&self, next: Arc<Snapshot>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = next;
    }

    pub(crate) fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::SeqCst)
    }
}

/// Models loaded once and shared by every collection built with them, by folder.
#[derive(Default)]
pub(crate) struct ModelCache {
    loaded: Mutex<HashMap<PathBuf, Arc<Encoder>>>,
    weights: hybrid_search::dense::WeightFormat,
}

impl ModelCache {
    pub(crate) fn new(weights: hybrid_search::dense::WeightFormat) -> Self {
        Self {
            loaded: Mutex::default(),
            weights,
        }
    }

    /// The encoder of the model folder `dir`, loaded at its first use.
    pub(crate) fn get(&self, dir: &Path) -> Result<Arc<Encoder>, hybrid_search::Error> {
        let key = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(encoder) = loaded.get(&key) {
            return Ok(encoder.clone());
        }
        let encoder = load_encoder(dir, self.weights)?;
        loaded.insert(key, encoder.clone());
        Ok(encoder)
    }
}

/// Which requests an API key guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Searches, document reads and listings: open unless `--protect-search`.
    Read,
    /// Creating, changing and deleting.
    Write,
}

/// The server's state, shared by every request.
pub(crate) struct AppState {
    pub(crate) options: Options,
    pub(crate) collections: RwLock<BTreeMap<String, Arc<Served>>>,
    pub(crate) models: ModelCache,
    /// Requests admitted (running or waiting for a worker): full means 503.
    queue: Arc<Semaphore>,
    /// Searches running at once on the blocking threads.
    workers: Arc<Semaphore>,
    /// Serialises creating and deleting collections.
    pub(crate) admin: tokio::sync::Mutex<()>,
    /// Connections open now.
    pub(crate) connections: AtomicUsize,
    /// Held (shared) by every write until it has committed, whether or not its client is
    /// still there; shutdown takes it whole, so it waits for them all.
    pub(crate) writes: Arc<tokio::sync::RwLock<()>>,
}

/// A request's place in the queue, taken once its body is read; a write moves it into the
/// task that runs it, so a write whose client went away holds it until it has committed.
#[derive(Clone)]
pub(crate) struct Admitted(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

impl Admitted {
    pub(crate) fn new(permit: OwnedSemaphorePermit) -> Self {
        Self(Arc::new(permit))
    }
}

impl AppState {
    pub(crate) fn new(options: Options, collections: BTreeMap<String, Arc<Served>>) -> Self {
        let models = ModelCache::new(options.weights);
        Self {
            queue: Arc::new(Semaphore::new(options.queue.max(1))),
            workers: Arc::new(Semaphore::new(options.workers.max(1))),
            collections: RwLock::new(collections),
            models,
            admin: tokio::sync::Mutex::new(()),
            connections: AtomicUsize::new(0),
            writes: Arc::new(tokio::sync::RwLock::new(())),
            options,
        }
    }

    /// Checks the request's `Authorization: Bearer KEY` when the server has a key and the
    /// access needs it; the key is compared in constant time.
    pub(crate) fn authorize(&self, headers: &HeaderMap, access: Access) -> Result<(), ApiError> {
        let Some(key) = &self.options.api_key else {
            return Ok(());
        };
        if access == Access::Read && !self.options.protect_search {
            return Ok(());
        }
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token);
        match given {
            Some(given) if constant_time_eq::constant_time_eq(given.as_bytes(), key.as_bytes()) => {
                Ok(())
            }
            Some(_) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the API key in the Authorization header is not this server's",
            )),
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this request needs the server's API key: send the header \
                 `Authorization: Bearer KEY`",
            )),
        }
    }

    /// Refuses requests a browser makes for another site's page (an `Origin` that is not this
    /// server's), and, when the server listens on a loopback address, requests for another
    /// host name (DNS rebinding): without an API key the API is open to this machine, not to
    /// every page its browser opens.
    pub(crate) fn check_origin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let forbidden = |m: String| ApiError::new(StatusCode::FORBIDDEN, "forbidden", m);
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        if self.options.loopback_only
            && let Some(host) = host
            && !is_loopback_host(host)
        {
            return Err(forbidden(format!(
                "Host {host:?} is not this machine: a server listening on a loopback address \
                 answers requests for localhost, 127.0.0.1 or [::1] only"
            )));
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("");
            let own = host.is_some_and(|h| {
                origin.strip_prefix("http://") == Some(h)
                    || origin.strip_prefix("https://") == Some(h)
            });
            if !own {
                return Err(forbidden(format!(
                    "a request from the page of {origin:?} is refused: only this server's own \
                     page, and clients that send no Origin, may call the API"
                )));
            }
        }
        Ok(())
    }

    /// A place in the queue, or 503 when it is full.
    pub(crate) fn admit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.queue.clone().try_acquire_owned().map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                format!(
                    "the server is busy ({} requests queued or running); retry shortly \
                     (Retry-After says when)",
                    self.options.queue
                ),
            )
        })
    }

    /// Requests admitted now (running or waiting for a worker), and the queue's size.
    pub(crate) fn queued(&self) -> (usize, usize) {
        let size = self.options.queue.max(1);
        (size - self.queue.available_permits().min(size), size)
    }

    /// Runs CPU-heavy `work` on a blocking thread once a worker is free.
    pub(crate) async fn compute<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let _worker = self
            .workers
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::internal("the server is shutting down"))?;
        // The request's span follows the work onto the blocking thread, so the engine's spans
        // (bm25, encode, dense, fuse, fetch) are its children.
        let span = tracing::Span::current();
        joined(tokio::task::spawn_blocking(move || span.in_scope(work)).await)
    }

    /// Every collection served now, by name.
    pub(crate) fn all(&self) -> Vec<Arc<Served>> {
        self.collections
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The collection `name`, or 404.
    pub(crate) fn collection(&self, name: &str) -> Result<Arc<Served>, ApiError> {
        check_name(name, "collection")?;
        self.collections
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "no collection {name:?} (GET /collections lists them; POST /collections \
                     creates one)"
                ))
            })
    }

    /// Runs a write on `served`'s handle, after the writes queued before it; when it is done,
    /// searches move to the handle's snapshot (the new commit, its vector segments and key ->
    /// id map ready) whole.
    ///
    /// The write runs in a task of its own, holding the request's place in the queue
    /// (`admitted`): once admitted it runs to its end whether or not the client waits for the
    /// answer, so what a client that went away finds later does not depend on when it left.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        served: Arc<Served>,
        admitted: Admitted,
        work: impl FnOnce(&mut Collection) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let span = tracing::Span::current();
        self.detached(admitted, async move {
            let handle = served.handle.clone().lock_owned().await;
            if served.is_deleted() {
                return Err(ApiError::not_found(format!(
                    "collection {:?} was deleted",
                    served.name
                )));
            }
            joined(
                tokio::task::spawn_blocking(move || {
                    let _request = span.enter();
                    let mut handle = handle;
                    let out = work(&mut handle);
                    // Whether or not `work` committed, searches move to the last commit the
                    // handle saw, its segments opened before any search holds it.
                    let next = handle.snapshot();
                    if let Err(e) = next.warm() {
                        tracing::warn!(collection = %served.name, "{e}");
                    }
                    served.publish(next);
                    out
                })
                .await,
            )
        })
        .await
    }

    /// Runs `work` (creating or deleting a collection) in a task of its own, under the lock
    /// that serialises them, holding the request's place in the queue: it runs to its end
    /// whether or not the client waits for the answer.
    pub(crate) async fn admin<T: Send + 'static, F>(
        self: &Arc<Self>,
        admitted: Admitted,
        work: impl FnOnce(Arc<Self>) -> F + Send + 'static,
    ) -> Result<T, ApiError>
    where
        F: std::future::Future<Output = Result<T, ApiError>> + Send + 'static,
    {
        let state = self.clone();
        self.detached(admitted, async move {
            let _admin = state.admin.lock().await;
            work(state.clone()).await
        })
        .await
    }

    /// Runs `work` in a task of its own that holds the request's place in the queue
    /// (`admitted`) and a share of [`AppState::writes`] until it ends, so it runs to its end
    /// whether or not the client waits, and shutdown waits for it.
    async fn detached<T: Send + 'static>(
        &self,
        admitted: Admitted,
        work: impl std::future::Future<Output = Result<T, ApiError>> + Send + 'static,
    ) -> Result<T, ApiError> {
        let writes = self.writes.clone().read_owned().await;
        let task = tokio::spawn(async move {
            let _held = (admitted, writes);
            work.await
        });
        joined(task.await)
    }
}

/// The token of `Authorization: Bearer TOKEN`: the scheme matched without regard to case
/// (RFC 9110 §11.1: `bearer`, `BEARER`), then one or more spaces; `None` for another scheme.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn joined<T>(result: Result<Result<T, ApiError>, tokio::task::JoinError>) -> Result<T, ApiError> {
    result.unwrap_or_else(|e| {
        Err(ApiError::internal(format!(
            "the request's work failed: {e}"
        )))
    })
}

/// Whether a `Host` header names this machine: `localhost`, a 127.x.y.z address or `[::1]`,
/// with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name == "::1"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Checks a collection or model name: 1 to 64 of ASCII letters, digits, `-`, `_` and `.`,
/// starting with a letter or digit, so a name never reaches outside the server's folders.
pub(crate) fn check_name(name: &str, what: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{what} name {name:?} is not valid: use 1 to 64 ASCII letters, digits, '-', '_' or \
             '.', starting with a letter or digit"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_bearer_scheme_is_matched_without_regard_to_case() {
        for header in [
            "Bearer k3y",
            "bearer k3y",
            "BEARER k3y",
            "BeArEr   k3y ",
            " Bearer k3y",
        ] {
            assert_eq!(bearer_token(header), Some("k3y"), "{header:?}");
        }
        for header in ["Basic k3y", "Bearerk3y", "k3y", "Token k3y"] {
            assert_eq!(bearer_token(header), None, "{header:?}");
        }
    }
}
