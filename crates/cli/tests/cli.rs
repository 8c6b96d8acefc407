//! End-to-end tests of the `hybrid-search` binary on the fixture corpus. The `auto` and `ko`
//! analyzers need the ko-dic dictionary (`scripts/fetch-ko-dic.sh`, run by `scripts/test.sh`).

mod common;

use std::process::Command;

use common::{
    beir_fixture, err, err_with, fixture, hs, index_with_model, indexed_fixture, ok, s, top_ids,
};

#[test]
fn index_and_search_korean_english_and_mixed() {
    let tmp = tempfile::tempdir().unwrap();
    let index = indexed_fixture(tmp.path());

    let hits = top_ids(&index, "IL-6", "4");
    let mut sorted = hits.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["en-01", "en-02", "ko-04", "ko-05"],
        "every IL-6 passage, nothing else"
    );
    assert_eq!(top_ids(&index, "당뇨병 환자의 HbA1c 수치", "1"), ["ko-01"]);
    assert_eq!(top_ids(&index, "코카콜라는", "1"), ["ko-06"]);
    assert_eq!(top_ids(&index, "5-HT2A antagonist", "1"), ["en-07"]);
    assert_eq!(top_ids(&index, "반코마이신으로 치료", "1"), ["ko-08"]);

    // Text output: rank, id, score, title and a snippet with the match marked.
    let text = ok(&["search", "--index", s(&index), "-k", "1", "tocilizumab"]);
    assert!(
        text.contains("en-02") && text.contains("**Tocilizumab**"),
        "{text}"
    );
    // A query that analyses to nothing gives no results, not an error.
    assert!(ok(&["search", "--index", s(&index), "the of and"]).contains("no results"));
}

#[test]
fn analyze_prints_terms_offsets_and_tags() {
    let out = ok(&[
        "analyze",
        "--analyzer",
        "ko",
        "코카콜라와 펩시는 탄산음료입니다.",
    ]);
    let terms: Vec<&str> = out.lines().map(|l| l.split('\t').next().unwrap()).collect();
    for kept in ["코카콜라", "펩시", "탄산음료"] {
        assert!(terms.contains(&kept), "{kept} missing:\n{out}");
    }
    for dropped in ["와", "는", "ㅂ니다"] {
        assert!(!terms.contains(&dropped), "{dropped} kept:\n{out}");
    }
    assert!(
        out.lines().next().unwrap() == "코카콜라\t0\t12\tNNG",
        "{out}"
    );
    // The lone digit is dropped; the whole term holds it.
    let en = ok(&["analyze", "--analyzer", "en", "IL-6"]);
    assert_eq!(en, "il-6\t0\t4\nil\t0\t2\n");
}

#[test]
fn eval_reports_metrics_as_json_and_writes_a_run_file() {
    let tmp = tempfile::tempdir().unwrap();
    let beir = beir_fixture(
        tmp.path(),
        &[("q1", "tocilizumab"), ("q2", "코카콜라")],
        &[("test", &[("q1", "en-02"), ("q2", "ko-06")])],
    );
    let index = tmp.path().join("idx");
    ok(&["index", "--index", s(&index), "--dataset", s(&beir)]);
    let run = tmp.path().join("run.trec");
    let out = ok(&[
        "eval",
        "--index",
        s(&index),
        "--dataset",
        s(&beir),
        "--json",
        "--run",
        s(&run),
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // Both queries have their one relevant passage at rank 1.
    assert_eq!(v["ndcg@10"], 1.0);
    assert_eq!(v["recall@100"], 1.0);
    assert_eq!(v["mrr@10"], 1.0);
    assert_eq!(v["queries"], 2);
    let run = std::fs::read_to_string(run).unwrap();
    assert!(
        run.lines().any(|l| l.starts_with("q1 Q0 en-02 1 ")),
        "{run}"
    );
    assert!(
        err(&[
            "eval",
            "--index",
            s(&index),
            "--dataset",
            s(&beir),
            "--split",
            "dev"
        ])
        .contains("test")
    );
}

#[test]
fn bad_input_names_the_file_and_line_and_keeps_committed_data() {
    let tmp = tempfile::tempdir().unwrap();
    let index = indexed_fixture(tmp.path());
    let good =
        "{\"_id\": \"new-1\", \"title\": \"\", \"text\": \"brand new passage about zebrafish\"}\n";
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "broken.jsonl",
            format!("{good}{{\"_id\": \"x\", \"text\": \n").into_bytes(),
            "line 2",
        ),
        (
            "noid.jsonl",
            format!("{good}{{\"title\": \"t\", \"text\": \"x\"}}\n").into_bytes(),
            "line 2",
        ),
        (
            "notext.jsonl",
            format!("{good}{{\"_id\": \"y\", \"title\": \"t\"}}\n").into_bytes(),
            "line 2",
        ),
        (
            "latin1.jsonl",
            [
                good.as_bytes(),
                b"{\"_id\": \"z\", \"text\": \"caf\xe9\"}\n",
            ]
            .concat(),
            "line 2",
        ),
        ("dup.jsonl", format!("{good}{good}").into_bytes(), "line"),
    ];
    for (name, bytes, line) in cases {
        let path = tmp.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let msg = err(&["index", "--index", s(&index), "--dataset", s(&path)]);
        assert!(msg.contains(name) && msg.contains(line), "{name}: {msg}");
        // Nothing from the bad file was added, nothing committed was lost.
        assert!(
            top_ids(&index, "zebrafish", "10").is_empty(),
            "{name} was half-indexed"
        );
        assert_eq!(top_ids(&index, "tocilizumab", "1"), ["en-02"]);
    }
    let unknown = tmp.path().join("corpus.csv");
    std::fs::write(&unknown, "id,text\n").unwrap();
    let msg = err(&[
        "index",
        "--index",
        s(&tmp.path().join("other")),
        "--dataset",
        s(&unknown),
    ]);
    assert!(msg.contains("corpus.csv"), "{msg}");
    assert!(
        !tmp.path().join("other").exists(),
        "a failed first index leaves no folder"
    );
    // Exit status by the kind of failure: not found 3, bad input 2.
    assert!(
        err_with(3, &["search", "--index", s(tmp.path()), "x"])
            .contains("not a hybrid-search collection")
    );
    assert!(err_with(2, &["search", "--index", s(&index), "-k", "0", "x"]).contains("-k"));
}

#[test]
fn dense_index_search_eval_and_model_mismatch() {
    use hybrid_search::dense::TinyModel;
    let dir = tempfile::tempdir().unwrap();
    let (model, other) = (dir.path().join("tiny"), dir.path().join("other"));
    TinyModel::default().write(&model).unwrap();
    TinyModel {
        seed: 7,
        ..TinyModel::default()
    }
    .write(&other)
    .unwrap();
    let index = dir.path().join("idx");
    let dataset = fixture("medical.jsonl");
    index_with_model(&index, &model, &[]);
    // The stored text of a document, searched densely, finds that document first.
    let first = std::fs::read_to_string(&dataset).unwrap();
    let doc: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    let text = format!(
        "{} {}",
        doc["title"].as_str().unwrap(),
        doc["text"].as_str().unwrap()
    );
    let id = doc["_id"].as_str().or(doc["id"].as_str()).unwrap();
    let out = ok(&[
        "search",
        "--index",
        s(&index),
        "--mode",
        "dense",
        "--model",
        s(&model),
        "--json",
        &text,
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["hits"][0]["id"], id, "{out}");
    // Without --model, the model is found where the collection was built with it (searched
    // from another folder too): the default hybrid search uses both legs.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hybrid-search"))
        .current_dir(elsewhere.path())
        .args(["search", "--index", s(&index), "--json", "-k", "3", "HbA1c"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["mode"], "hybrid", "{v}");
    assert!(v.get("degraded").is_none(), "{v}");
    // Moved away (and not under models/ here), the default hybrid search falls back to the
    // sparse leg and says why, naming where it looked.
    let moved = dir.path().join("moved");
    std::fs::rename(&model, &moved).unwrap();
    let model = moved;
    let out = hs(&["search", "--index", s(&index), "--json", "-k", "3", "HbA1c"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The engine's reason is in the output; the CLI's note names its flag.
    assert!(
        stderr.contains("sparse leg only") && stderr.contains("--model DIR"),
        "{stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["mode"], "sparse");
    assert_eq!(v["degraded"]["reason"], "model_unavailable", "{v}");
    let message = v["degraded"]["message"].as_str().unwrap();
    assert!(message.contains("looked in"), "{v}");
    // The data folder ($HYBRID_SEARCH_HOME/models/<name>) serves an installed binary; -vv logs
    // the engine's steps with their timings on stderr.
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join("models")).unwrap();
    std::fs::rename(&model, home.join("models/tiny")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hybrid-search"))
        .env("HYBRID_SEARCH_HOME", &home)
        .args([
            "search",
            "-vv",
            "--index",
            s(&index),
            "--json",
            "-k",
            "3",
            "HbA1c",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["mode"], "hybrid", "{v}");
    assert!(
        stderr.contains("load_model")
            && stderr.contains("search{k=3}")
            && stderr.contains("time.busy"),
        "{stderr}"
    );
    std::fs::rename(home.join("models/tiny"), &model).unwrap();
    let sparse = top_ids(&index, "HbA1c", "3");
    assert!(!sparse.is_empty());
    // Hybrid: both legs fused; the best BM25 match of a domain term stays in the top 5.
    for fusion in [
        &["--fusion", "rrf"][..],
        &["--fusion", "convex", "--alpha", "0.3"],
    ] {
        let mut args = vec![
            "search",
            "--index",
            s(&index),
            "--mode",
            "hybrid",
            "--model",
            s(&model),
            "-k",
            "5",
        ];
        args.extend_from_slice(fusion);
        args.extend_from_slice(&["--json", "HbA1c"]);
        let v: serde_json::Value = serde_json::from_str(&ok(&args)).unwrap();
        assert_eq!(v["hits"].as_array().unwrap().len(), 5, "{fusion:?}");
        let ids: Vec<&str> = v["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_str().unwrap())
            .collect();
        assert!(ids.contains(&sparse[0].as_str()), "{fusion:?}: {ids:?}");
    }
    let e = err(&[
        "search",
        "--index",
        s(&index),
        "--mode",
        "hybrid",
        "--model",
        s(&model),
        "--fusion",
        "convex",
        "--alpha",
        "1.5",
        "x",
    ]);
    assert!(e.contains("alpha"), "{e}");
    // Another model is refused with what differs and what to do (a conflict: status 4).
    let e = err_with(
        4,
        &[
            "search",
            "--index",
            s(&index),
            "--mode",
            "dense",
            "--model",
            s(&other),
            "x",
        ],
    );
    assert!(e.contains("fingerprint") && e.contains("--model"), "{e}");
    // A collection without a dense leg says so.
    let sparse_only = indexed_fixture(&dir.path().join("sparse"));
    let e = err(&["search", "--index", s(&sparse_only), "--mode", "dense", "x"]);
    assert!(e.contains("no dense leg"), "{e}");
}

#[test]
fn another_korean_dictionary_at_search_time_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let index = indexed_fixture(tmp.path());
    let manifest = std::fs::read_to_string(index.join("manifest.json")).unwrap();
    assert!(manifest.contains("\"dictionary\": \"sha256:"), "{manifest}");
    assert!(manifest.contains("\"analysis\": 2"), "{manifest}");

    // The same dictionary with one file changed: it loads, and segments differently in
    // general, so the collection refuses it.
    let dict = hybrid_search::sparse::locate_ko_dic().unwrap();
    let other = tmp.path().join("other-ko-dic");
    std::fs::create_dir(&other).unwrap();
    for entry in std::fs::read_dir(&dict).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), other.join(entry.file_name())).unwrap();
    }
    let metadata = other.join("metadata.json");
    let text = std::fs::read_to_string(&metadata).unwrap();
    std::fs::write(&metadata, format!("{text}\n")).unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_hybrid-search"))
        .args(["search", "--index", s(&index), "당뇨병"])
        .env("HYBRID_SEARCH_KO_DIC", &other)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "a conflict with the collection as built"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("analysed with ko-dic sha256:")
            && stderr.contains(other.to_str().unwrap())
            && stderr.contains("HYBRID_SEARCH_KO_DIC"),
        "{stderr}"
    );
    // With the dictionary it was built with, it searches.
    assert_eq!(top_ids(&index, "당뇨병 환자의 HbA1c 수치", "1"), ["ko-01"]);
}

/// Issue 34: a document with multi-byte whitespace (U+00A0 from HTML, U+3000 from CJK text)
/// before a matched term made the snippet slice inside a character: `search` exited 101 and
/// the server answered 500. Both reproductions of the issue, through the binary and over HTTP.
#[test]
fn multibyte_whitespace_before_a_match_snippets_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            "en",
            format!(
                "{}word\u{a0}sepsis and more {}",
                "filler ".repeat(40),
                "tail ".repeat(40)
            ),
            "sepsis",
        ),
        (
            "auto",
            format!(
                "{}패혈증\u{3000}환자의 치료 {}",
                "필러 ".repeat(40),
                "꼬리 ".repeat(40)
            ),
            "환자",
        ),
    ];
    for (analyzer, text, query) in &cases {
        let data = tmp.path().join(format!("data-{analyzer}"));
        let index = data.join("c");
        let corpus = tmp.path().join(format!("{analyzer}.jsonl"));
        let line = serde_json::json!({"id": "d1", "title": "", "text": text});
        std::fs::write(&corpus, format!("{line}\n")).unwrap();
        ok(&[
            "index",
            "--index",
            s(&index),
            "--dataset",
            s(&corpus),
            "--analyzer",
            analyzer,
        ]);
        let out = ok(&[
            "search",
            "--index",
            s(&index),
            "--mode",
            "sparse",
            "--json",
            query,
        ]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let snippet = v["hits"][0]["snippet"].as_str().unwrap();
        assert!(
            snippet.contains(&format!("**{query}")) && snippet.starts_with('…'),
            "{analyzer}: {snippet}"
        );

        let server = common::http::Served::start(&data, &[]);
        let a = server.call(
            "POST",
            "/collections/c/search",
            Some(&serde_json::json!({"query": query, "mode": "sparse"}).to_string()),
        );
        assert_eq!(a.status, 200, "{analyzer}: {}", a.text);
        assert_eq!(a.body["hits"][0]["snippet"].as_str(), Some(snippet));
    }
}

/// A new user without the Korean dictionary: an English corpus indexes and searches with the
/// default `auto` analyzer; a Korean document is refused, naming the document and saying how
/// to install ko-dic; a collection that recorded ko-dic refuses to open. The binary is copied
/// out of the checkout (it looks for `models/` above itself) and run with an empty data folder.
#[test]
fn english_needs_no_korean_dictionary() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("hybrid-search");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_hybrid-search"), &bin).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_hybrid-search"), &bin).unwrap();
    }
    let home = tmp.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let run = |args: &[&str]| {
        Command::new(&bin)
            .args(args)
            .current_dir(tmp.path())
            .env_remove("HYBRID_SEARCH_KO_DIC")
            .env_remove("XDG_DATA_HOME")
            .env("HYBRID_SEARCH_HOME", &home)
            .env("HOME", &home)
            .output()
            .unwrap()
    };
    let english = tmp.path().join("en.jsonl");
    let fixture_text = std::fs::read_to_string(fixture("medical.jsonl")).unwrap();
    let lines: Vec<&str> = fixture_text
        .lines()
        .filter(|l| !l.chars().any(hybrid_search::sparse::is_hangul))
        .collect();
    assert!(lines.len() >= 5, "the fixture has English documents");
    std::fs::write(&english, lines.join("\n")).unwrap();
    let index = tmp.path().join("c");
    let out = run(&["index", "--index", s(&index), "--dataset", s(&english)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["search", "--index", s(&index), "-k", "1", "tocilizumab"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("en-02"));

    // A Korean document: refused, nothing committed.
    let korean = tmp.path().join("ko.jsonl");
    std::fs::write(
        &korean,
        "{\"id\": \"k1\", \"title\": \"\", \"text\": \"당뇨병 환자의 HbA1c\"}\n",
    )
    .unwrap();
    let out = run(&["add", "--index", s(&index), s(&korean)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(4),
        "a conflict with this installation: {stderr}"
    );
    assert!(
        stderr.contains("\"k1\"")
            && stderr.contains("holds Korean")
            && stderr.contains("fetch-ko-dic.sh"),
        "{stderr}"
    );
    let out = run(&["search", "--index", s(&index), "-k", "1", "tocilizumab"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("en-02"));

    // The first write with ko-dic installed (the checkout's binary) records it: from then on
    // the collection may hold Korean, and does not open without it.
    let manifest = || std::fs::read_to_string(index.join("manifest.json")).unwrap();
    assert!(!manifest().contains("\"dictionary\": \"sha256:"));
    ok(&["add", "--index", s(&index), s(&korean)]);
    assert!(
        manifest().contains("\"dictionary\": \"sha256:"),
        "{}",
        manifest()
    );
    let out = run(&["search", "--index", s(&index), "IL-6"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("analysed with ko-dic"));

    // A collection built with ko-dic (by the checkout's binary) does not open without it.
    let with = indexed_fixture(tmp.path());
    let out = run(&["search", "--index", s(&with), "IL-6"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("analysed with ko-dic"),
        "{stderr}"
    );
}

/// Issue 31, faults 7 and 11: a fusion depth past anything a collection holds (the CLI takes
/// any number) is cut to the collection's size before anything is allocated (it panicked with
/// "capacity overflow" or aborted allocating 77 GB), and a query of nothing but invisible
/// characters is refused as an empty one is, instead of ranking arbitrary documents.
#[test]
fn huge_depths_and_invisible_queries_are_handled() {
    let tmp = tempfile::tempdir().unwrap();
    // Both legs (a tiny model), so the search is hybrid and the fusion depth is used.
    let (index, _) = common::tiny_model_collection(tmp.path());
    let normal = ok(&["search", "--index", s(&index), "--json", "IL-6 sepsis"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&normal).unwrap()["mode"],
        "hybrid"
    );
    for depth in ["18446744073709551615", "4294967296"] {
        let deep = ok(&[
            "search",
            "--index",
            s(&index),
            "--json",
            "--depth",
            depth,
            "IL-6 sepsis",
        ]);
        let ids = |out: &str| common::hit_ids(&serde_json::from_str(out).unwrap());
        assert_eq!(ids(&deep), ids(&normal), "depth {depth}");
    }
    for query in ["\u{200D}", "", "  \u{FEFF} "] {
        let out = Command::new(env!("CARGO_BIN_EXE_hybrid-search"))
            .args(["search", "--index", s(&index), query])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{query:?}: {stderr}");
        assert!(
            stderr.contains("the query") && stderr.contains("is empty"),
            "{stderr}"
        );
    }
}

#[test]
fn input_files_compressed_empty_or_with_bad_ids_get_one_clear_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let lines = "{\"id\": \"d1\", \"text\": \"interleukin 6 in sepsis\"}\n\
                 {\"id\": \"d2\", \"text\": \"glycated haemoglobin\"}\n";
    // A gzip file is read as the text it holds, by its first bytes: named .jsonl.gz, or not.
    let plain = tmp.path().join("docs.jsonl");
    std::fs::write(&plain, lines).unwrap();
    let gzip = std::process::Command::new("gzip")
        .arg("-k")
        .arg(&plain)
        .status()
        .unwrap();
    assert!(gzip.success());
    let gz = tmp.path().join("docs.jsonl.gz");
    let index = tmp.path().join("gz");
    ok(&["index", "--index", s(&index), "--dataset", s(&gz)]);
    assert_eq!(top_ids(&index, "sepsis", "1"), ["d1"]);
    let disguised = tmp.path().join("disguised.jsonl");
    std::fs::copy(&gz, &disguised).unwrap();
    let index = tmp.path().join("disguised");
    ok(&["index", "--index", s(&index), "--dataset", s(&disguised)]);
    assert_eq!(top_ids(&index, "haemoglobin", "1"), ["d2"]);
    // Another compression is named, not reported as text that is not UTF-8.
    let zstd = tmp.path().join("docs.zst.jsonl");
    std::fs::write(&zstd, [0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0]).unwrap();
    let e = err_with(
        2,
        &[
            "index",
            "--index",
            s(&tmp.path().join("z")),
            "--dataset",
            s(&zstd),
        ],
    );
    assert!(
        e.contains("compressed (zstd)") && !e.contains("UTF-8"),
        "{e}"
    );
    assert!(!tmp.path().join("z").exists());

    // An error's cause is printed once.
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let e = err(&[
        "index",
        "--index",
        s(&file.join("sub")),
        "--dataset",
        s(&plain),
    ]);
    assert_eq!(e.matches("os error 20").count(), 1, "{e}");

    // A file with no documents: `index` refuses it as `add` does, and makes no collection.
    let empty = tmp.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let index = tmp.path().join("empty");
    let e = err_with(2, &["index", "--index", s(&index), "--dataset", s(&empty)]);
    assert!(e.contains("no documents to index"), "{e}");
    assert!(!index.exists());
    let existing = tmp.path().join("gz");
    let e = err(&["add", "--index", s(&existing), s(&empty)]);
    assert!(e.contains("no documents"), "{e}");

    // Ids: the rule names the file, the line and what is wrong; nothing is committed.
    for (id, why) in [
        ("\"\"", "may not be empty"),
        ("\"   \"", "white space"),
        ("\"a\\nb\"", "U+000A"),
        (
            &format!("\"{}\"", "x".repeat(70_000)),
            "at most 512 characters",
        ),
    ] {
        let bad = tmp.path().join("bad.jsonl");
        std::fs::write(
            &bad,
            format!("{{\"id\": \"ok\", \"text\": \"fine\"}}\n{{\"id\": {id}, \"text\": \"y\"}}\n"),
        )
        .unwrap();
        let e = err_with(2, &["add", "--index", s(&existing), s(&bad)]);
        assert!(e.contains("bad.jsonl line 2") && e.contains(why), "{e}");
        assert!(e.len() < 1000, "a long id is shown cut: {} bytes", e.len());
    }
    let report = ok(&["verify", "--index", s(&existing), "--json"]);
    assert!(
        report.contains("\"documents\": 2") || report.contains("\"documents\":2"),
        "{report}"
    );
}
