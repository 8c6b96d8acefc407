//! The API's OpenAPI 3.1 description, derived by utoipa from the server's own request and
//! response types and the `#[utoipa::path]` attribute on each handler, then fitted to a running
//! server's settings ([`description`]): its limits (`k`, `fusion.depth`, query length) and which
//! routes need its API key. `GET /openapi.json` serves it; `docs/openapi.json` is the
//! description of a server run with an API key and the default limits ([`documented`]), and a
//! test fails when that file is stale.
//!
//! utoipa rather than aide: the handlers read their bodies as bytes (to name the field or line
//! that is wrong, and to take JSONL), so the description cannot come from the extractors' types
//! as aide's would; utoipa's per-handler attribute states each route's body, answers and
//! security next to the handler, and its `ToSchema` derive follows the serde attributes the
//! types already carry (tags, renames, `skip_serializing_if`, `flatten`, `deny_unknown_fields`).
//!
//! What a type cannot say is added here, as JSON Schema, where the types are described: a
//! search needs a `query` with a character that is not white space or a `vector`; a fusion
//! setting of one method cannot go with the other method; a document's id may be spelt `_id`
//! and be a number; vector values stay within `f32`'s range.

use serde_json::{Value, json};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoParams, OpenApi, ToResponse};

use crate::Options;
use crate::error::Body;

/// The collection a route addresses.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Read by the handlers from the path; this type only describes it.
pub(crate) struct CollectionName {
    /// The collection's name: 1 to 64 ASCII letters, digits, `-`, `_` and `.`, starting with a
    /// letter or digit.
    #[param(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    name: String,
}

/// The document a route addresses.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Read by the handlers from the path; this type only describes it.
pub(crate) struct DocumentId {
    /// The document's id (percent-encoded in the path).
    id: String,
}

/// A body that is not valid JSON or JSONL (the message names the field, or the line of the
/// body), an unknown field, a value out of range, a name that is not valid.
#[derive(ToResponse)]
#[allow(dead_code)]
pub(crate) struct BadRequest(Body<'static>);

/// No or a wrong API key (`Authorization: Bearer KEY`).
#[derive(ToResponse)]
#[response(headers(("WWW-Authenticate" = String, description = "`Bearer`")))]
#[allow(dead_code)]
pub(crate) struct Unauthorized(Body<'static>);

/// A request from another site's page (`Origin`), or for another host name (`Host`) while the
/// server listens on a loopback address.
#[derive(ToResponse)]
#[allow(dead_code)]
pub(crate) struct Forbidden(Body<'static>);

/// No such collection, document or model.
#[derive(ToResponse)]
#[allow(dead_code)]
pub(crate) struct NotFound(Body<'static>);

/// The request conflicts with the collection as it is: `exists` (a name in use), `busy`
/// (another process's writer held it for 5 s), `no_model` (documents to encode, or a dense
/// search of a text query, and the server has not found the collection's model),
/// `no_dense_leg` (a vector or a dense search for a collection built without a model),
/// `dimension_mismatch` (a vector of another length than the collection's), `field_mismatch`
/// (a document's field value of another type than the field's, or fields too large),
/// `conflict` (the
/// collection was built with another model or Korean dictionary than the one found).
#[derive(ToResponse)]
#[allow(dead_code)]
pub(crate) struct Conflict(Body<'static>);

/// A body over the server's `--max-body-mb`.
#[derive(ToResponse)]
#[allow(dead_code)]
pub(crate) struct PayloadTooLarge(Body<'static>);

/// The queue is full (`--queue` requests running or waiting); retry after `Retry-After`.
#[derive(ToResponse)]
#[response(headers(("Retry-After" = u32, description = "Seconds to wait: 1")))]
#[allow(dead_code)]
pub(crate) struct Overloaded(Body<'static>);

/// The security scheme: the server's API key as a bearer token.
struct ApiKey;

impl utoipa::Modify for ApiKey {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let scheme = Http::builder()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "The server's API key (`--api-key` or `HYBRID_SEARCH_API_KEY`), sent as \
                 `Authorization: Bearer KEY`.",
            ))
            .build();
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme("api_key", SecurityScheme::Http(scheme));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hybrid-search",
        description = "",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        crate::api::page,
        crate::api::health,
        crate::api::openapi,
        crate::api::list,
        crate::api::create,
        crate::api::describe,
        crate::api::drop_collection,
        crate::api::search,
        crate::api::search_batch,
        crate::api::upsert,
        crate::api::delete_documents,
        crate::api::get_document,
        crate::api::delete_document,
    ),
    components(schemas(Body), responses(
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        PayloadTooLarge,
        Overloaded,
    )),
    modifiers(&ApiKey),
    tags(
        (name = "search", description = "Searching a collection"),
        (name = "documents", description = "Adding, reading and deleting documents"),
        (name = "collections", description = "Creating, listing and deleting collections"),
        (name = "service", description = "The page, health and this description"),
    ),
)]
struct ApiDoc;

/// Matches a string with a character that is not white space: the characters
/// [`char::is_whitespace`] takes (Unicode's `White_Space`), spelt out so that every regex
/// engine reads the same class.
const NOT_BLANK: &str = "[^\\t\\n\\u000B\\f\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]";

/// The OpenAPI 3.1 description of a server run with `options`: its limits and which routes
/// need its key.
pub fn description(options: &Options) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the description is JSON");
    let limits = options.limits;
    let max_k = limits.max_k;
    let schemas = &mut doc["components"]["schemas"];

    // A search: a query that is not blank, or a vector; k and depth up to --max-k.
    let search = &mut schemas["SearchBody"];
    search["properties"]["query"]["maxLength"] = json!(limits.max_query_chars);
    search["properties"]["k"]["maximum"] = json!(max_k);
    search["properties"]["vector"]["items"] = f32_number();
    // A zero vector has no direction: refused (400).
    search["properties"]["vector"]["not"] = json!({"type": "array", "items": {"const": 0}});
    search["properties"]["vector"]["minItems"] = json!(1);
    // Inside `allOf`, as a condition: generated clients keep the fields' types (an `anyOf` of
    // partial objects made openapi-typescript's body type `unknown`).
    search["allOf"] = json!([
        {
            "if": {"required": ["vector"], "properties": {"vector": {"type": "array"}}},
            "else": {"required": ["query"], "properties": {"query": {"pattern": NOT_BLANK}}},
        },
        // A vector is the dense leg's input: not with the sparse mode.
        {
            "if": {"required": ["mode"], "properties": {"mode": {"const": "sparse"}}},
            "then": {"properties": {"vector": {"type": "null"}}},
        },
    ]);
    // Paging: offset + k within the deepest a search pages, whatever k.
    let window = hybrid_search::defaults::MAX_RESULT_WINDOW;
    search["properties"]["offset"]["maximum"] = json!(window.saturating_sub(max_k));
    let filter_ref = json!({"oneOf": [{"$ref": "#/components/schemas/Filter"}, {"type": "null"}]});
    search["properties"]["filter"] = filter_ref.clone();
    schemas["DeleteBody"]["properties"]["filter"] = filter_ref;
    schemas["Filter"] = filter_schema();
    // Exactly one of filter, ids and all (true).
    let given =
        |field: &str, schema: Value| json!({"required": [field], "properties": {field: schema}});
    schemas["DeleteBody"]["oneOf"] = json!([
        given("filter", json!({"type": "object"})),
        given("ids", json!({"type": "array"})),
        given("all", json!({"const": true})),
    ]);
    schemas["BatchBody"]["properties"]["searches"]["items"] =
        json!({"$ref": "#/components/schemas/SearchBody"});
    schemas["BatchBody"]["properties"]["searches"]["minItems"] = json!(1);
    schemas["BatchBody"]["properties"]["searches"]["maxItems"] = json!(crate::api::MAX_BATCH);
    let fusion = &mut schemas["FusionBody"];
    fusion["properties"]["depth"]["maximum"] = json!(max_k);
    // A setting is given when its value is not null.
    let given = |field: &str, kind: &str| json!({"required": [field], "properties": {field: {"type": kind}}});
    fusion["allOf"] = json!([
        {
            "if": {"required": ["method"], "properties": {"method": {"const": "rrf"}}},
            "then": {"properties": {"alpha": {"type": "null"}, "norm": {"type": "null"}}},
        },
        {
            "if": {"required": ["method"], "properties": {"method": {"const": "convex"}}},
            "then": {"properties": {"rrf_k": {"type": "null"}}},
        },
        {"not": {"allOf": [
            given("rrf_k", "number"),
            {"anyOf": [given("alpha", "number"), given("norm", "string")]},
        ]}},
    ]);

    // A document as the server reads it: an id that is a string or a number. (The server also
    // takes BEIR's `_id` instead of `id`, as `hybrid-search index` does; the description
    // says so in words rather than in an `anyOf` that generated clients cannot type.)
    let document = &mut schemas["DocumentInput"];
    document["properties"]["id"]["type"] = json!(["string", "number"]);
    // The id rule (`hybrid_search_document::check_id`), for a string id: 1 to 512 characters,
    // no control characters, not only white space (Unicode White_Space spelt out, not `\s`,
    // whose set differs between regex dialects).
    document["properties"]["id"]["minLength"] = json!(1);
    document["properties"]["id"]["maxLength"] = json!(hybrid_search::MAX_ID_CHARS);
    document["properties"]["id"]["pattern"] = json!(
        "^[^\\u0000-\\u001F\\u007F-\\u009F]*\
         [^\\u0000-\\u0020\\u007F-\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]\
         [^\\u0000-\\u001F\\u007F-\\u009F]*$"
    );
    document["properties"]["vector"]["items"] = f32_number();
    document["properties"]["vector"]["not"] = json!({"type": "array", "items": {"const": 0}});
    document["properties"]["vector"]["minItems"] = json!(1);
    let upsert = &mut doc["paths"]["/collections/{name}/documents"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"];
    upsert["minItems"] = json!(1);

    // Who needs the key. The handlers mark reads `security: [{}, {"api_key": []}]` and writes
    // `[{"api_key": []}]`; here each becomes what this server does: a route that needs the key
    // says so and answers 401, one that does not has no security and no 401.
    let reads_need_key = options.api_key.is_some() && options.protect_search;
    for (_, item) in doc["paths"].as_object_mut().expect("paths").iter_mut() {
        for (_, operation) in item.as_object_mut().expect("path item").iter_mut() {
            let operation = operation.as_object_mut().expect("operation");
            let Some(security) = operation.get("security") else {
                continue;
            };
            let read = security.as_array().is_some_and(|s| s.contains(&json!({})));
            let needs_key = options.api_key.is_some() && (!read || reads_need_key);
            if needs_key {
                operation.insert("security".into(), json!([{"api_key": []}]));
            } else {
                operation.remove("security");
                if let Some(responses) = operation
                    .get_mut("responses")
                    .and_then(Value::as_object_mut)
                {
                    responses.remove("401");
                }
            }
        }
    }
    doc["info"]["description"] = json!(about(options));
    doc
}

/// [`description`] of the server `docs/openapi.json` describes: an API key, reads open, the
/// default limits.
pub fn documented() -> Value {
    let mut options = Options::new(std::path::PathBuf::from("data"));
    options.api_key = Some("KEY".into());
    description(&options)
}

/// The filter's JSON form (`hybrid_search::Filter`): a condition on one field, or `and`,
/// `or` and `not` of filters. Which field names and value types fit is the collection's
/// (`GET /collections/{name}` lists its fields): a filter that does not fit them is refused
/// with 400.
fn filter_schema() -> Value {
    let scalar = json!({"type": ["string", "number", "boolean"]});
    let list = |key: &str| {
        json!({
            "type": "object",
            "required": [key],
            "additionalProperties": false,
            "properties": {key: {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Filter"}}},
        })
    };
    json!({
        "description": "Which documents a search (or a delete) covers: {\"field\": NAME, \"eq\": VALUE}, {\"field\": NAME, \"in\": [VALUES]}, {\"field\": NAME, \"gte\"/\"gt\"/\"lte\"/\"lt\": VALUE, ...} (numbers and RFC 3339 dates), {\"field\": NAME, \"exists\": true|false}, {\"and\": [...]}, {\"or\": [...]}, {\"not\": {...}}; \"field\": \"id\" is the document id.",
        "oneOf": [
            list("and"),
            list("or"),
            {
                "type": "object",
                "required": ["not"],
                "additionalProperties": false,
                "properties": {"not": {"$ref": "#/components/schemas/Filter"}},
            },
            {
                "type": "object",
                "required": ["field"],
                "additionalProperties": false,
                "properties": {
                    "field": {"type": "string", "minLength": 1},
                    "eq": scalar, "in": {"type": "array", "items": scalar},
                    "gt": scalar, "gte": scalar, "lt": scalar, "lte": scalar,
                    "exists": {"type": "boolean"},
                },
                "not": {"anyOf": [{"required": ["gt", "gte"]}, {"required": ["lt", "lte"]}]},
                "oneOf": [
                    {"required": ["eq"]},
                    {"required": ["in"]},
                    {"required": ["exists"]},
                    {"anyOf": [{"required": ["gt"]}, {"required": ["gte"]}, {"required": ["lt"]}, {"required": ["lte"]}]},
                ],
            },
        ],
    })
}

/// A JSON number a vector value may be: within `f32`'s range.
fn f32_number() -> Value {
    let max = f64::from(f32::MAX);
    json!({"type": "number", "minimum": -max, "maximum": max})
}

/// The description's text: what the API is, its limits and who needs the key.
fn about(options: &Options) -> String {
    let limits = options.limits;
    let key = match (&options.api_key, options.protect_search) {
        (None, _) => {
            "This server runs without an API key: every route is open (to this machine's \
             programs when it listens on a loopback address)."
        }
        (Some(_), false) => {
            "This server has an API key: writes (creating and deleting collections, adding and \
             deleting documents) need `Authorization: Bearer KEY`; reads (searches, documents, \
             listings) are open, as a server started without `--protect-search` has them."
        }
        (Some(_), true) => {
            "This server has an API key and runs with `--protect-search`: every route but \
             `/`, `/health` and `/openapi.json` needs `Authorization: Bearer KEY`."
        }
    };
    format!(
        "hybrid-search's HTTP API: hybrid sparse (BM25) + dense (vector) search over the \
         collections of a data folder (`hybrid-search serve`; docs/api.md has curl examples for \
         every route). Every error is `{{\"error\": {{\"code\", \"message\"}}}}` with a stable \
         code.\n\n{key}\n\nLimits of this server: `k` and `fusion.depth` up to {max_k} \
         (`--max-k`), queries up to {query} characters, request bodies up to {body} bytes \
         (`--max-body-mb`; 413 above, checked on `Content-Length` before the body is read), \
         {queue} requests admitted at once (`--queue`; 503 with `Retry-After` above). A \
         request from another site's page (`Origin`) is refused (403), and so is one for \
         another host name while the server listens on a loopback address.",
        max_k = limits.max_k,
        query = limits.max_query_chars,
        body = limits.max_body_bytes,
        queue = options.queue,
    )
}
