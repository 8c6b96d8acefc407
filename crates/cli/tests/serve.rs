//! `hybrid-search serve` end to end, as a client sees it: the JSON API on the fixture corpus with
//! a tiny random model (search, explain, upsert, delete, collections, errors, auth, path
//! escapes), a queue that answers 503 when full, writers and readers at once, SIGTERM during a
//! write, and kill -9 during writes followed by a restart.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::http::{Served, code};
use common::{hs, ok, s};
use serde_json::{Value, json};

/// A data folder holding the fixture corpus as collection `idx`, with a dense leg made by a
/// tiny model at `dir/tiny`.
fn data_folder(dir: &std::path::Path) -> std::path::PathBuf {
    let (index, _model) = common::tiny_model_collection(dir);
    assert!(index.ends_with("idx"));
    dir.to_path_buf()
}

fn docs_json(tag: &str, n: usize, words: usize) -> String {
    let filler = "sepsis cytokine marker ".repeat(words);
    let docs: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("{tag}-{i}"), "title": tag, "text": format!("{tag} {filler}")}))
        .collect();
    serde_json::to_string(&docs).unwrap()
}

/// Letters only, so the English analyzer keeps a batch's tag as one term.
fn tag(writer: usize, batch: usize) -> String {
    let letter = |n: usize| char::from(b'a' + (n % 26) as u8);
    format!(
        "zq{}{}{}",
        letter(writer),
        letter(batch / 26),
        letter(batch)
    )
}

fn count_tagged(server: &Served, tag: &str) -> usize {
    let a = server.call(
        "POST",
        "/collections/idx/search",
        Some(&json!({"query": tag, "k": 100, "mode": "sparse"}).to_string()),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["hits"].as_array().unwrap().len()
}

#[test]
fn api_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_folder(tmp.path());
    let models = tmp.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    hybrid_search::dense::TinyModel::default()
        .write(&models.join("tiny-small"))
        .unwrap();
    let server = Served::start(
        &data,
        &[
            "--api-key",
            "k3y",
            "--models",
            s(&models),
            "--max-body-mb",
            "1",
        ],
    );

    // Health, listing, one collection.
    let health = server.call("GET", "/health", None);
    assert_eq!(
        (health.status, health.body["status"].as_str()),
        (200, Some("ok"))
    );
    let list = server.call_as("GET", "/collections", None, None);
    assert_eq!(list.status, 200);
    let idx = &list.body["collections"][0];
    assert_eq!(idx["name"], "idx");
    assert_eq!(idx["documents"], 30);
    assert_eq!(idx["mode"], "hybrid");
    assert_eq!(idx["model"], "tiny");
    // f32 settings print as stored, not widened to f64.
    assert!(list.text.contains("\"alpha\":0.85"), "{}", list.text);

    // A hybrid search with explain answers exactly what `search --json --explain` prints.
    let query = "IL-6 sepsis";
    let a = server.call_as(
        "POST",
        "/collections/idx/search",
        Some(&json!({"query": query, "k": 5, "explain": true}).to_string()),
        None,
    );
    assert_eq!(a.status, 200, "{}", a.text);
    let cli: Value = serde_json::from_str(&ok(&[
        "search",
        "--index",
        s(&data.join("idx")),
        "-k",
        "5",
        "--json",
        "--explain",
        query,
    ]))
    .unwrap();
    assert_eq!(a.body, cli);
    assert_eq!(a.body["hits"].as_array().unwrap().len(), 5);
    assert_eq!(a.body["hits"][0]["legs"].as_array().unwrap().len(), 2);
    // Fusion overrides and modes, as the CLI's flags.
    let rrf = server.post_ok(
        "/collections/idx/search",
        &json!({"query": query, "k": 3, "fusion": {"method": "rrf", "rrf_k": 10}}),
    );
    assert_eq!(rrf["fusion"]["fusion"]["method"], "rrf");
    assert_eq!(rrf["fusion"]["fusion"]["k"], 10.0);
    assert!(
        rrf["hits"][0].get("legs").is_none(),
        "no legs without explain"
    );
    // A query vector in dense mode: the top hit's own vector finds it first.
    let dim = idx["dim"].as_u64().unwrap() as usize;
    let mut vector = vec![0.0f32; dim];
    vector[0] = 1.0;
    let dense = server.post_ok(
        "/collections/idx/search",
        &json!({"vector": vector, "k": 3, "mode": "dense"}),
    );
    assert_eq!(dense["mode"], "dense");
    assert_eq!(dense["hits"].as_array().unwrap().len(), 3);

    // Writes need the key: none, and a wrong one, are 401.
    let body = docs_json("procalcitonin", 2, 1);
    for key in [None, Some("wrong")] {
        let a = server.call_as("POST", "/collections/idx/documents", Some(&body), key);
        assert_eq!((a.status, code(&a)), (401, "unauthorized"), "{}", a.text);
    }
    // Upsert a JSON array, then JSONL (one replaced, one new): answered after the commit.
    let added = server.post_ok(
        "/collections/idx/documents",
        &serde_json::from_str::<Value>(&body).unwrap(),
    );
    assert_eq!(
        (added["added"].as_u64(), added["documents"].as_u64()),
        (Some(2), Some(32))
    );
    let jsonl = "{\"id\": \"procalcitonin-1\", \"text\": \"procalcitonin again\"}\n\n{\"id\": \"ferritin-0\", \"text\": \"ferritin\"}\n";
    let a = server.call("POST", "/collections/idx/documents", Some(jsonl));
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        (a.body["added"].as_u64(), a.body["replaced"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(a.body["documents"].as_u64(), Some(33));
    assert_eq!(count_tagged(&server, "procalcitonin"), 2);
    // A UTF-8 byte order mark before a body is ignored (RFC 8259 §8.1), as the CLI ignores it
    // in files: documents as JSONL and as an array, and a search.
    for body in [
        "\u{feff}{\"id\": \"bom-0\", \"text\": \"zzbomzz\"}\n".to_string(),
        "\u{feff}[{\"id\": \"bom-1\", \"text\": \"zzbomzz\"}]".to_string(),
    ] {
        let a = server.call("POST", "/collections/idx/documents", Some(&body));
        assert_eq!(a.status, 200, "{}", a.text);
    }
    let a = server.call(
        "POST",
        "/collections/idx/search",
        Some("\u{feff}{\"query\": \"zzbomzz\", \"mode\": \"sparse\"}"),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    let ids: Vec<&str> = a.body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["id"].as_str())
        .collect();
    assert!(
        ids.contains(&"bom-0") && ids.contains(&"bom-1"),
        "{}",
        a.text
    );
    let a = server.call("DELETE", "/collections/idx/documents/bom-0", None);
    assert_eq!(a.status, 200, "{}", a.text);
    let a = server.call("DELETE", "/collections/idx/documents/bom-1", None);
    assert_eq!(a.status, 200, "{}", a.text);
    let doc = server.call("GET", "/collections/idx/documents/procalcitonin-1", None);
    assert_eq!(
        (doc.status, doc.body["text"].as_str()),
        (200, Some("procalcitonin again"))
    );

    // Delete: the document is gone from searches and reads; a second delete is 404.
    let a = server.call("DELETE", "/collections/idx/documents/procalcitonin-1", None);
    assert_eq!((a.status, a.body["documents"].as_u64()), (200, Some(32)));
    assert_eq!(count_tagged(&server, "procalcitonin"), 1);
    let a = server.call("DELETE", "/collections/idx/documents/procalcitonin-1", None);
    assert_eq!((a.status, code(&a)), (404, "not_found"));
    let a = server.call("GET", "/collections/idx/documents/procalcitonin-1", None);
    assert_eq!(a.status, 404);

    // Bad input: 400 naming the field or line; nothing is written.
    let bad = |body: &str, path: &str, says: &str| {
        let a = server.call("POST", path, Some(body));
        assert_eq!(
            (a.status, code(&a)),
            (400, "bad_request"),
            "{body}: {}",
            a.text
        );
        let message = a.body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(says),
            "{body}: {message} should say {says:?}"
        );
    };
    let search = "/collections/idx/search";
    bad(r#"{"query": "x", "k": 0}"#, search, "k: 0");
    bad(r#"{"query": "x", "k": 5000}"#, search, "k: 5000");
    bad(r#"{"query": "x", "top": 3}"#, search, "unknown field `top`");
    bad(
        r#"{"query": "x", "fusion": {"method": "rrf", "alpha": 0.5}}"#,
        search,
        "fusion.alpha",
    );
    bad(
        r#"{"query": "x", "fusion": {"alpha": 2}}"#,
        search,
        "fusion.alpha: must be between 0 and 1",
    );
    bad(
        r#"{"query": "x", "mode": "fuzzy"}"#,
        search,
        "unknown variant `fuzzy`",
    );
    bad(r#"{"k": 3}"#, search, "query: missing");
    bad(
        &json!({"query": "x".repeat(5000)}).to_string(),
        search,
        "query: 5000 characters",
    );
    // A vector of another length than the collection's: the collection's state, 409.
    let a = server.call(
        "POST",
        search,
        Some(r#"{"vector": [1, 2], "mode": "dense"}"#),
    );
    assert_eq!(
        (a.status, code(&a)),
        (409, "dimension_mismatch"),
        "{}",
        a.text
    );
    assert!(a.text.contains("vector: 2 values"), "{}", a.text);
    bad(r#"{"query": "x""#, search, "search request: EOF");
    // Numbers are read as JSON sends them (f64) and refused by range, quoted as sent
    // (issue 34: these were "got inf" and "got 0").
    bad(
        r#"{"query": "x", "fusion": {"method": "rrf", "rrf_k": 5.388624124391167e+307}}"#,
        search,
        "fusion.rrf_k: 5.388624124391167e307 is above the largest rrf_k, 3.4028235e38",
    );
    bad(
        r#"{"query": "x", "fusion": {"method": "rrf", "rrf_k": 5e-324}}"#,
        search,
        "fusion.rrf_k: 5e-324 is below the smallest rrf_k",
    );
    bad(
        r#"{"query": "x", "fusion": {"alpha": 1e300}}"#,
        search,
        "fusion.alpha: must be between 0 and 1, got 1e300",
    );
    bad(
        r#"{"vector": [0.5, 1e39], "mode": "dense"}"#,
        search,
        "vector: value 1: 1e39 is beyond the range of a 32-bit float",
    );
    bad(
        r#"{"query": "x", "k": 2.5}"#,
        search,
        "2.5 is not a whole number",
    );
    // JSON Schema counts 3.0 as an integer, and so does the server.
    let a = server.call("POST", search, Some(r#"{"query": "sepsis", "k": 3.0}"#));
    assert_eq!(
        (a.status, a.body["hits"].as_array().map(Vec::len)),
        (200, Some(3)),
        "{}",
        a.text
    );
    let documents = "/collections/idx/documents";
    bad(
        "{\"id\": \"a\", \"text\": \"ok\"}\n{\"id\": \"b\"}\n",
        documents,
        "request body line 2: missing field \"text\"",
    );
    let a = server.call(
        "POST",
        documents,
        Some(r#"[{"id": "v", "text": "t", "vector": [1, 2]}]"#),
    );
    assert_eq!(
        (a.status, code(&a)),
        (409, "dimension_mismatch"),
        "{}",
        a.text
    );
    let message = a.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("\"vector\" cannot be used"), "{message}");
    bad("[]", documents, "no documents");
    // Pseudo-relevance feedback per search; out-of-range settings name the setting.
    let a = server.call(
        "POST",
        search,
        Some(r#"{"query": "sepsis", "prf": {"rm3": {}, "rocchio": {"beta": 0.3}}}"#),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    bad(
        r#"{"query": "sepsis", "prf": {"rm3": {"terms": 0}}}"#,
        search,
        "prf: rm3: docs 10 and terms 0 must each be 1 to 100",
    );
    bad(
        r#"{"query": "sepsis", "prf": {"rm4": {}}}"#,
        search,
        "unknown field `rm4`",
    );
    // A zero vector has no direction (400); one whose squares overflow f32 is stored scaled.
    let dim = server.call("GET", "/collections/idx", None).body["dim"]
        .as_u64()
        .unwrap() as usize;
    bad(
        &json!([{"id": "z", "text": "t", "vector": vec![0.0; dim]}]).to_string(),
        documents,
        "every value is 0",
    );
    bad(
        &json!({"vector": vec![0.0; dim], "mode": "dense"}).to_string(),
        search,
        "vector: cannot be used: every value is 0",
    );
    bad(
        r#"[{"id": "v", "text": "t", "vector": [-1e39]}]"#,
        documents,
        "\"vector\" value 0: -1e39 is beyond the range of a 32-bit float",
    );
    assert_eq!(
        server.call("GET", "/collections/idx", None).body["documents"],
        32
    );

    // An id given twice in one request keeps its last document, as two requests would, and
    // the answer says so.
    let a = server.call(
        "POST",
        documents,
        Some(
            "[\n{\"id\": \"twice\", \"text\": \"first\"},\n{\"id\": \"twice\", \"text\": \"second\"}\n]",
        ),
    );
    assert_eq!(
        (a.status, a.body["upserted"].as_u64()),
        (200, Some(1)),
        "{}",
        a.text
    );
    assert!(
        a.body["warnings"][0]
            .as_str()
            .is_some_and(|w| w.contains("\"twice\" was given 2 times")),
        "{}",
        a.text
    );
    let doc = server.call("GET", "/collections/idx/documents/twice", None);
    assert_eq!(doc.body["text"], "second", "{}", doc.text);
    let a = server.call("DELETE", "/collections/idx/documents/twice", None);
    assert_eq!(a.status, 200, "{}", a.text);

    // A body over the limit is 413, answered on its declared length before it is sent.
    let (status, text) = server.declared_only(documents, 2 << 20);
    assert_eq!(status, 413, "{text}");
    assert!(
        text.contains("payload_too_large") && text.contains("--max-body-mb"),
        "{text}"
    );

    // Names cannot reach outside the data folder.
    for path in [
        "/collections/..%2F..%2Fetc/search",
        "/collections/%2E%2E/search",
        "/collections/.hidden/search",
        "/collections/a%2Fb/search",
        "/collections/%FF/search",
    ] {
        let a = server.call("POST", path, Some(r#"{"query": "x"}"#));
        assert_eq!(
            (a.status, code(&a)),
            (400, "bad_request"),
            "{path}: {}",
            a.text
        );
    }
    let a = server.call("POST", "/collections", Some(r#"{"name": "../escape"}"#));
    assert_eq!((a.status, code(&a)), (400, "bad_request"));
    let a = server.call(
        "POST",
        "/collections",
        Some(r#"{"name": "ok", "model": "../tiny"}"#),
    );
    assert_eq!((a.status, code(&a)), (400, "bad_request"));
    assert!(!tmp.path().join("escape").exists() && !tmp.path().join("ok").exists());
    let a = server.call("GET", "/collections/nope/documents/x", None);
    assert_eq!((a.status, code(&a)), (404, "not_found"));

    // Another site's page cannot call the API, nor can a request for another host name.
    let a = server.call_with(
        "POST",
        documents,
        "[]",
        &[("Origin", "http://evil.example")],
    );
    assert_eq!((a.status, code(&a)), (403, "forbidden"), "{}", a.text);
    let own = server.base.clone();
    let a = server.call_with(
        "POST",
        search,
        r#"{"query": "sepsis"}"#,
        &[("Origin", &own)],
    );
    assert_eq!(a.status, 200, "the server's own page may: {}", a.text);
    let (status, text) = server.raw("GET /collections HTTP/1.1\r\nHost: rebound.example:7700\r\n");
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("forbidden"), "{text}");
    // A document in a one-line array is named by its position.
    bad(
        r#"[{"id": "a", "text": "ok"}, {"id": "b"}]"#,
        documents,
        "request body (document 2) line 1: missing field \"text\"",
    );

    // Create a collection with a model from the models folder, fill it, search it, delete it.
    let a = server.call(
        "POST",
        "/collections",
        Some(r#"{"name": "news", "analyzer": "en", "model": "tiny-small"}"#),
    );
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(
        (a.body["model"].as_str(), a.body["documents"].as_u64()),
        (Some("tiny-small"), Some(0))
    );
    let a = server.call("POST", "/collections", Some(r#"{"name": "news"}"#));
    assert_eq!((a.status, code(&a)), (409, "exists"));
    // A collection without a model cannot take or search by vectors: 409, and nothing written.
    let a = server.call("POST", "/collections", Some(r#"{"name": "plain"}"#));
    assert_eq!(a.status, 201, "{}", a.text);
    for (path, body) in [
        (
            "/collections/plain/documents",
            r#"[{"id": "p", "text": "t", "vector": [0.5]}]"#,
        ),
        ("/collections/plain/search", r#"{"vector": [0.5]}"#),
        (
            "/collections/plain/search",
            r#"{"query": "x", "mode": "dense"}"#,
        ),
    ] {
        let a = server.call("POST", path, Some(body));
        assert_eq!(
            (a.status, code(&a)),
            (409, "no_dense_leg"),
            "{body}: {}",
            a.text
        );
    }
    let a = server.call(
        "POST",
        "/collections/plain/search",
        Some(r#"{"vector": [0.5], "mode": "sparse"}"#),
    );
    assert_eq!((a.status, code(&a)), (400, "bad_request"), "{}", a.text);
    assert_eq!(
        server.call("GET", "/collections/plain", None).body["documents"],
        0
    );
    assert_eq!(
        server.call("DELETE", "/collections/plain", None).status,
        200
    );
    let a = server.call(
        "POST",
        "/collections",
        Some(r#"{"name": "x", "model": "missing"}"#),
    );
    // A well-formed request naming a model this server does not have: 404, the model.
    assert_eq!((a.status, code(&a)), (404, "not_found"));
    assert!(a.text.contains("model"), "{}", a.text);
    server.post_ok(
        "/collections/news/documents",
        &json!([{"id": "n1", "text": "ferritin rises in inflammation"}]),
    );
    let found = server.post_ok("/collections/news/search", &json!({"query": "ferritin"}));
    assert_eq!(found["hits"][0]["id"], "n1");
    let a = server.call("DELETE", "/collections/news", None);
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(!tmp.path().join("news").exists());
    let a = server.call(
        "POST",
        "/collections/news/search",
        Some(r#"{"query": "x"}"#),
    );
    assert_eq!(a.status, 404);

    // The page is served, and unknown routes are JSON 404s.
    let page = server.call("GET", "/", None);
    assert_eq!(page.status, 200);
    assert!(page.text.contains("<form id=\"search\""));
    assert_eq!(code(&server.call("GET", "/nope", None)), "not_found");

    // Graceful stop: exit status 0, and the collection verifies.
    assert!(server.terminate());
    ok(&["verify", "--index", s(&data.join("idx"))]);
}

#[test]
fn protect_search_needs_the_key_for_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ok(&[
        "index",
        "--index",
        s(&data.join("med")),
        "--dataset",
        &common::fixture("medical.jsonl"),
    ]);
    let server = Served::start(&data, &["--api-key", "k3y", "--protect-search"]);
    let body = r#"{"query": "sepsis"}"#;
    for key in [None, Some("k3Y")] {
        let a = server.call_as("POST", "/collections/med/search", Some(body), key);
        assert_eq!(a.status, 401, "{}", a.text);
        assert_eq!(server.call_as("GET", "/collections", None, key).status, 401);
    }
    let a = server.call("POST", "/collections/med/search", Some(body));
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["mode"], "sparse");
    // Health stays open, for load balancers.
    assert_eq!(server.call_as("GET", "/health", None, None).status, 200);
}

/// A data folder holding the fixture corpus as collection `med` (BM25 only): (data, med).
fn medical_data(tmp: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let data = tmp.join("data");
    let index = data.join("med");
    ok(&[
        "index",
        "--index",
        s(&index),
        "--dataset",
        &common::fixture("medical.jsonl"),
    ]);
    (data, index)
}

/// Another process holding the write lock of the collection in `index` (flock(2), as the
/// engine's writers take it), returned once it holds it. `-o`: the lock is held by flock
/// itself, not by `sleep`, so killing flock releases it.
fn hold_write_lock(index: &std::path::Path) -> std::process::Child {
    let lock = index.join(hybrid_search::LOCK_FILE);
    let holder = std::process::Command::new("flock")
        .arg("-o")
        .arg(&lock)
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::process::Command::new("flock")
        .arg("-n")
        .arg(&lock)
        .arg("true")
        .status()
        .unwrap()
        .success()
    {
        assert!(started.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(20));
    }
    holder
}

/// Releases a lock taken by [`hold_write_lock`].
fn release_write_lock(mut holder: std::process::Child) {
    holder.kill().unwrap();
    holder.wait().unwrap();
}

#[test]
fn another_process_holding_the_write_lock_is_409_busy() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, index) = medical_data(tmp.path());
    let server = Served::start(&data, &[]);
    let holder = hold_write_lock(&index);
    let body = r#"[{"id": "x", "text": "ferritin"}]"#;
    let a = server.call("POST", "/collections/med/documents", Some(body));
    assert_eq!((a.status, code(&a)), (409, "busy"), "{}", a.text);
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("try again")
    );
    // Searches go on meanwhile; once the other writer is gone, the write goes through.
    let found = server.post_ok("/collections/med/search", &json!({"query": "sepsis"}));
    assert!(!found["hits"].as_array().unwrap().is_empty());
    release_write_lock(holder);
    let a = server.call("POST", "/collections/med/documents", Some(body));
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["documents"], 31);
}

#[test]
fn an_empty_api_key_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = hs(&[
        "serve",
        "--data",
        s(tmp.path()),
        "--addr",
        "127.0.0.1:0",
        "--api-key",
        "",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the API key"));
}

#[test]
fn a_collection_whose_model_is_missing_searches_bm25_and_refuses_writes_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_folder(tmp.path());
    std::fs::remove_dir_all(tmp.path().join("tiny")).unwrap();
    let server = Served::start(&data, &[]);
    let a = server.call(
        "POST",
        "/collections/idx/search",
        Some(r#"{"query": "sepsis"}"#),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["mode"], "sparse");
    assert_eq!(a.body["degraded"]["reason"], "model_unavailable");
    let a = server.call(
        "POST",
        "/collections/idx/documents",
        Some(r#"[{"id": "x", "text": "y"}]"#),
    );
    assert_eq!((a.status, code(&a)), (409, "no_model"), "{}", a.text);
    assert_eq!(
        server.call("GET", "/collections/idx", None).body["documents"],
        30
    );
}

#[test]
fn a_full_queue_answers_503_and_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_folder(tmp.path());
    let server = Arc::new(Served::start(&data, &["--queue", "1", "--workers", "1"]));
    // One long write holds the only place in the queue. While a search holds it, the write is
    // refused before its body is read: 503, or the connection closed while the body is still
    // being sent. It is retried until it gets in.
    let writer = {
        let base = server.base.clone();
        std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            let body = docs_json("bulk", 1500, 20);
            loop {
                let sent = agent
                    .post(&format!("{base}/collections/idx/documents"))
                    .content_type("application/json")
                    .send(&body);
                if let Ok(mut r) = sent
                    && r.status() != 503
                {
                    return (r.status().as_u16(), r.body_mut().read_to_string().unwrap());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let mut refused = None;
    while !writer.is_finished() {
        let a = server.call(
            "POST",
            "/collections/idx/search",
            Some(r#"{"query": "sepsis"}"#),
        );
        if a.status == 503 {
            refused = Some(a);
            break;
        }
        assert_eq!(a.status, 200, "{}", a.text);
        std::thread::sleep(Duration::from_millis(30));
    }
    let refused = refused.expect("a search while the write held the queue was refused");
    assert_eq!(code(&refused), "overloaded");
    assert_eq!(refused.retry_after.as_deref(), Some("1"));
    let (status, text) = writer.join().unwrap();
    assert_eq!(status, 200, "{text}");
    let a = server.call(
        "POST",
        "/collections/idx/search",
        Some(r#"{"query": "sepsis"}"#),
    );
    assert_eq!(a.status, 200);
}

#[test]
fn writers_and_readers_at_once_see_whole_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_folder(tmp.path());
    let server = Arc::new(Served::start(&data, &[]));
    const WRITERS: usize = 3;
    const BATCHES: usize = 8;
    const PER_BATCH: usize = 5;
    let committed: Arc<Mutex<Vec<String>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let searches = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (server, committed) = (server.clone(), committed.clone());
            std::thread::spawn(move || {
                for b in 0..BATCHES {
                    let t = tag(w, b);
                    let a = server.call(
                        "POST",
                        "/collections/idx/documents",
                        Some(&docs_json(&t, PER_BATCH, 3)),
                    );
                    assert_eq!(a.status, 200, "{}", a.text);
                    committed.lock().unwrap().push(t);
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..3)
        .map(|r| {
            let (server, done, searches) = (server.clone(), done.clone(), searches.clone());
            std::thread::spawn(move || {
                let mut i = r;
                while !done.load(Ordering::SeqCst) {
                    // Any batch, committed or not: a search sees all of it or none of it.
                    let t = tag(i % WRITERS, (i / WRITERS) % BATCHES);
                    let n = count_tagged(&server, &t);
                    assert!(
                        n == 0 || n == PER_BATCH,
                        "{t}: {n} of a batch of {PER_BATCH}"
                    );
                    let hybrid = server.call(
                        "POST",
                        "/collections/idx/search",
                        Some(&json!({"query": format!("{t} sepsis"), "k": 10}).to_string()),
                    );
                    assert_eq!(hybrid.status, 200, "{}", hybrid.text);
                    searches.fetch_add(2, Ordering::SeqCst);
                    i += 7;
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    for r in readers {
        r.join().unwrap();
    }
    assert!(searches.load(Ordering::SeqCst) > 0);
    // Nothing lost: every batch whole, every document counted.
    for t in committed.lock().unwrap().iter() {
        assert_eq!(count_tagged(&server, t), PER_BATCH, "{t}");
    }
    let total = 30 + WRITERS * BATCHES * PER_BATCH;
    assert_eq!(
        server.call("GET", "/collections/idx", None).body["documents"],
        total
    );
    let server = Arc::into_inner(server).expect("threads are done");
    assert!(server.terminate());
    let report = ok(&["verify", "--index", s(&data.join("idx")), "--json"]);
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["documents"], total, "{report}");
}

#[test]
fn sigterm_lets_the_write_in_flight_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_folder(tmp.path());
    let server = Arc::new(Served::start(&data, &[]));
    let writer = {
        let server = server.clone();
        std::thread::spawn(move || {
            let body = docs_json("late", 1000, 20);
            let a = server.call("POST", "/collections/idx/documents", Some(&body));
            (a, Instant::now())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let term = std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let sent = Instant::now();
    let (write, answered) = writer.join().unwrap();
    assert!(
        answered > sent,
        "the write was still in flight at SIGTERM (make it bigger)"
    );
    assert_eq!(
        write.status, 200,
        "the write in flight finished: {}",
        write.text
    );
    let mut server = Arc::into_inner(server).unwrap();
    assert!(server.child.wait().unwrap().success());
    let report = ok(&["verify", "--index", s(&data.join("idx")), "--json"]);
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["documents"], 30 + 1000, "{report}");
}

#[test]
fn kill_9_during_writes_keeps_every_committed_write() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_folder(tmp.path());
    let server = Served::start(&data, &[]);
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let base = server.base.clone();
    let writer = {
        let acknowledged = acknowledged.clone();
        std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            for b in 0..1000 {
                let t = tag(0, b);
                let sent = agent
                    .post(&format!("{base}/collections/idx/documents"))
                    .content_type("application/json")
                    .send(docs_json(&t, 20, 5));
                match sent {
                    Ok(r) if r.status() == 200 => acknowledged.lock().unwrap().push(t),
                    // The server is gone.
                    _ => return,
                }
            }
        })
    };
    // Kill it part way through a stream of writes.
    let started = Instant::now();
    while acknowledged.lock().unwrap().len() < 3 && started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(37));
    let mut server = server;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    writer.join().unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 3);
    drop(server);

    // The collection verifies, and after a restart every acknowledged write is there, whole.
    let verify = hs(&["verify", "--index", s(&data.join("idx"))]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let server = Served::start(&data, &[]);
    for t in &acknowledged {
        assert_eq!(count_tagged(&server, t), 20, "{t}");
    }
    // The write in flight when it died is all there or not at all.
    let next = tag(0, acknowledged.len());
    let n = count_tagged(&server, &next);
    assert!(n == 0 || n == 20, "{next}: {n}");
    let documents = server.call("GET", "/collections/idx", None).body["documents"]
        .as_u64()
        .unwrap();
    assert_eq!(documents as usize, 30 + 20 * acknowledged.len() + n);
}

/// Opens a connection to `server` and sends `text` (raw HTTP/1.1), leaving it open.
fn connect_and_send(server: &Served, text: &str) -> std::net::TcpStream {
    use std::io::Write;
    let addr = server.base.strip_prefix("http://").unwrap();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.write_all(text.as_bytes()).unwrap();
    stream
}

/// A whole `method path` request with `body`, as raw HTTP/1.1.
fn request_text(server: &Served, method: &str, path: &str, body: &str) -> String {
    let addr = server.base.strip_prefix("http://").unwrap();
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Reads what the server sends on `stream` until it closes it (within 20 s).
fn until_closed(mut stream: std::net::TcpStream) -> String {
    use std::io::Read;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .expect("the server closes a stalled connection");
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn slow_clients_hold_no_place_in_the_queue_and_are_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_folder(tmp.path());
    let server = Served::start(
        &data,
        &[
            "--queue",
            "4",
            "--header-timeout",
            "1",
            "--body-timeout",
            "1",
        ],
    );
    let addr = server.base.strip_prefix("http://").unwrap().to_string();
    // Sixteen clients send a search's whole head and one byte of its 100-byte body, sixteen
    // more half a head; then all of them stall (a slowloris attack on a queue of 4).
    let bodies: Vec<_> = (0..16)
        .map(|_| {
            connect_and_send(
                &server,
                &format!(
                    "POST /collections/idx/search HTTP/1.1\r\nHost: {addr}\r\n\
                     Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
                ),
            )
        })
        .collect();
    let heads: Vec<_> = (0..16)
        .map(|_| connect_and_send(&server, "POST /collections/idx/search HTTP/1.1\r\nHost: "))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let health = server.call("GET", "/health", None);
    assert_eq!(health.status, 200, "{}", health.text);
    assert_eq!(health.body["status"], "ok");
    assert_eq!(health.body["queued"], 0, "{}", health.text);
    assert!(
        health.body["connections"].as_u64().unwrap() >= 32,
        "{}",
        health.text
    );
    // Every search and write goes through meanwhile.
    for _ in 0..8 {
        let a = server.call(
            "POST",
            "/collections/idx/search",
            Some(r#"{"query": "sepsis"}"#),
        );
        assert_eq!(a.status, 200, "{}", a.text);
    }
    let a = server.call(
        "POST",
        "/collections/idx/documents",
        Some(r#"[{"id": "during", "text": "written during the attack"}]"#),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    // Each stalled body is answered 408 and its connection closed; each stalled head closed.
    for stream in bodies {
        let answer = until_closed(stream);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains(r#""code":"timeout""#), "{answer}");
    }
    for stream in heads {
        let answer = until_closed(stream);
        assert!(!answer.contains("200 OK"), "{answer}");
    }
    let health = server.call("GET", "/health", None);
    assert!(
        health.body["connections"].as_u64().unwrap() <= 2,
        "{}",
        health.text
    );
}

#[test]
fn writes_and_deletes_whose_clients_leave_finish_all_or_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, index) = medical_data(tmp.path());
    let server = Served::start(&data, &[]);

    // A write waiting for the lock whose client leaves after half a second still commits.
    let holder = hold_write_lock(&index);
    let write = connect_and_send(
        &server,
        &request_text(
            &server,
            "POST",
            "/collections/med/documents",
            r#"[{"id": "left", "text": "ferritin"}]"#,
        ),
    );
    std::thread::sleep(Duration::from_millis(500));
    drop(write);
    std::thread::sleep(Duration::from_millis(500));
    release_write_lock(holder);
    let started = Instant::now();
    while server
        .call("GET", "/collections/med/documents/left", None)
        .status
        != 200
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the write was lost"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // A delete that cannot get the lock in time leaves the collection served, whole.
    let holder = hold_write_lock(&index);
    let a = server.call("DELETE", "/collections/med", None);
    assert_eq!((a.status, code(&a)), (409, "busy"), "{}", a.text);
    release_write_lock(holder);
    assert_eq!(
        server.call("GET", "/collections/med", None).body["documents"],
        31
    );
    assert!(index.is_dir());

    // A write and then a delete queue behind the lock; both clients leave after a second. The
    // write commits, then the delete removes the collection, and it stays removed.
    let holder = hold_write_lock(&index);
    let write = connect_and_send(
        &server,
        &request_text(
            &server,
            "POST",
            "/collections/med/documents",
            r#"[{"id": "late", "text": "ferritin"}]"#,
        ),
    );
    std::thread::sleep(Duration::from_millis(200));
    let delete = connect_and_send(
        &server,
        &request_text(&server, "DELETE", "/collections/med", ""),
    );
    std::thread::sleep(Duration::from_secs(1));
    drop((write, delete));
    std::thread::sleep(Duration::from_millis(500));
    release_write_lock(holder);
    let started = Instant::now();
    while server.call("GET", "/collections/med", None).status != 404 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the delete was lost"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!index.exists(), "the folder went with the collection");
    let a = server.call("POST", "/collections", Some(r#"{"name": "med"}"#));
    assert_eq!(a.status, 201, "{}", a.text);
    let a = server.call("DELETE", "/collections/med", None);
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(server.terminate());
    let server = Served::start(&data, &[]);
    assert_eq!(server.call("GET", "/collections/med", None).status, 404);
    assert_eq!(
        std::fs::read_dir(&data).unwrap().count(),
        0,
        "nothing is left in the data folder"
    );
}
