//! Documents with fields as a user meets them: a JSONL corpus with fields (BEIR's `metadata`
//! object included) indexed, searched with `--filter`, `--fields` and `--offset`, documents
//! deleted by filter; the same through the HTTP API (search, batch search, delete by filter,
//! the collection's fields); and the errors of bad input.

mod common;

use common::http::{Served, code};
use common::{err_with, hit_ids, ok, s};
use serde_json::{Value, json};

/// A corpus of `n` documents with fields, one per line.
fn corpus(dir: &std::path::Path, n: usize) -> std::path::PathBuf {
    let path = dir.join("docs.jsonl");
    let lines: String = (0..n)
        .map(|i| {
            let source = ["pubmed", "trials"][i % 2];
            let doc = json!({
                "_id": format!("d{i}"),
                "title": format!("Note {i}"),
                "text": format!("sepsis cytokine marker number {i}"),
                "source": source,
                "year": 2000 + i,
                "tags": if i % 3 == 0 { json!(["icu", "adult"]) } else { json!(["adult"]) },
                "metadata": {"url": format!("https://example.org/{i}"), "published": format!("2024-01-{:02}", i % 28 + 1)},
            });
            format!("{doc}\n")
        })
        .collect();
    std::fs::write(&path, lines).unwrap();
    path
}

fn search_json(index: &std::path::Path, extra: &[&str]) -> Value {
    let mut args = vec!["search", "--index", s(index), "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&ok(&args)).unwrap()
}

#[test]
fn the_cli_filters_pages_and_returns_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let index = tmp.path().join("idx");
    let docs = corpus(tmp.path(), 30);
    ok(&[
        "index",
        "--index",
        s(&index),
        "--dataset",
        s(&docs),
        "--analyzer",
        "en",
    ]);

    let filter =
        r#"{"and": [{"field": "source", "eq": "trials"}, {"field": "year", "gte": 2010}]}"#;
    let v = search_json(&index, &["sepsis", "-k", "30", "--filter", filter]);
    let ids = hit_ids(&v);
    // d11, d13, ..., d29: the odd ones from 2010 on.
    assert_eq!(ids.len(), 10, "{ids:?}");
    for hit in v["hits"].as_array().unwrap() {
        assert!(hit.get("fields").is_none(), "fields only when asked: {hit}");
    }
    let dated = search_json(
        &index,
        &[
            "sepsis",
            "--filter",
            r#"{"field": "metadata.published", "lt": "2024-01-03"}"#,
        ],
    );
    let mut ids = hit_ids(&dated);
    ids.sort();
    assert_eq!(ids, ["d0", "d1", "d28", "d29"]);

    let v = search_json(
        &index,
        &[
            "sepsis",
            "-k",
            "2",
            "--filter",
            r#"{"field": "tags", "in": ["icu"]}"#,
            "--fields",
            "text,metadata.url",
        ],
    );
    let hit = &v["hits"][0];
    assert!(
        hit["text"]
            .as_str()
            .unwrap()
            .starts_with("sepsis cytokine marker")
    );
    assert_eq!(hit["fields"].as_object().unwrap().len(), 1, "{hit}");
    assert!(
        hit["fields"]["metadata.url"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );

    // Page 2 of 5 is hits 6 to 10 of 10.
    let ten = hit_ids(&search_json(&index, &["sepsis", "-k", "10"]));
    let page = hit_ids(&search_json(
        &index,
        &["sepsis", "-k", "5", "--offset", "5"],
    ));
    assert_eq!(page, ten[5..].to_vec());

    // Bad input: named, exit 2, nothing lost.
    let unknown = err_with(
        2,
        &[
            "search",
            "--index",
            s(&index),
            "sepsis",
            "--filter",
            r#"{"field": "colour", "eq": "red"}"#,
        ],
    );
    assert!(
        unknown.contains("--filter: unknown field \"colour\""),
        "{unknown}"
    );
    assert!(unknown.contains("year (integer)"), "{unknown}");
    let malformed = err_with(
        2,
        &[
            "search",
            "--index",
            s(&index),
            "sepsis",
            "--filter",
            r#"{"field": "year", "gte": }"#,
        ],
    );
    assert!(malformed.contains("--filter: not JSON"), "{malformed}");
    let typed = err_with(
        2,
        &[
            "search",
            "--index",
            s(&index),
            "sepsis",
            "--filter",
            r#"{"field": "year", "eq": "2001"}"#,
        ],
    );
    assert!(
        typed.contains("\"year\"") && typed.contains("integers"),
        "{typed}"
    );

    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"_id\": \"n1\", \"text\": \"fine\", \"year\": 2031}\n{\"_id\": \"n2\", \"text\": \"bad\", \"year\": \"soon\"}\n",
    )
    .unwrap();
    // A value that conflicts with the field's type (as a vector of another length does).
    let e = err_with(4, &["add", "--index", s(&index), s(&bad)]);
    assert!(
        e.contains("line 2")
            && e.contains("\"n2\"")
            && e.contains("\"year\"")
            && e.contains("nothing was committed"),
        "{e}"
    );
    assert_eq!(hit_ids(&search_json(&index, &["fine"])).len(), 0);

    // Delete by filter: one commit, counted; an empty filter is refused.
    let e = err_with(2, &["delete", "--index", s(&index), "--filter", "{}"]);
    assert!(e.contains("{\"all\": true}"), "{e}");
    let out = common::hs(&[
        "delete",
        "--index",
        s(&index),
        "--filter",
        r#"{"field": "source", "eq": "pubmed"}"#,
    ]);
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("deleted 15 documents"), "{said}");
    let left = hit_ids(&search_json(&index, &["sepsis", "-k", "50"]));
    assert_eq!(left.len(), 15);
}

#[test]
fn the_http_api_filters_batches_and_deletes_by_filter() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let docs = corpus(tmp.path(), 20);
    ok(&[
        "index",
        "--index",
        s(&data.join("c")),
        "--dataset",
        s(&docs),
        "--analyzer",
        "en",
    ]);
    let server = Served::start(&data, &["--api-key", "k3y"]);

    let info = server.call("GET", "/collections/c", None);
    assert_eq!(info.status, 200, "{}", info.text);
    let fields = info.body["fields"].as_array().unwrap();
    assert!(
        fields.contains(&json!({"name": "year", "type": "integer"})),
        "{fields:?}"
    );
    assert!(
        fields.contains(&json!({"name": "metadata.published", "type": "date"})),
        "{fields:?}"
    );

    let search =
        |body: Value| server.call("POST", "/collections/c/search", Some(&body.to_string()));
    let a = search(
        json!({"query": "sepsis", "k": 5, "filter": {"field": "year", "lt": 2003}, "fields": ["source"]}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(hit_ids(&a.body).len(), 3);
    assert!(
        a.body["hits"][0]["fields"]["source"].is_string(),
        "{}",
        a.text
    );
    let page = search(json!({"query": "sepsis", "k": 5, "offset": 5}));
    let ten = search(json!({"query": "sepsis", "k": 10}));
    assert_eq!(hit_ids(&page.body), hit_ids(&ten.body)[5..].to_vec());
    let unknown = search(json!({"query": "sepsis", "filter": {"field": "colour", "eq": 1}}));
    assert_eq!(
        (unknown.status, code(&unknown)),
        (400, "bad_request"),
        "{}",
        unknown.text
    );
    assert!(
        unknown.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("filter: unknown field"),
        "{}",
        unknown.text
    );

    // A batch answers what each search answers alone; one bad search refuses the batch.
    let batch = json!({"searches": [
        {"query": "sepsis", "k": 3},
        {"query": "marker", "k": 2, "filter": {"field": "source", "eq": "trials"}},
    ]});
    let b = server.call(
        "POST",
        "/collections/c/search/batch",
        Some(&batch.to_string()),
    );
    assert_eq!(b.status, 200, "{}", b.text);
    let alone =
        search(json!({"query": "marker", "k": 2, "filter": {"field": "source", "eq": "trials"}}));
    assert_eq!(b.body["results"][1]["hits"], alone.body["hits"]);
    let bad = json!({"searches": [{"query": "sepsis"}, {"query": "x", "k": 0}]});
    let b = server.call(
        "POST",
        "/collections/c/search/batch",
        Some(&bad.to_string()),
    );
    assert_eq!(b.status, 400, "{}", b.text);
    assert!(
        b.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("searches[1]: k"),
        "{}",
        b.text
    );

    // Delete by filter (with the key), counted; an empty filter and an empty body are refused.
    let delete = |body: Value| {
        server.call(
            "POST",
            "/collections/c/documents/delete",
            Some(&body.to_string()),
        )
    };
    for refused in [json!({"filter": {}}), json!({}), json!({"all": false})] {
        let r = delete(refused.clone());
        assert_eq!(r.status, 400, "{refused}: {}", r.text);
    }
    let r = delete(json!({"filter": {"field": "tags", "in": ["icu"]}}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (r.body["deleted"].as_u64(), r.body["documents"].as_u64()),
        (Some(7), Some(13))
    );
    let r = delete(json!({"ids": ["d1", "d2", "nope"]}));
    assert_eq!(r.body["deleted"].as_u64(), Some(2), "{}", r.text);
    let r = delete(json!({"all": true}));
    assert_eq!(r.body["documents"].as_u64(), Some(0), "{}", r.text);
}
