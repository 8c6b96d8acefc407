//! Fuzzing the HTTP API's request bodies on stable Rust: property tests that send arbitrary
//! bodies (JSON built from each route's own keys with values of every kind, arbitrary JSON,
//! arbitrary bytes) to every route that reads one, through the server's router, against a
//! collection with fields and a dense leg (a tiny model made by the test).
//!
//! What is checked: no request panics the server or is answered 500; every error is the API's
//! JSON error with a code and a message; the collection still verifies afterwards. Run longer
//! with `FUZZ_CASES=N cargo test --release -p hybrid-search-server --test fuzz` (N cases per
//! route; CI runs the numbers given below).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use hybrid_search::dense::{Device, Encoder, TinyModel};
use hybrid_search::{AnalyzerConfig, AnalyzerKind, Collection, DenseOptions, Document};
use hybrid_search_server::{Options, Server};
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::ServiceExt;

/// The case budget: `FUZZ_CASES` when set, else `ci`.
fn cases(ci: u32) -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ci)
}

/// A server over a data folder holding collection `c`: five documents with fields of each type
/// and a dense leg.
struct Fixture {
    _tmp: tempfile::TempDir,
    router: axum::Router,
    runtime: tokio::runtime::Runtime,
    dir: std::path::PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let model = tmp.path().join("tiny");
        TinyModel::default().write(&model).unwrap();
        let encoder = Arc::new(Encoder::load(&model, &Device::Cpu).unwrap());
        let options = DenseOptions::for_encoder(&encoder);
        let data = tmp.path().join("data");
        let dir = data.join("c");
        let mut c = Collection::create_with(
            &dir,
            AnalyzerConfig::for_kind(AnalyzerKind::En),
            Some((encoder, options)),
        )
        .unwrap();
        let docs: Vec<Document> = (0..5)
            .map(|i| {
                let source = ["pubmed", "pmc"][i % 2];
                serde_json::from_value(json!({
                    "id": format!("d{i}"),
                    "title": "sepsis",
                    "text": format!("interleukin {i} in sepsis and kidney disease"),
                    "fields": {"year": 2000 + i, "score": i as f64 / 2.0, "open": i % 2 == 0,
                               "source": source, "date": "2020-01-02"},
                }))
                .unwrap()
            })
            .collect();
        c.add(&docs, None).unwrap();
        drop(c);
        let server = Server::load(Options::new(data)).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Self {
            router: server.router(),
            runtime,
            dir,
            _tmp: tmp,
        }
    }

    /// `POST path` with `body`: the status and the answer's JSON.
    fn post(&self, path: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let request = Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        self.runtime.block_on(async {
            let response = self.router.clone().oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            (
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            )
        })
    }
}

fn fixture() -> &'static Fixture {
    static FIXTURE: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(Fixture::new)
}

/// Checks an answer: never a server error, and every error the API's JSON error.
fn check(
    route: &str,
    body: &[u8],
    (status, answer): &(StatusCode, Value),
) -> Result<(), TestCaseError> {
    let shown = String::from_utf8_lossy(&body[..body.len().min(400)]).into_owned();
    prop_assert!(
        !status.is_server_error(),
        "{route} answered {status} to {shown:?}: {answer}"
    );
    if !status.is_success() {
        prop_assert!(
            answer["error"]["code"].is_string() && answer["error"]["message"].is_string(),
            "{route} answered {status} without the API's error body to {shown:?}: {answer}"
        );
    }
    Ok(())
}

/// A leaf value of any kind, with the edge cases that broke servers before: huge and tiny
/// numbers, negative ones, invisible and long strings.
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![
            Just(0.0),
            Just(-1.0),
            Just(1e20),
            Just(1e-300),
            Just(f64::MAX)
        ]
        .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        prop_oneof![
            Just(""),
            Just(" "),
            Just("\u{200D}"),
            Just("sepsis"),
            Just("d1"),
            Just("year"),
            Just("source"),
            Just("date"),
            Just("open"),
            Just("score"),
            Just("id"),
            Just("*"),
            Just("hybrid"),
            Just("dense"),
            Just("sparse"),
            Just("rrf"),
            Just("convex"),
            Just("2020-01-02"),
            Just("2020-01-02T03:04:05Z"),
            Just("pubmed"),
        ]
        .prop_map(Value::from),
    ]
}

/// JSON built from `keys` (a route's own keys and the filter's), nested a few levels, with
/// leaves of every kind: mostly wrong, to reach the checks of shape and type.
fn body_from(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(prop::sample::select(keys), inner, 0..6).prop_map(|m| {
                Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

/// An object with each of `fields` present or not (each drawn by its strategy; `query` and
/// `id` nearly always): bodies of the right shape, with values at and beyond their edges, to
/// reach the engine behind the checks.
fn object(fields: Vec<(&'static str, BoxedStrategy<Value>)>) -> impl Strategy<Value = Value> {
    let (names, strategies): (Vec<_>, Vec<_>) = fields.into_iter().unzip();
    let present: Vec<_> = names
        .iter()
        .map(|n| {
            prop::bool::weighted(if matches!(*n, "query" | "id") {
                0.9
            } else {
                0.4
            })
        })
        .collect();
    (present, strategies).prop_map(move |(present, values)| {
        Value::Object(
            names
                .iter()
                .zip(present)
                .zip(values)
                .filter(|((_, p), _)| *p)
                .map(|((name, _), v)| (name.to_string(), v))
                .collect(),
        )
    })
}

/// A number for a count (`k`, `offset`, `depth`): small, zero, huge, negative or fractional.
fn count() -> BoxedStrategy<Value> {
    prop_oneof![
        12 => (0u64..30).prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => Just(Value::from(u64::MAX)),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(Value::from),
        1 => leaf(),
    ]
    .boxed()
}

fn text() -> BoxedStrategy<Value> {
    prop_oneof![
        12 => prop::sample::select(&["sepsis", "kidney disease", "interleukin 3", "IL-6", "d1"][..])
            .prop_map(Value::from),
        1 => any::<String>().prop_map(Value::from),
        1 => prop::sample::select(&["", " ", "\u{200D}\u{FEFF}", "\u{1F468}\u{200D}\u{1F469}"][..])
            .prop_map(Value::from),
        1 => (4000usize..4200).prop_map(|n| Value::from("a ".repeat(n / 2))),
        1 => leaf(),
    ]
    .boxed()
}

/// A vector: the model's length or another, with values at the edges of `f32`.
fn vector() -> BoxedStrategy<Value> {
    let edge = prop_oneof![
        Just(0.0),
        Just(1e20),
        Just(-3.5e38),
        Just(1e39),
        Just(1e-45)
    ];
    prop_oneof![
        // In range: ordinary, all zeros, or every component huge (finite in f32, its square
        // is not).
        8 => prop::collection::vec(-1.0f64..1.0, DIM).prop_map(Value::from),
        2 => prop::sample::select(&[0.0, 1e20, -1e19, 1e-45][..])
            .prop_map(|x| Value::from(vec![x; DIM])),
        // One value at or past the edges of f32, or another length.
        2 => (prop::collection::vec(-1.0f64..1.0, DIM), 0..DIM, edge.clone()).prop_map(
            |(mut v, at, x)| {
                v[at] = x;
                Value::from(v)
            },
        ),
        1 => prop::collection::vec(edge, 0..40).prop_map(Value::from),
        1 => leaf(),
    ]
    .boxed()
}

/// The dimension of the tiny model's vectors.
const DIM: usize = 32;

const FIELDS: &[&str] = &[
    "year", "score", "open", "source", "date", "id", "missing", "",
];

fn filter() -> BoxedStrategy<Value> {
    let field = prop::sample::select(FIELDS);
    let condition = (
        field,
        prop::sample::select(&["eq", "in", "gt", "gte", "lt", "lte", "exists"][..]),
        prop_oneof![
            leaf(),
            prop::collection::vec(leaf(), 0..4).prop_map(Value::from),
            (1990i64..2030).prop_map(Value::from),
        ],
    )
        .prop_map(|(field, op, value)| match op {
            "exists" => json!({"exists": field}),
            op => json!({"field": field, op: value}),
        });
    condition
        .prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(|v| json!({"and": v})),
                prop::collection::vec(inner.clone(), 0..4).prop_map(|v| json!({"or": v})),
                inner.clone().prop_map(|v| json!({"not": v})),
                body_from(FILTER_KEYS),
            ]
        })
        .boxed()
}

/// Pseudo-relevance feedback settings: on with defaults, with settings in and out of range.
fn prf() -> BoxedStrategy<Value> {
    let rm3 = object(vec![
        ("docs", count()),
        ("terms", count()),
        (
            "original_weight",
            prop_oneof![4 => (-0.5f64..1.5).prop_map(Value::from), 1 => leaf()].boxed(),
        ),
    ]);
    let rocchio = object(vec![
        ("docs", count()),
        (
            "beta",
            prop_oneof![4 => (-1.0f64..3.0).prop_map(Value::from), 1 => leaf()].boxed(),
        ),
    ]);
    prop_oneof![
        8 => object(vec![("rm3", rm3.boxed()), ("rocchio", rocchio.boxed())]),
        1 => leaf(),
    ]
    .boxed()
}

fn search() -> BoxedStrategy<Value> {
    let mode = prop_oneof![
        8 => prop::sample::select(&["hybrid", "dense", "sparse"][..]).prop_map(Value::from),
        1 => leaf()
    ]
    .boxed();
    let fusion = object(vec![
        (
            "method",
            prop_oneof![
                8 => prop::sample::select(&["rrf", "convex"][..]).prop_map(Value::from),
                1 => leaf()
            ]
            .boxed(),
        ),
        (
            "alpha",
            prop_oneof![8 => (-0.5f64..1.5).prop_map(Value::from), 1 => leaf()].boxed(),
        ),
        (
            "rrf_k",
            prop_oneof![8 => (-1.0f64..100.0).prop_map(Value::from), 1 => leaf()].boxed(),
        ),
        (
            "norm",
            prop_oneof![
                8 => prop::sample::select(&["minmax", "zscore", "dbsf", "theoretical"][..])
                    .prop_map(Value::from),
                1 => leaf()
            ]
            .boxed(),
        ),
        ("depth", count()),
    ])
    .boxed();
    let fields = prop_oneof![
        6 => prop::collection::vec(prop::sample::select(FIELDS).prop_map(Value::from), 0..3)
            .prop_map(Value::from),
        2 => Just(json!(["*"])),
        1 => leaf(),
    ]
    .boxed();
    prop_oneof![
        16 => object(vec![
            ("query", text()),
            ("vector", vector()),
            ("k", count()),
            ("offset", count()),
            ("mode", mode),
            ("fusion", fusion),
            ("explain", any::<bool>().prop_map(Value::from).boxed()),
            ("filter", filter()),
            ("fields", fields),
            ("prf", prf()),
        ]),
        1 => body_from(SEARCH_KEYS),
    ]
    .boxed()
}

fn document() -> BoxedStrategy<Value> {
    let id = prop_oneof![
        12 => (0u32..8).prop_map(|i| Value::from(format!("f{i}"))),
        1 => prop::sample::select(&["", "  ", "a\nb", "d1"][..]).prop_map(Value::from),
        1 => (500usize..530).prop_map(|n| Value::from("x".repeat(n))),
        1 => leaf(),
    ];
    let date = prop_oneof![
        Just(Value::from("2021-05-06")),
        Just(Value::from("2021-05-06T07:08:09+09:00")),
        Just(Value::from("not a date")),
        leaf(),
    ];
    prop_oneof![
        16 => object(vec![
            ("id", id.boxed()),
            ("title", text()),
            ("text", text()),
            ("vector", vector()),
            ("year", count()),
            ("score", leaf().boxed()),
            ("source", text()),
            ("date", date.boxed()),
            ("metadata", body_from(DOCUMENT_KEYS).boxed()),
        ]),
        1 => body_from(DOCUMENT_KEYS),
    ]
    .boxed()
}

const FILTER_KEYS: &[&str] = &[
    "field", "eq", "in", "gt", "gte", "lt", "lte", "exists", "and", "or", "not", "all",
];

const SEARCH_KEYS: &[&str] = &[
    "query", "vector", "k", "mode", "fusion", "method", "alpha", "rrf_k", "norm", "depth",
    "explain", "filter", "fields", "offset", "field", "eq", "in", "gte", "lt", "and", "or", "not",
    "prf", "rm3", "rocchio", "docs", "terms", "beta",
];

const DOCUMENT_KEYS: &[&str] = &[
    "id", "_id", "title", "text", "vector", "year", "source", "date", "open", "score", "metadata",
    "authors", "name",
];

const CREATE_KEYS: &[&str] = &["name", "analyzer", "model"];

/// A body: mostly `json` as text, sometimes arbitrary bytes or JSON cut short.
fn body(json: BoxedStrategy<Value>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        16 => json.clone().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
        1 => json.prop_map(|v| {
            let text = v.to_string();
            text.as_bytes()[..text.len() / 2].to_vec()
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(512)))]

    #[test]
    fn searches_never_fail_the_server(body in body(search())) {
        let f = fixture();
        check("search", &body, &f.post("/collections/c/search", body.clone()))?;
    }

    #[test]
    fn batches_never_fail_the_server(
        searches in prop::collection::vec(search(), 1..4),
    ) {
        let f = fixture();
        let body = json!({"searches": searches}).to_string().into_bytes();
        check("batch", &body, &f.post("/collections/c/search/batch", body.clone()))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(96)))]

    #[test]
    fn document_writes_never_fail_the_server(
        docs in prop::collection::vec(document(), 1..4),
        jsonl in any::<bool>(),
    ) {
        let f = fixture();
        let body: Vec<u8> = if jsonl {
            docs.iter().map(|d| d.to_string() + "\n").collect::<String>().into_bytes()
        } else {
            Value::from(docs).to_string().into_bytes()
        };
        check("documents", &body, &f.post("/collections/c/documents", body.clone()))?;
    }

    #[test]
    fn deletes_by_filter_and_creates_never_fail_the_server(
        delete in body(filter()),
        create in body(
            prop_oneof![
                object(vec![
                    ("name", prop_oneof![
                        "[a-z][a-z0-9._-]{0,8}".prop_map(Value::from),
                        Just(Value::from("c")),
                        Just(Value::from("../x")),
                        leaf(),
                    ].boxed()),
                    ("analyzer", prop_oneof![
                        prop::sample::select(&["auto", "en", "ko", "x"][..]).prop_map(Value::from),
                        leaf(),
                    ].boxed()),
                    ("model", leaf().boxed()),
                ]),
                body_from(CREATE_KEYS),
            ].boxed()
        ),
    ) {
        let f = fixture();
        // Deleting needs exactly one of filter, ids and all: wrapped, the filter reaches the
        // filter parser; bare, the body's own checks.
        let wrapped = serde_json::from_slice::<Value>(&delete)
            .map(|v| json!({"filter": v}).to_string().into_bytes())
            .unwrap_or_else(|_| delete.clone());
        for body in [delete, wrapped] {
            check("delete", &body, &f.post("/collections/c/documents/delete", body.clone()))?;
        }
        check("create", &create, &f.post("/collections", create.clone()))?;
    }
}

#[test]
fn the_collection_verifies_after_the_fuzzing() {
    let f = fixture();
    // Whatever the other properties wrote (they may run before or after this one).
    let (status, _) = f.post(
        "/collections/c/documents",
        br#"[{"id": "after", "text": "sepsis"}]"#.to_vec(),
    );
    assert_eq!(status, StatusCode::OK);
    let c = Collection::open(&f.dir).unwrap();
    let report = c.verify().unwrap();
    assert!(report.is_sound(), "{report:?}");
}
