//! The API's errors: `{"error": {"code", "message"}}` with the HTTP status that fits.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answered to a request: its status, a stable machine-readable `code` and a message
/// that says what was wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable code: `bad_request`, `unauthorized`, `forbidden`, `not_found`,
    /// `method_not_allowed`, `exists`, `busy`, `no_model`, `no_dense_leg`,
    /// `dimension_mismatch`, `field_mismatch`, `conflict`, `payload_too_large`, `timeout`, `overloaded`,
    /// `remote`,
    /// `internal` (`docs/api.md`).
    pub code: &'static str,
    /// What went wrong, naming the field, line or collection.
    pub message: String,
}

impl ApiError {
    /// 400: the request's body or path is not valid; `message` names the field or line.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404: no such collection, document or model.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409: the request conflicts with the collection as it is (it exists, another process
    /// writes it, it has no model or no dense leg, its vectors have another length).
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 500: the engine failed (the message says how); nothing committed is lost.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

/// Every error's body: `{"error": {"code", "message"}}`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ErrorBody)]
pub(crate) struct Body<'a> {
    /// What went wrong.
    error: Inner<'a>,
}

/// An error's code and message.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ErrorDetail)]
pub(crate) struct Inner<'a> {
    /// A stable, machine-readable code: `bad_request`, `unauthorized`, `forbidden`,
    /// `not_found`, `method_not_allowed`, `exists`, `busy`, `no_model`, `no_dense_leg`,
    /// `dimension_mismatch`, `field_mismatch`, `conflict`, `payload_too_large`, `timeout`, `overloaded`,
    /// `remote`,
    /// `internal`.
    #[schema(example = "bad_request")]
    code: &'a str,
    /// What was wrong, naming the field, line or collection, and what to do.
    #[schema(example = "k: 5000 is outside 1..=1000")]
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("valid"));
        }
        if self.status == StatusCode::REQUEST_TIMEOUT {
            // The rest of a late body is not read: the connection cannot carry another request.
            headers.insert(header::CONNECTION, "close".parse().expect("valid"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, "1".parse().expect("valid"));
        }
        response
    }
}

impl From<hybrid_search::Error> for ApiError {
    /// The status from [`hybrid_search::Error::kind`], by an exhaustive match; the code names
    /// the conflict where the variant says more.
    fn from(e: hybrid_search::Error) -> Self {
        use hybrid_search::{Error as E, ErrorKind as K};
        let message = match &e {
            E::InvalidRequest { setting, problem } => format!("{}: {problem}", field(*setting)),
            // How this front end names a model.
            E::NoModel(..) | E::ModelMismatch { .. } => format!(
                "{e}; the server loads each collection's model from its models folder when it \
                 opens the collection (scripts/fetch-models.sh lays out the standard models)"
            ),
            e => e.to_string(),
        };
        match e.kind() {
            K::InvalidInput => Self::bad_request(message),
            K::NotFound => Self::not_found(message),
            // The collection's state, not the request's form: the same request suits
            // another collection.
            K::Conflict => {
                let code = match e {
                    E::InvalidVector { .. } => "dimension_mismatch",
                    E::InvalidField { .. } => "field_mismatch",
                    E::NoModel(..) => "no_model",
                    E::NoDenseLeg(..) => "no_dense_leg",
                    E::NotEmpty(_) => "exists",
                    _ => "conflict",
                };
                Self::conflict(code, message)
            }
            K::Busy => Self::conflict(
                "busy",
                format!("{message}; try again when the other writer is done"),
            ),
            K::Remote => Self::new(StatusCode::BAD_GATEWAY, "remote", message),
            K::Internal => Self::internal(message),
        }
    }
}

/// The JSON field of a search body that holds `setting` (the engine's errors name settings
/// neutrally).
pub(crate) fn field(setting: hybrid_search::Setting) -> &'static str {
    use hybrid_search::Setting as S;
    match setting {
        S::Query => "query",
        S::K => "k",
        S::Vector => "vector",
        S::Mode => "mode",
        S::Method => "fusion.method",
        S::Alpha => "fusion.alpha",
        S::RrfK => "fusion.rrf_k",
        S::Norm => "fusion.norm",
        S::Depth => "fusion.depth",
        S::Filter => "filter",
        S::Fields => "fields",
        S::Offset => "offset",
        S::Prf => "prf",
        // Not settings of the HTTP API: named as the engine names them.
        S::QueryModel | S::RerankDepth | S::RerankWeight => setting.name(),
    }
}

impl ApiError {
    /// The same error with `prefix` before its message (a batch names the search's position).
    pub fn prefixed(mut self, prefix: &str) -> Self {
        self.message = format!("{prefix}{}", self.message);
        self
    }

    /// 413: a body over `limit` bytes.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the request body is larger than this server's limit of {limit} bytes; send the \
                 documents in smaller batches, or start the server with a larger --max-body-mb"
            ),
        )
    }
}

/// The rejection of a body that could not be read: 413 over the limit (the limit is checked
/// on `Content-Length` first, by the router; this catches a body sent without one).
pub(crate) fn body_rejection(
    e: axum::extract::rejection::BytesRejection,
    limit: usize,
) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(limit)
    } else {
        ApiError::new(e.status(), "bad_request", e.body_text())
    }
}
