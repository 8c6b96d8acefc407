//! The routes and their handlers (`docs/api.md`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use hybrid_search::{
    AnalyzerConfig, AnalyzerKind, Collection, DenseOptions, FusionMethod, FusionOverrides,
    HybridOptions, Mode, NormChoice, SearchRequest, SearchResults, locate_model,
};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::state::{Access, AppState, Served, check_name};

type Shared = State<Arc<AppState>>;
type Body = Result<Bytes, BytesRejection>;

pub(crate) fn router(state: Arc<AppState>) -> Router {
    let limit = state.options.limits.max_body_bytes;
    Router::new()
        .route("/", get(page))
        .route("/health", get(health))
        .route("/collections", get(list).post(create))
        .route("/collections/{name}", get(describe).delete(drop_collection))
        .route("/collections/{name}/search", post(search))
        .route("/collections/{name}/documents", post(upsert))
        .route(
            "/collections/{name}/documents/{id}",
            get(get_document).delete(delete_document),
        )
        .fallback(|| async {
            ApiError::not_found(
                "no such route: see docs/api.md (GET /collections lists the collections)",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method: see docs/api.md",
            )
        })
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), gate))
        .with_state(state)
}

/// What every request passes before its body is read: the Host and Origin checks, the API key
/// for the route's access, the declared body length, and a place in the queue for the
/// requests that do work (searches and writes; the permit is held until the answer).
async fn gate(
    State(app): Shared,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match admit_request(&app, &request) {
        Ok(permit) => {
            let response = next.run(request).await;
            drop(permit);
            response
        }
        Err(e) => e.into_response(),
    }
}

fn admit_request(
    app: &AppState,
    request: &axum::extract::Request,
) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, ApiError> {
    let headers = request.headers();
    app.check_origin(headers)?;
    let path = request.uri().path();
    if path == "/" || path == "/health" {
        return Ok(None);
    }
    let method = request.method();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let search =
        method == Method::POST && matches!(segments.as_slice(), ["collections", _, "search"]);
    let read = method == Method::GET || search;
    app.authorize(headers, if read { Access::Read } else { Access::Write })?;
    let limit = app.options.limits.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Refused before any of the body is read, so a client that waits for `100 Continue` does
    // not send it at all.
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::too_large(limit));
    }
    if method == Method::GET {
        return Ok(None);
    }
    app.admit().map(Some)
}

/// The body of a request, or the error that says why it could not be read.
fn read_body(app: &AppState, body: Body) -> Result<Bytes, ApiError> {
    body.map_err(|e| crate::error::body_rejection(e, app.options.limits.max_body_bytes))
}

/// The search page: plain HTML and a little JavaScript, served from the binary.
async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}

async fn health(State(app): Shared) -> Response {
    let collections = app
        .collections
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .len();
    axum::Json(serde_json::json!({"status": "ok", "collections": collections})).into_response()
}

/// What `GET /collections` says of one collection.
#[derive(Serialize)]
struct Info {
    name: String,
    documents: u64,
    analyzer: AnalyzerKind,
    /// The dense leg's model (`null` without one).
    model: Option<String>,
    /// Vector dimensions (`null` without a dense leg).
    dim: Option<usize>,
    /// The mode a search without `mode` runs in.
    mode: Mode,
    /// The fusion settings of hybrid searches (tuned, or the default).
    fusion: HybridOptions,
}

fn info(served: &Served) -> Info {
    let c = served.reader();
    let dense = c.manifest().dense.as_ref();
    Info {
        name: served.name.clone(),
        documents: c.len(),
        analyzer: c.manifest().analyzer.kind,
        model: dense.map(|d| d.model.name.clone()),
        dim: dense.map(|d| d.vectors.dim),
        mode: c.default_mode(),
        fusion: c.hybrid_options(),
    }
}

async fn list(State(app): Shared) -> Result<Response, ApiError> {
    let served = app.all();
    /// Serialised directly (not through `serde_json::Value`), so `f32` settings print as
    /// stored (`0.85`).
    #[derive(Serialize)]
    struct List {
        collections: Vec<Info>,
    }
    let collections = served.iter().map(|s| info(s)).collect();
    Ok(axum::Json(List { collections }).into_response())
}

async fn describe(
    State(app): Shared,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let served = app.collection(&path(name)?)?;
    Ok(axum::Json(info(&served)).into_response())
}

/// A path's parameters, or a JSON 400 saying why they cannot be read.
fn path<T>(p: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    p.map(|Path(t)| t)
        .map_err(|e| ApiError::bad_request(format!("the request's path: {}", e.body_text())))
}

/// Parses a JSON body into `T`, naming the field or position that does not fit.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("{what}: {e} (see docs/api.md)")))
}

/// `POST /collections/{name}/search`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchBody {
    #[serde(default)]
    query: String,
    vector: Option<Vec<f32>>,
    #[serde(default = "default_k")]
    k: usize,
    mode: Option<Mode>,
    #[serde(default)]
    fusion: FusionBody,
    #[serde(default)]
    explain: bool,
}

fn default_k() -> usize {
    hybrid_search::defaults::RESULTS
}

/// The fusion overrides of a search, as the CLI's flags name them.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FusionBody {
    method: Option<MethodName>,
    alpha: Option<f32>,
    rrf_k: Option<f32>,
    norm: Option<NormName>,
    depth: Option<usize>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum MethodName {
    Rrf,
    Convex,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum NormName {
    MinMax,
    ZScore,
    Dbsf,
    Theoretical,
}

impl SearchBody {
    fn request(self, app: &AppState) -> Result<SearchRequest, ApiError> {
        let limits = app.options.limits;
        if self.query.len() > limits.max_query_bytes {
            return Err(ApiError::bad_request(format!(
                "query: {} bytes, more than this server's limit of {}",
                self.query.len(),
                limits.max_query_bytes
            )));
        }
        if self.query.trim().is_empty() && self.vector.is_none() {
            return Err(ApiError::bad_request(
                "query: missing or empty; send {\"query\": \"...\"} (or \"vector\" with mode dense)",
            ));
        }
        if self.k == 0 || self.k > limits.max_k {
            return Err(ApiError::bad_request(format!(
                "k: {} is outside 1..={}",
                self.k, limits.max_k
            )));
        }
        if let Some(depth) = self.fusion.depth
            && (depth == 0 || depth > limits.max_k)
        {
            return Err(ApiError::bad_request(format!(
                "fusion.depth: {depth} is outside 1..={}",
                limits.max_k
            )));
        }
        let fusion = FusionOverrides {
            settings: None,
            method: self.fusion.method.map(|m| match m {
                MethodName::Rrf => FusionMethod::Rrf,
                MethodName::Convex => FusionMethod::Convex,
            }),
            alpha: self.fusion.alpha,
            rrf_k: self.fusion.rrf_k,
            norm: self.fusion.norm.map(|n| match n {
                NormName::MinMax => NormChoice::MinMax,
                NormName::ZScore => NormChoice::ZScore,
                NormName::Dbsf => NormChoice::Dbsf,
                NormName::Theoretical => NormChoice::Theoretical,
            }),
            depth: self.fusion.depth,
        };
        let request = SearchRequest {
            vector: self.vector,
            mode: self.mode,
            fusion,
            explain: self.explain,
            ..SearchRequest::new(&self.query, self.k)
        };
        request.validate().map_err(flag_names)?;
        Ok(request)
    }
}

/// The engine's messages name CLI flags (`--alpha`); the API's fields are `fusion.alpha`.
fn flag_names(e: hybrid_search::Error) -> ApiError {
    let mut err = ApiError::from(e);
    for (flag, field) in [
        ("--fusion", "fusion.method"),
        ("--alpha", "fusion.alpha"),
        ("--rrf-k", "fusion.rrf_k"),
        ("--norm", "fusion.norm"),
        ("--depth", "fusion.depth"),
        ("--mode", "mode"),
        ("--vector", "vector"),
        ("-k ", "k "),
    ] {
        err.message = err.message.replace(flag, field);
    }
    err
}

/// A search's answer: `hybrid-search search --json`'s object.
#[derive(Serialize)]
struct SearchAnswer {
    #[serde(flatten)]
    results: SearchResults,
    query: String,
}

async fn search(
    State(app): Shared,
    name: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Response, ApiError> {
    let served = app.collection(&path(name)?)?;
    let request = parse::<SearchBody>(&read_body(&app, body)?, "search request")?.request(&app)?;
    let results = app
        .compute(move || {
            // The last commit when a worker takes it up.
            let results = served.reader().run(&request).map_err(flag_names)?;
            Ok(SearchAnswer {
                results,
                query: request.query,
            })
        })
        .await?;
    Ok(axum::Json(results).into_response())
}

/// `POST /collections/{name}/documents`: a JSON array of documents or JSONL, upserted in one
/// commit.
async fn upsert(
    State(app): Shared,
    name: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Response, ApiError> {
    let served = app.collection(&path(name)?)?;
    let body = read_body(&app, body)?;
    // Parsing a large body is CPU work: off the async threads.
    let docs = tokio::task::spawn_blocking(move || {
        let text = std::str::from_utf8(&body)
            .map_err(|e| ApiError::bad_request(format!("request body: not UTF-8 text ({e})")))?;
        hybrid_search::eval::parse_documents("request body", text)
            .map_err(|e| ApiError::bad_request(e.to_string()))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    if docs.is_empty() {
        return Err(ApiError::bad_request(
            "request body: no documents; send a JSON array of {\"id\", \"text\"} objects, or \
             one object per line",
        ));
    }
    let answer = app
        .write(served, move |writer, reader| {
            let mut replaced = 0;
            for doc in &docs {
                if reader.get(&doc.id)?.is_some() {
                    replaced += 1;
                }
            }
            writer.add(&docs, None).map_err(|e| match e {
                hybrid_search::Error::InvalidVector { .. } => {
                    ApiError::bad_request(format!("request body: {e}"))
                }
                hybrid_search::Error::NoModel(..) => ApiError::new(
                    StatusCode::CONFLICT,
                    "no_model",
                    format!(
                        "this server has no model for the collection's vectors, so it cannot \
                         encode documents ({e}); start the server where the model is found \
                         (scripts/fetch-models.sh lays out models/), or send documents with \
                         their own \"vector\""
                    ),
                ),
                e => ApiError::from(e),
            })?;
            Ok(serde_json::json!({
                "upserted": docs.len(),
                "added": docs.len() - replaced,
                "replaced": replaced,
                "documents": writer.len(),
                "warnings": writer.take_warnings(),
            }))
        })
        .await?;
    Ok(axum::Json(answer).into_response())
}

async fn get_document(
    State(app): Shared,
    names: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let (name, id) = path(names)?;
    let served = app.collection(&name)?;
    let collection = served.reader();
    let missing = || ApiError::not_found(format!("collection {name:?} has no document {id:?}"));
    match collection.get(&id)? {
        Some(doc) => Ok(axum::Json(doc).into_response()),
        None => Err(missing()),
    }
}

async fn delete_document(
    State(app): Shared,
    names: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let (name, id) = path(names)?;
    let served = app.collection(&name)?;
    let answer = app
        .write(served, move |writer, reader| {
            if reader.get(&id)?.is_none() {
                return Err(ApiError::not_found(format!(
                    "collection {name:?} has no document {id:?}"
                )));
            }
            let deleted = writer.delete(&[id.as_str()])?;
            Ok(serde_json::json!({
                "deleted": deleted,
                "documents": writer.len(),
                "warnings": writer.take_warnings(),
            }))
        })
        .await?;
    Ok(axum::Json(answer).into_response())
}

/// `POST /collections`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(default)]
    analyzer: AnalyzerKind,
    /// A model folder's name in the server's models folder.
    model: Option<String>,
}

async fn create(State(app): Shared, body: Body) -> Result<Response, ApiError> {
    let body: CreateBody = parse(&read_body(&app, body)?, "create request")?;
    check_name(&body.name, "collection")?;
    let _admin = app.admin.lock().await;
    if app
        .collections
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .contains_key(&body.name)
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "exists",
            format!("collection {:?} exists", body.name),
        ));
    }
    let dir = app.options.data.join(&body.name);
    if dir.exists() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "exists",
            format!(
                "the data folder already holds {:?} (not a collection this server serves); \
                 choose another name",
                body.name
            ),
        ));
    }
    let model = match &body.model {
        Some(model) => {
            check_name(model, "model")?;
            let found = match &app.options.models {
                Some(root) => Some(root.join(model)).filter(|d| d.is_dir()),
                None => locate_model(model),
            };
            Some(found.ok_or_else(|| {
                ApiError::bad_request(format!(
                    "model: {model:?} is not in this server's models folder{}",
                    app.options
                        .models
                        .as_ref()
                        .map(|m| format!(" ({})", m.display()))
                        .unwrap_or_default()
                ))
            })?)
        }
        None => None,
    };
    let state = app.clone();
    let answer = app
        .compute(move || {
            let created = (|| {
                let dense = match &model {
                    Some(dir) => {
                        let encoder = state.models.get(dir)?;
                        let options = DenseOptions::for_encoder(&encoder);
                        Some((encoder, options))
                    }
                    None => None,
                };
                let analyzer = AnalyzerConfig::for_kind(body.analyzer);
                let collection = Collection::create_with(&dir, analyzer, dense)?;
                Served::with_reader(&body.name, collection)
                    .map_err(|e| ApiError::internal(e.to_string()))
            })();
            let served = match created {
                Ok(served) => Arc::new(served),
                Err(e) => {
                    // Nothing was there before (checked under the admin lock): leave nothing.
                    let _ = std::fs::remove_dir_all(&dir);
                    return Err(e);
                }
            };
            let answer = info(&served);
            // Inserted here, not by the handler, so a client that goes away part way does
            // not leave a folder that is not served.
            state
                .collections
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(body.name, served);
            Ok(answer)
        })
        .await?;
    Ok((StatusCode::CREATED, axum::Json(answer)).into_response())
}

async fn drop_collection(
    State(app): Shared,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let name = path(name)?;
    // Looked up under the admin lock: a collection deleted (or created again) by a request
    // that held it first is seen as it is now.
    let _admin = app.admin.lock().await;
    let served = app.collection(&name)?;
    app.collections
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&name);
    // Writes queued before this one finish first; later ones answer 404.
    let _writer = served.writer.lock().await;
    served.deleted.store(true, Ordering::SeqCst);
    let dir = served.reader().dir().to_path_buf();
    // Renamed first, so a crash during the removal leaves no half collection under its name.
    let trash = app.options.data.join(format!(
        ".deleted-{name}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        std::fs::rename(&dir, &trash)?;
        std::fs::remove_dir_all(&trash)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::internal(format!("removing collection {name:?}: {e}")))?;
    Ok(axum::Json(serde_json::json!({ "deleted": name })).into_response())
}
