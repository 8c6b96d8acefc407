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
    AnalyzerConfig, AnalyzerKind, Collection, DenseOptions, Document, FusionMethod,
    FusionOverrides, Hit, HybridOptions, Mode, NormChoice, SearchRequest, SearchResults, Snapshot,
    locate_model,
};

use crate::openapi::{
    BadRequest, CollectionName, Conflict, DocumentId, Forbidden, NotFound, Overloaded,
    PayloadTooLarge, Unauthorized,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::{Access, Admitted, AppState, Served, check_name};

type Shared = State<Arc<AppState>>;
type Body = Result<Bytes, BytesRejection>;
/// The request's place in the queue (writes only: [`AppState::write`] holds it to the end).
type Place = axum::Extension<Admitted>;

pub(crate) fn router(state: Arc<AppState>) -> Router {
    let limit = state.options.limits.max_body_bytes;
    Router::new()
        .route("/", get(page))
        .route("/health", get(health))
        .route("/openapi.json", get(openapi))
        .route("/collections", get(list).post(create))
        .route("/collections/{name}", get(describe).delete(drop_collection))
        .route("/collections/{name}/search", post(search))
        .route("/collections/{name}/search/batch", post(search_batch))
        .route("/collections/{name}/documents", post(upsert))
        .route(
            "/collections/{name}/documents/delete",
            post(delete_documents),
        )
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

/// What every request passes: the Host and Origin checks, the API key for the route's
/// access and the declared body length before any of the body is read; then, for the requests
/// that do work (searches and writes), the whole body, read within [`Options::body_timeout`],
/// and only then a place in the queue (held until the answer). A client that stalls while it
/// sends its body therefore never holds a place in the queue, and is answered 408 when its
/// time is up.
///
/// Each request runs in a `request` span (method, route, collection; status and latency in
/// milliseconds recorded when it is answered), logged when it closes (`-v`, or `RUST_LOG`).
///
/// [`Options::body_timeout`]: crate::Options::body_timeout
async fn gate(
    State(app): Shared,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use tracing::Instrument;
    let started = std::time::Instant::now();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("(none)", |p| p.as_str())
        .to_string();
    let collection = request
        .uri()
        .path()
        .strip_prefix("/collections/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("")
        .to_string();
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        route = %route,
        collection = %collection,
        status = tracing::field::Empty,
        ms = tracing::field::Empty,
    );
    let response = async {
        let admitted = match check_request(&app, &request) {
            Ok(Work::None) => Ok(request),
            Ok(Work::Queued) => match read_whole_body(&app, request).await {
                Ok(mut request) => app.admit().map(|permit| {
                    // Held by the request (and by a write's task) until it is answered.
                    request.extensions_mut().insert(Admitted::new(permit));
                    request
                }),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match admitted {
            Ok(request) => next.run(request).await,
            Err(e) => e.into_response(),
        }
    }
    .instrument(span.clone())
    .await;
    span.record("status", response.status().as_u16());
    span.record("ms", started.elapsed().as_secs_f64() * 1e3);
    response
}

/// Whether a request that passed [`check_request`] does work that needs a place in the queue.
enum Work {
    /// Pages, health, descriptions and reads of one document or collection.
    None,
    /// Searches and writes.
    Queued,
}

fn check_request(app: &AppState, request: &axum::extract::Request) -> Result<Work, ApiError> {
    let headers = request.headers();
    app.check_origin(headers)?;
    let path = request.uri().path();
    if path == "/" || path == "/health" || path == "/openapi.json" {
        return Ok(Work::None);
    }
    let method = request.method();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let search = method == Method::POST
        && matches!(
            segments.as_slice(),
            ["collections", _, "search"] | ["collections", _, "search", "batch"]
        );
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
        return Ok(Work::None);
    }
    Ok(Work::Queued)
}

/// `request` with its body read whole (at most the body limit) within the body timeout: 408
/// (and the connection closed) when the client has not sent it in time, 413 past the limit.
async fn read_whole_body(
    app: &AppState,
    request: axum::extract::Request,
) -> Result<axum::extract::Request, ApiError> {
    let limit = app.options.limits.max_body_bytes;
    let timeout = app.options.body_timeout;
    let (parts, body) = request.into_parts();
    let limited = http_body_util::Limited::new(body, limit);
    let read = tokio::time::timeout(timeout, http_body_util::BodyExt::collect(limited)).await;
    match read {
        Ok(Ok(collected)) => Ok(axum::extract::Request::from_parts(
            parts,
            axum::body::Body::from(collected.to_bytes()),
        )),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::too_large(limit)),
        Ok(Err(e)) => Err(ApiError::bad_request(format!(
            "request body: could not be read ({e})"
        ))),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!(
                "request body: not received within {} s of the request's head; send the \
                 whole body at once (the connection is closed)",
                timeout.as_secs_f64()
            ),
        )),
    }
}

/// The body of a request, or the error that says why it could not be read.
fn read_body(app: &AppState, body: Body) -> Result<Bytes, ApiError> {
    let body =
        body.map_err(|e| crate::error::body_rejection(e, app.options.limits.max_body_bytes))?;
    // A UTF-8 byte order mark is not part of the JSON text (RFC 8259 §8.1 lets a parser
    // ignore it), and the CLI's readers ignore it too.
    Ok(match body.strip_prefix(b"\xEF\xBB\xBF") {
        Some(_) => body.slice(3..),
        None => body,
    })
}

/// The search page.
///
/// Plain HTML and a little JavaScript, served from the binary; it calls the JSON API.
#[utoipa::path(
    get,
    path = "/",
    tag = "service",
    responses(
        (status = 200, description = "The search page", content_type = "text/html", body = String),
        (status = 403, response = Forbidden),
    ),
)]
pub(crate) async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}

/// `GET /health`'s answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    /// `ok` while the server admits work; `overloaded` (with status 503) while its queue is
    /// full, so searches and writes would be answered 503.
    #[schema(example = "ok")]
    status: &'static str,
    /// Collections served.
    collections: usize,
    /// Searches and writes admitted now (running or waiting for a worker).
    queued: usize,
    /// How many may be admitted at once (`--queue`).
    queue: usize,
    /// Connections open now.
    connections: usize,
}

/// Whether the server is up and admits work, how many collections it serves, and how full
/// its queue is.
///
/// Always open (no API key), and never queued. 503 (`"status": "overloaded"`) while the queue
/// is full: a load balancer's health check then sends traffic elsewhere.
#[utoipa::path(
    get,
    path = "/health",
    tag = "service",
    responses(
        (status = 200, description = "The server is up and admits work", body = Health),
        (status = 503, description = "The server is up but its queue is full", body = Health),
        (status = 403, response = Forbidden),
    ),
)]
pub(crate) async fn health(State(app): Shared) -> Response {
    let collections = app
        .collections
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .len();
    let (queued, queue) = app.queued();
    let full = queued >= queue;
    let health = Health {
        status: if full { "overloaded" } else { "ok" },
        collections,
        queued,
        queue,
        connections: app.connections.load(Ordering::Relaxed),
    };
    let status = if full {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, axum::Json(health)).into_response()
}

/// This description of the API (OpenAPI 3.1), for the running server's settings.
///
/// Its limits (`k`, `fusion.depth`, query length, body size) and its security (which routes
/// need the API key) are this server's own. Always open (no API key).
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "service",
    responses(
        (status = 200, description = "The OpenAPI 3.1 description", content_type = "application/json", body = Object),
        (status = 403, response = Forbidden),
    ),
)]
pub(crate) async fn openapi(State(app): Shared) -> Response {
    axum::Json(crate::openapi::description(&app.options)).into_response()
}

/// What the server says of one collection (`GET /collections`, `GET /collections/{name}`,
/// `POST /collections`).
#[derive(Serialize, ToSchema)]
pub(crate) struct Info {
    /// The collection's name (its folder's name).
    name: String,
    /// Documents in the last commit.
    documents: u64,
    /// The analyzer of its text fields.
    analyzer: AnalyzerKind,
    /// The dense leg's model (`null` without one).
    model: Option<String>,
    /// Vector dimensions (`null` without a dense leg).
    dim: Option<usize>,
    /// The mode a search without `mode` runs in.
    mode: Mode,
    /// The fusion settings of hybrid searches (tuned, or the default).
    fusion: HybridOptions,
    /// The documents' fields and their types, in the order first seen (empty when no
    /// document has a field).
    fields: Vec<hybrid_search::FieldSpec>,
}

fn info(served: &Served) -> Info {
    let c = served.snapshot();
    let dense = c.manifest().dense.as_ref();
    Info {
        name: served.name.clone(),
        documents: c.len(),
        analyzer: c.manifest().analyzer.kind,
        model: dense.map(|d| d.model.name.clone()),
        dim: dense.map(|d| d.vectors.dim),
        mode: c.default_mode(),
        fusion: c.hybrid_options(),
        fields: c.fields().specs().to_vec(),
    }
}

/// `GET /collections`'s answer. Serialised directly (not through `serde_json::Value`), so
/// `f32` settings print as stored (`0.85`).
#[derive(Serialize, ToSchema)]
pub(crate) struct List {
    /// Every collection served, by name.
    collections: Vec<Info>,
}

/// The collections served, by name.
#[utoipa::path(
    get,
    path = "/collections",
    tag = "collections",
    security((), ("api_key" = [])),
    responses(
        (status = 200, description = "The collections", body = List),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
    ),
)]
pub(crate) async fn list(State(app): Shared) -> Result<Response, ApiError> {
    let served = app.all();
    let collections = served.iter().map(|s| info(s)).collect();
    Ok(axum::Json(List { collections }).into_response())
}

/// One collection: its size, analyzer, model and fusion settings.
#[utoipa::path(
    get,
    path = "/collections/{name}",
    tag = "collections",
    params(CollectionName),
    security((), ("api_key" = [])),
    responses(
        (status = 200, description = "The collection", body = Info),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    ),
)]
pub(crate) async fn describe(
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

/// `POST /collections/{name}/search`'s body: a query text (or vector), how many results, which
/// legs, and fusion settings over the collection's.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchBody {
    /// The query text: BM25's input, and the dense leg's unless `vector` is given. Required
    /// (with a character that is not white space) unless `vector` is given; at most the
    /// server's query limit in characters (4096 by default).
    #[serde(default)]
    #[schema(example = "IL-6 in sepsis")]
    query: String,
    /// The query's vector (the collection's `dim` values, each within `f32`'s range): the
    /// dense leg encodes nothing. Read as `f64`, as JSON numbers are, so a value beyond
    /// `f32`'s range is refused by name.
    vector: Option<Vec<f64>>,
    /// Results wanted, 1 to the server's `--max-k` (1000 by default); 10 when left out. A
    /// whole number: `10.0` is read as 10.
    #[serde(default = "default_k", deserialize_with = "whole")]
    #[schema(minimum = 1, maximum = 1000)]
    k: usize,
    /// Which leg(s) answer; the collection's default mode when left out.
    mode: Option<Mode>,
    /// Fusion settings over the collection's (hybrid mode).
    #[serde(default)]
    fusion: FusionBody,
    /// Each hit's `legs`: rank, raw score, normalised score and contribution per leg.
    #[serde(default)]
    explain: bool,
    /// Search only the documents this filter matches, in both legs before their top `k`:
    /// `{"field": "source", "eq": "pubmed"}`, `{"field": "year", "gte": 2020, "lt": 2024}`
    /// (numbers and RFC 3339 dates; `gt`, `gte`, `lt`, `lte`), `{"field": "tags", "in": ["a",
    /// "b"]}`, `{"field": "lang", "exists": true}`, `{"and": [...]}`, `{"or": [...]}`,
    /// `{"not": {...}}`; `"field": "id"` is the document id.
    #[schema(value_type = Option<Object>, example = json!({"field": "year", "gte": 2020}))]
    filter: Option<serde_json::Value>,
    /// What each hit carries besides id, title, snippet and score: `text` (the full text), a
    /// field's name, or `*` (every field and the text).
    #[serde(default)]
    #[schema(example = json!(["text", "source"]))]
    fields: Vec<String>,
    /// Hits skipped before the first one returned: page `p` (from 0) of `k` hits is
    /// `offset = p * k`. At most 10000 minus the server's `--max-k`.
    #[serde(default, deserialize_with = "whole")]
    #[schema(minimum = 0, maximum = 9999)]
    offset: usize,
    /// Pseudo-relevance feedback: `{"rm3": {}}` expands the BM25 query with terms of its top
    /// documents, `{"rocchio": {}}` moves the query vector towards its top documents'; each
    /// takes its settings (`{"rm3": {"docs": 10, "terms": 10, "original_weight": 0.5},
    /// "rocchio": {"docs": 3, "beta": 0.5}}`, the defaults). `{}` turns off the collection's.
    /// Left out: the collection's (off unless set).
    #[serde(default)]
    #[schema(example = json!({"rm3": {}}))]
    prf: Option<hybrid_search::Prf>,
}

fn default_k() -> usize {
    hybrid_search::defaults::RESULTS
}

/// A whole number sent as a JSON integer or as a float with no fraction (`10.0`): JSON Schema
/// counts both as an `integer`, and some clients only send floats.
fn whole<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let x = serde_json::Number::deserialize(d)?;
    if let Some(n) = x.as_u64() {
        return usize::try_from(n).map_err(serde::de::Error::custom);
    }
    match x.as_f64() {
        // Saturating: a number past usize's range is refused by the range check that follows,
        // which names the field and the range.
        Some(f) if f.fract() == 0.0 && f >= 0.0 => Ok(f as usize),
        _ => Err(serde::de::Error::custom(format!(
            "{x} is not a whole number of at least 0"
        ))),
    }
}

fn whole_or_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    #[derive(Deserialize)]
    struct Whole(#[serde(deserialize_with = "whole")] usize);
    Ok(Option::<Whole>::deserialize(d)?.map(|Whole(n)| n))
}

/// The fusion overrides of a search, as the CLI's flags name them. A setting of one method
/// (`alpha` or `norm` for convex, `rrf_k` for RRF) picks that method when `method` is left
/// out; settings of both methods at once, or of the other method than `method`, are refused.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FusionBody {
    /// Reciprocal rank fusion, or a convex combination of normalised scores.
    method: Option<FusionMethod>,
    /// Convex: the dense leg's weight, 0 to 1 (the sparse leg gets `1 - alpha`).
    #[schema(minimum = 0.0, maximum = 1.0)]
    alpha: Option<f64>,
    /// RRF: the rank constant k in `1 / (k + rank)`, within `f32`'s normal range
    /// (1.1754944e-38 to 3.4028235e38).
    #[schema(minimum = 1.1754943508222875e-38, maximum = 3.4028234663852886e38)]
    rrf_k: Option<f64>,
    /// Convex: how each leg's scores are normalised.
    norm: Option<NormChoice>,
    /// Candidates taken from each leg, 1 to the server's `--max-k` (1000 by default).
    #[serde(default, deserialize_with = "whole_or_none")]
    #[schema(minimum = 1, maximum = 1000)]
    depth: Option<usize>,
}

impl SearchBody {
    fn request(self, app: &AppState) -> Result<SearchRequest, ApiError> {
        let limits = app.options.limits;
        let chars = self.query.chars().count();
        if chars > limits.max_query_chars {
            return Err(ApiError::bad_request(format!(
                "query: {chars} characters, more than this server's limit of {}",
                limits.max_query_chars
            )));
        }
        if self.query.chars().all(char::is_whitespace) && self.vector.is_none() {
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
        // The deepest page: offset + k within the engine's window for any k this server takes.
        let deepest = hybrid_search::defaults::MAX_RESULT_WINDOW.saturating_sub(limits.max_k);
        if self.offset > deepest {
            return Err(ApiError::bad_request(format!(
                "offset: {} is above {deepest}, the deepest this server pages (offset + k stays \
                 within {} hits whatever k); narrow the search with a filter instead",
                self.offset,
                hybrid_search::defaults::MAX_RESULT_WINDOW
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
            method: self.fusion.method,
            alpha: self.fusion.alpha,
            rrf_k: self.fusion.rrf_k,
            norm: self.fusion.norm,
            depth: self.fusion.depth,
        };
        let vector = self
            .vector
            .map(|values| {
                hybrid_search::vector_from_f64(&values)
                    .map_err(|e| ApiError::bad_request(format!("vector: {e}")))
            })
            .transpose()?;
        let filter = self
            .filter
            .map(|f| {
                hybrid_search::Filter::from_json(&f)
                    .map_err(|e| ApiError::bad_request(format!("filter: {e}")))
            })
            .transpose()?;
        let mut request = SearchRequest::new(&self.query, self.k)
            .with_mode_or_default(self.mode)
            .with_fusion(fusion)
            .with_explain(self.explain)
            .with_filter(filter)
            .with_fields(hybrid_search::FieldSelection::new(self.fields))
            .with_offset(self.offset);
        if let Some(vector) = vector {
            request = request.with_vector(vector);
        }
        if let Some(prf) = self.prf {
            request = request.with_prf(prf);
        }
        request.validate()?;
        Ok(request)
    }
}

/// A search's answer: `hybrid-search search --json`'s object, and the query.
#[derive(Serialize, ToSchema)]
pub(crate) struct SearchAnswer {
    #[serde(flatten)]
    results: SearchResults<Hit>,
    /// The query text as sent.
    query: String,
}

/// Searches a collection: BM25, vectors, or both fused.
///
/// The search runs on the commit that was current when it started, whatever writes land
/// meanwhile. A hybrid search whose dense leg cannot answer falls back to BM25 and says why
/// (`degraded`). Open unless the server runs with `--protect-search`.
#[utoipa::path(
    post,
    path = "/collections/{name}/search",
    tag = "search",
    params(CollectionName),
    request_body(content = SearchBody, content_type = "application/json"),
    security((), ("api_key" = [])),
    responses(
        (status = 200, description = "The hits, best first", body = SearchAnswer),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 503, response = Overloaded),
    ),
)]
pub(crate) async fn search(
    State(app): Shared,
    name: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Response, ApiError> {
    let served = app.collection(&path(name)?)?;
    let request = parse::<SearchBody>(&read_body(&app, body)?, "search request")?.request(&app)?;
    check_dense_request(&served.snapshot(), &request)?;
    let results = app
        .compute(move || {
            // The last commit when a worker takes it up.
            let results = served.snapshot().run(&request)?;
            Ok(SearchAnswer {
                results,
                query: request.query().to_string(),
            })
        })
        .await?;
    Ok(axum::Json(results).into_response())
}

/// `POST /collections/{name}/search/batch`'s body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchBody {
    /// The searches, each a `POST /collections/{name}/search` body; at most 256.
    searches: Vec<serde_json::Value>,
}

/// The most searches one batch holds.
pub(crate) const MAX_BATCH: usize = 256;

/// `POST /collections/{name}/search/batch`'s answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct BatchAnswer {
    /// Each search's answer, in request order: what `POST /collections/{name}/search` answers
    /// for it.
    results: Vec<SearchAnswer>,
}

/// Runs many searches on one commit: the queries the collection's model encodes are encoded
/// together, and each answer is the one the single search gives.
///
/// Every search is checked before any runs: one bad search refuses the whole batch (400 or
/// 409), and the message names its position (`searches[2]: k: ...`). Open unless the server
/// runs with `--protect-search`.
#[utoipa::path(
    post,
    path = "/collections/{name}/search/batch",
    tag = "search",
    params(CollectionName),
    request_body(content = BatchBody, content_type = "application/json"),
    security((), ("api_key" = [])),
    responses(
        (status = 200, description = "Each search's hits, in request order", body = BatchAnswer),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 503, response = Overloaded),
    ),
)]
pub(crate) async fn search_batch(
    State(app): Shared,
    name: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Response, ApiError> {
    let served = app.collection(&path(name)?)?;
    let batch = parse::<BatchBody>(&read_body(&app, body)?, "batch search request")?;
    if batch.searches.is_empty() || batch.searches.len() > MAX_BATCH {
        return Err(ApiError::bad_request(format!(
            "searches: {} searches; a batch holds 1 to {MAX_BATCH}",
            batch.searches.len()
        )));
    }
    let snapshot = served.snapshot();
    let mut requests = Vec::with_capacity(batch.searches.len());
    for (i, value) in batch.searches.into_iter().enumerate() {
        let at = |e: ApiError| e.prefixed(&format!("searches[{i}]: "));
        let body: SearchBody = serde_json::from_value(value)
            .map_err(|e| ApiError::bad_request(format!("searches[{i}]: {e} (see docs/api.md)")))?;
        let request = body.request(&app).map_err(at)?;
        check_dense_request(&snapshot, &request).map_err(at)?;
        snapshot
            .resolve(&request)
            .map_err(|e| at(ApiError::from(e)))?;
        requests.push(request);
    }
    let answer = app
        .compute(move || {
            let results = snapshot.run_batch(&requests);
            let mut answers = Vec::with_capacity(results.len());
            for (i, (result, request)) in results.into_iter().zip(&requests).enumerate() {
                let results =
                    result.map_err(|e| ApiError::from(e).prefixed(&format!("searches[{i}]: ")))?;
                answers.push(SearchAnswer {
                    results,
                    query: request.query().to_string(),
                });
            }
            Ok(BatchAnswer { results: answers })
        })
        .await?;
    Ok(axum::Json(answer).into_response())
}

/// A search that needs the dense leg (`mode: dense`, or a `vector` in a mode that is not
/// `sparse`) on a collection without one, or a vector of another length than the collection's:
/// 409, a conflict with the collection as it was built, not a malformed request (the same body
/// suits another collection). A `vector` with `"mode": "sparse"` contradicts itself: the
/// engine refuses it (400), whatever the collection.
fn check_dense_request(collection: &Snapshot, request: &SearchRequest) -> Result<(), ApiError> {
    if request.mode() == Some(Mode::Sparse) {
        return Ok(());
    }
    let wants_dense = request.mode() == Some(Mode::Dense) || request.vector().is_some();
    let Some(dense) = collection.manifest().dense.as_ref() else {
        if wants_dense {
            return Err(no_dense_leg("search by vector or in mode dense"));
        }
        return Ok(());
    };
    match request.vector() {
        Some(v) if v.len() != dense.vectors.dim => Err(ApiError::conflict(
            "dimension_mismatch",
            format!(
                "vector: {} values, and this collection's vectors have {} (its model {:?})",
                v.len(),
                dense.vectors.dim,
                dense.model.name
            ),
        )),
        _ => Ok(()),
    }
}

/// 409 `no_dense_leg`: the collection was built without a model, so it cannot `what`.
fn no_dense_leg(what: &str) -> ApiError {
    ApiError::conflict(
        "no_dense_leg",
        format!(
            "this collection has no dense leg (it was created without a model), so it cannot \
             {what}; create a collection with a model for vectors"
        ),
    )
}

/// One document of a `POST /collections/{name}/documents` body (what the server reads; the
/// same fields as a JSONL corpus line of `hybrid-search index`).
#[derive(ToSchema)]
#[allow(dead_code)] // The body is read by `hybrid_search::eval::parse_documents`.
pub(crate) struct DocumentInput {
    /// The document's id, unique within the collection: a string, or a number read as its
    /// decimal string. `_id` (BEIR's spelling) may stand instead, and wins when both are given.
    id: String,
    /// The title (empty when left out or `null`).
    title: Option<String>,
    /// The text.
    text: String,
    /// The document's own embedding, stored instead of encoding the text: the collection's
    /// `dim` values, each within `f32`'s range.
    vector: Option<Vec<f64>>,
    /// Every other key is a field (a nested object's keys as `parent.key`): a string,
    /// number, boolean, RFC 3339 date or an array of one of these; a field's type is fixed by
    /// its first value, and its documents are filterable by it.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    fields: std::collections::BTreeMap<String, serde_json::Value>,
}

/// `POST /collections/{name}/documents`'s answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct UpsertAnswer {
    /// Documents in the request (after a repeated id kept its last document).
    upserted: usize,
    /// Of them, new ids.
    added: usize,
    /// Of them, ids that replaced a document.
    replaced: usize,
    /// Documents in the collection after the commit.
    documents: u64,
    /// What the write noticed without refusing it (a repeated id, a merge that failed and
    /// will be retried).
    warnings: Vec<String>,
}

/// Upserts documents in one commit covering both legs.
///
/// The body is a JSON array of documents or JSONL (one per line, blank lines skipped); a
/// document whose `id` exists is replaced, and an id given twice in one request keeps its
/// last document (as two requests would). Answered after the commit. Writes to a collection
/// queue behind each other and never interleave. Needs the API key when the server has one.
#[utoipa::path(
    post,
    path = "/collections/{name}/documents",
    tag = "documents",
    params(CollectionName),
    request_body(
        content(
            (Vec<DocumentInput> = "application/json"),
        ),
        description = "A JSON array of documents (or JSONL: one document object per line)",
    ),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Committed", body = UpsertAnswer),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 503, response = Overloaded),
    ),
)]
pub(crate) async fn upsert(
    State(app): Shared,
    axum::Extension(admitted): Place,
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
    let (docs, mut warnings) = keep_last(docs);
    if served.snapshot().manifest().dense.is_none() && docs.iter().any(|d| d.vector.is_some()) {
        return Err(no_dense_leg("store a document's \"vector\""));
    }
    let answer = app
        .write(served, admitted, move |handle| {
            let committed = handle.add(&docs, None).map_err(|e| match e {
                hybrid_search::Error::NoModel(..) => ApiError::conflict(
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
            warnings.extend(committed.warnings);
            Ok(UpsertAnswer {
                upserted: docs.len(),
                added: committed.added,
                replaced: committed.replaced,
                documents: committed.snapshot.len(),
                warnings,
            })
        })
        .await?;
    Ok(axum::Json(answer).into_response())
}

/// The documents with each id's last one kept (at its own position), and a warning per id
/// given more than once.
fn keep_last(docs: Vec<hybrid_search::Document>) -> (Vec<hybrid_search::Document>, Vec<String>) {
    let mut last: std::collections::HashMap<&str, (usize, usize)> =
        std::collections::HashMap::with_capacity(docs.len());
    for (i, doc) in docs.iter().enumerate() {
        last.entry(doc.id.as_str())
            .and_modify(|(at, times)| {
                *at = i;
                *times += 1;
            })
            .or_insert((i, 1));
    }
    if last.len() == docs.len() {
        return (docs, Vec::new());
    }
    let mut repeated: Vec<(&str, usize)> = last
        .iter()
        .filter(|(_, (_, times))| *times > 1)
        .map(|(id, (_, times))| (*id, *times))
        .collect();
    repeated.sort_unstable();
    let warnings = repeated
        .iter()
        .map(|(id, times)| {
            format!("document id {id:?} was given {times} times; its last document was kept")
        })
        .collect();
    let keep: std::collections::HashSet<usize> = last.values().map(|(at, _)| *at).collect();
    let docs = docs
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, doc)| doc)
        .collect();
    (docs, warnings)
}

/// A document of a collection, with its vector when it was given one.
#[utoipa::path(
    get,
    path = "/collections/{name}/documents/{id}",
    tag = "documents",
    params(CollectionName, DocumentId),
    security((), ("api_key" = [])),
    responses(
        (status = 200, description = "The document", body = Document),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    ),
)]
pub(crate) async fn get_document(
    State(app): Shared,
    names: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let (name, id) = path(names)?;
    let served = app.collection(&name)?;
    let collection = served.snapshot();
    let missing = || ApiError::not_found(format!("collection {name:?} has no document {id:?}"));
    match collection.get(&id)? {
        Some(doc) => Ok(axum::Json(doc).into_response()),
        None => Err(missing()),
    }
}

/// What a delete committed.
#[derive(Serialize, ToSchema)]
pub(crate) struct DeleteAnswer {
    /// Documents deleted.
    deleted: usize,
    /// Documents in the collection after the commit.
    documents: u64,
    /// What the write noticed without refusing it.
    warnings: Vec<String>,
}

/// Deletes a document from both legs in one commit.
///
/// Needs the API key when the server has one.
#[utoipa::path(
    delete,
    path = "/collections/{name}/documents/{id}",
    tag = "documents",
    params(CollectionName, DocumentId),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Deleted and committed", body = DeleteAnswer),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = Overloaded),
    ),
)]
pub(crate) async fn delete_document(
    State(app): Shared,
    axum::Extension(admitted): Place,
    names: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let (name, id) = path(names)?;
    let served = app.collection(&name)?;
    let answer = app
        .write(served, admitted, move |handle| {
            if !handle
                .sparse()
                .contains(&id)
                .map_err(hybrid_search::Error::from)?
            {
                return Err(ApiError::not_found(format!(
                    "collection {name:?} has no document {id:?}"
                )));
            }
            let committed = handle.delete(&[id.as_str()])?;
            Ok(DeleteAnswer {
                deleted: committed.deleted,
                documents: committed.snapshot.len(),
                warnings: committed.warnings,
            })
        })
        .await?;
    Ok(axum::Json(answer).into_response())
}

/// `POST /collections/{name}/documents/delete`'s body: exactly one of `filter`, `ids` and
/// `all`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeleteBody {
    /// Delete the documents this filter matches (the form of a search's `filter`).
    #[schema(value_type = Option<Object>, example = json!({"field": "source", "eq": "old-feed"}))]
    filter: Option<serde_json::Value>,
    /// Delete the documents with these ids (an id with no document is not an error).
    ids: Option<Vec<String>>,
    /// `true`: delete every document.
    all: Option<bool>,
}

/// Deletes the documents a filter matches, or those with the ids given, or all of them, in
/// one commit covering both legs.
///
/// The body names exactly one of `filter`, `ids` and `"all": true`: an empty body or an
/// empty filter is refused, so deleting everything is always asked for by name. Answers how
/// many documents were deleted. Needs the API key when the server has one.
#[utoipa::path(
    post,
    path = "/collections/{name}/documents/delete",
    tag = "documents",
    params(CollectionName),
    request_body(content = DeleteBody, content_type = "application/json"),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Deleted and committed", body = DeleteAnswer),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = Overloaded),
    ),
)]
pub(crate) async fn delete_documents(
    State(app): Shared,
    axum::Extension(admitted): Place,
    name: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Response, ApiError> {
    let served = app.collection(&path(name)?)?;
    let body = parse::<DeleteBody>(&read_body(&app, body)?, "delete request")?;
    enum What {
        Filter(hybrid_search::Filter),
        Ids(Vec<String>),
        All,
    }
    let what = match (body.filter, body.ids, body.all) {
        (Some(f), None, None) => {
            What::Filter(hybrid_search::Filter::from_json(&f).map_err(|e| {
                ApiError::bad_request(format!(
                    "filter: {e}{}",
                    if f == serde_json::json!({}) {
                        "; to delete every document send {\"all\": true}"
                    } else {
                        ""
                    }
                ))
            })?)
        }
        (None, Some(ids), None) => What::Ids(ids),
        (None, None, Some(true)) => What::All,
        _ => {
            return Err(ApiError::bad_request(
                "delete request: send exactly one of {\"filter\": {...}}, {\"ids\": [...]} and \
                 {\"all\": true}",
            ));
        }
    };
    let answer = app
        .write(served, admitted, move |handle| {
            let committed = match &what {
                What::Filter(f) => handle.delete_where(Some(f))?,
                What::Ids(ids) => {
                    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                    handle.delete(&ids)?
                }
                What::All => handle.delete_where(None)?,
            };
            Ok(DeleteAnswer {
                deleted: committed.deleted,
                documents: committed.snapshot.len(),
                warnings: committed.warnings,
            })
        })
        .await?;
    Ok(axum::Json(answer).into_response())
}

/// `POST /collections`'s body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    /// The new collection's name (its folder's name in the data folder).
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", example = "scifact")]
    name: String,
    /// The analyzer of its text (`auto`: Korean and English, each by its own analysis).
    #[serde(default)]
    analyzer: AnalyzerKind,
    /// A model folder's name in the server's models folder: the collection gets a dense leg
    /// made by that model. Without one, BM25 only.
    #[schema(
        pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        example = "all-MiniLM-L6-v2"
    )]
    model: Option<String>,
}

/// Creates a collection (BM25, and a dense leg with `model`).
///
/// Needs the API key when the server has one.
#[utoipa::path(
    post,
    path = "/collections",
    tag = "collections",
    request_body(content = CreateBody, content_type = "application/json"),
    security(("api_key" = [])),
    responses(
        (status = 201, description = "Created (empty)", body = Info),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 503, response = Overloaded),
    ),
)]
pub(crate) async fn create(
    State(app): Shared,
    axum::Extension(admitted): Place,
    body: Body,
) -> Result<Response, ApiError> {
    let body: CreateBody = parse(&read_body(&app, body)?, "create request")?;
    check_name(&body.name, "collection")?;
    let answer = app
        .admin(
            admitted,
            move |app| async move { created(&app, body).await },
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(answer)).into_response())
}

/// Creates the collection `body` asks for; run under the admin lock.
async fn created(app: &Arc<AppState>, body: CreateBody) -> Result<Info, ApiError> {
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
                ApiError::not_found(format!(
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
    app.compute(move || {
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
            Ok(Served::with_handle(&body.name, collection))
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
    .await
}

/// `DELETE /collections/{name}`'s answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct Dropped {
    /// The deleted collection's name.
    deleted: String,
}

/// Deletes a collection and its folder.
///
/// Writes queued before the delete finish first; later ones answer 404. Once admitted, the
/// delete runs to its end whether or not the client waits for the answer: the folder is
/// moved aside in one rename under the collection's write lock, so the collection is either
/// deleted whole or left served as it was (409 `busy` when another process holds its write
/// lock for more than 5 s). Needs the API key when the server has one.
#[utoipa::path(
    delete,
    path = "/collections/{name}",
    tag = "collections",
    params(CollectionName),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Deleted", body = Dropped),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = Overloaded),
    ),
)]
pub(crate) async fn drop_collection(
    State(app): Shared,
    axum::Extension(admitted): Place,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let name = path(name)?;
    let answer = app
        .admin(admitted, move |app| async move {
            // Looked up under the admin lock: a collection deleted (or created again) by a
            // request that held it first is seen as it is now.
            let served = app.collection(&name)?;
            // Writes queued before this one finish first; later ones answer 404.
            let handle = served.handle.clone().lock_owned().await;
            let dir = served.snapshot().dir().to_path_buf();
            let trash = app.options.data.join(format!(
                ".deleted-{name}-{}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            ));
            let (removed, handle) = tokio::task::spawn_blocking(move || {
                let mut handle = handle;
                let removed = handle.remove_to(&trash);
                (removed, handle)
            })
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
            // Once the folder has moved (even if removing it failed), the collection is gone:
            // the writes waiting on its handle (released below) answer 404.
            let removed = (removed, !dir.exists());
            match removed {
                (_, true) => {
                    served.deleted.store(true, Ordering::SeqCst);
                    app.collections
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&name);
                    drop(handle);
                    if let (Err(e), _) = removed {
                        // The collection is deleted; what is left of its files goes at the next
                        // start (`.deleted-*` folders are removed then).
                        tracing::warn!(collection = %name, "{e}");
                    }
                    Ok(Dropped { deleted: name })
                }
                (Err(e), false) => Err(ApiError::from(e)),
                (Ok(()), false) => Err(ApiError::internal(format!(
                    "collection {name:?}: its folder was not moved"
                ))),
            }
        })
        .await?;
    Ok(axum::Json(answer).into_response())
}
