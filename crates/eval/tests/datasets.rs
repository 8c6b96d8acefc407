//! Dataset readers on small hand-made files: formats, mapping rules and error messages.

use std::error::Error as _;
use std::fs;
use std::path::Path;

use hybrid_search_eval::{DatasetFormat, Error, detect_format, load_dataset, read_corpus};

fn write(path: &Path, content: impl AsRef<[u8]>) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, content).unwrap();
}

fn beir_folder(dir: &Path) {
    write(
        &dir.join("corpus.jsonl"),
        concat!(
            r#"{"_id": "d1", "title": "T1", "text": "one"}"#,
            "\n\n",
            r#"{"_id": 2, "text": "two"}"#,
            "\r\n",
            r#"{"id": "d3", "title": null, "text": "three"}"#,
            "\n",
        ),
    );
    write(
        &dir.join("queries.jsonl"),
        concat!(
            r#"{"_id": "q3", "text": "third"}"#,
            "\n",
            r#"{"_id": "q1", "text": "first"}"#,
            "\n",
            r#"{"_id": "q2", "text": "second"}"#,
            "\n",
        ),
    );
    write(
        &dir.join("qrels/test.tsv"),
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq3\t2\t2\nq3\td3\t0\n",
    );
    write(&dir.join("qrels/train.tsv"), "q2\td1\t1\n");
}

#[test]
fn detects_formats() {
    let dir = tempfile::tempdir().unwrap();
    beir_folder(dir.path());
    assert_eq!(detect_format(dir.path()).unwrap(), DatasetFormat::Beir);
    let json = dir.path().join("squad.json");
    write(&json, "{}");
    assert_eq!(detect_format(&json).unwrap(), DatasetFormat::Squad);
    let jsonl = dir.path().join("docs.jsonl");
    write(&jsonl, "");
    assert_eq!(detect_format(&jsonl).unwrap(), DatasetFormat::Jsonl);

    let txt = dir.path().join("notes.txt");
    write(&txt, "");
    for bad in [
        txt,
        dir.path().join("qrels"),
        dir.path().join("missing.jsonl"),
    ] {
        let err = detect_format(&bad).unwrap_err();
        assert!(matches!(err, Error::UnknownFormat { .. }));
        let msg = err.to_string();
        assert!(msg.contains(&bad.display().to_string()), "{msg}");
        assert!(
            msg.contains("a BEIR folder containing corpus.jsonl"),
            "{msg}"
        );
        assert!(msg.contains("ending .json,"), "{msg}");
        assert!(msg.contains("ending .jsonl"), "{msg}");
    }
}

#[test]
fn reads_beir() {
    let dir = tempfile::tempdir().unwrap();
    beir_folder(dir.path());
    let corpus = read_corpus(dir.path()).unwrap();
    let ids: Vec<(&str, &str, &str)> = corpus
        .iter()
        .map(|d| (d.id.as_str(), d.title.as_str(), d.text.as_str()))
        .collect();
    assert_eq!(
        ids,
        [("d1", "T1", "one"), ("2", "", "two"), ("d3", "", "three")]
    );

    let test = load_dataset(dir.path(), "test").unwrap();
    assert_eq!(test.corpus, corpus);
    // Restricted to judged queries, in queries.jsonl order.
    let qids: Vec<&str> = test.queries.iter().map(|q| q.id.as_str()).collect();
    assert_eq!(qids, ["q3", "q1"]);
    assert_eq!(test.qrels.len(), 2);
    assert_eq!(test.qrels["q3"]["2"], 2);
    assert_eq!(test.qrels["q3"]["d3"], 0);
    assert_eq!(test.qrels["q1"]["d1"], 1);

    // A first line without a numeric score is a header; without one, line 1 is data.
    let train = load_dataset(dir.path(), "train").unwrap();
    assert_eq!(train.queries.len(), 1);
    assert_eq!(train.queries[0].text, "second");
}

#[test]
fn missing_split_lists_available() {
    let dir = tempfile::tempdir().unwrap();
    beir_folder(dir.path());
    let err = load_dataset(dir.path(), "dev").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("dev.tsv"), "{msg}");
    assert!(
        msg.contains("splits available in qrels/: test, train"),
        "{msg}"
    );
}

#[test]
fn qrels_errors_name_line() {
    let dir = tempfile::tempdir().unwrap();
    beir_folder(dir.path());
    let qrels = dir.path().join("qrels/test.tsv");
    write(&qrels, "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\n");
    let msg = load_dataset(dir.path(), "test").unwrap_err().to_string();
    assert!(
        msg.contains("test.tsv line 3: 2 columns instead of 3"),
        "{msg}"
    );
    assert!(
        msg.contains("expected `query-id<TAB>corpus-id<TAB>score`"),
        "{msg}"
    );

    write(&qrels, "q1\td1\t1\nq1\td2\tyes\n");
    let msg = load_dataset(dir.path(), "test").unwrap_err().to_string();
    assert!(
        msg.contains("line 2: score \"yes\" is not an integer"),
        "{msg}"
    );

    write(&qrels, "q1\td1\t1\nq1\td1\t2\n");
    let msg = load_dataset(dir.path(), "test").unwrap_err().to_string();
    assert!(
        msg.contains("line 2: query \"q1\" and document \"d1\" already judged on line 1"),
        "{msg}"
    );

    write(&qrels, "q1\td1\t1\nq9\td1\t1\n");
    let msg = load_dataset(dir.path(), "test").unwrap_err().to_string();
    assert!(msg.contains("line 2: query id \"q9\" is not in"), "{msg}");
    assert!(msg.contains("queries.jsonl"), "{msg}");
}

#[test]
fn corpus_record_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docs.jsonl");
    let cases: [(&str, &str); 10] = [
        (
            "{\"_id\": \"a\", \"text\": \"x\"}\n{\"title\": \"t\", \"text\": \"y\"}\n",
            "docs.jsonl line 2: missing id",
        ),
        (
            "{\"_id\": \"a\"}\n",
            "docs.jsonl line 1: missing field \"text\"",
        ),
        (
            "{\"_id\": \"a\", \"text\": 5}\n",
            "line 1: field \"text\" is a JSON number, not a string",
        ),
        (
            "{\"_id\": true, \"text\": \"x\"}\n",
            "line 1: field \"_id\" is a JSON boolean",
        ),
        ("[1, 2]\n", "line 1: a JSON array instead of an object"),
        (
            "{\"_id\": \"a\", \"text\": \"x\"}\n\n{\"id\": \"a\", \"text\": \"y\"}\n",
            "docs.jsonl line 3: duplicate id \"a\", already used on line 1",
        ),
        (
            "{\"_id\": \"a\", \"text\": \"x\", \"vector\": \"0.1\"}\n",
            "docs.jsonl line 1: field \"vector\" is a JSON string, not an array of numbers",
        ),
        (
            "{\"_id\": \"a\", \"text\": \"x\"}\n{\"_id\": \"b\", \"text\": \"x\", \"vector\": [0.5, \"x\"]}\n",
            "docs.jsonl line 2: field \"vector\" value 1 is a JSON string, not a number",
        ),
        (
            "{\"_id\": \"a\", \"text\": \"x\", \"vector\": [1e39]}\n",
            "docs.jsonl line 1: field \"vector\" value 0: 1e39 is beyond the range of a 32-bit float (±3.4028235e38)",
        ),
        (
            "{\"_id\": \"a\", \"text\": \"x\", \"vector\": []}\n",
            "docs.jsonl line 1: field \"vector\" is an empty array",
        ),
    ];
    for (content, expected) in cases {
        write(&path, content);
        let msg = read_corpus(&path).unwrap_err().to_string();
        assert!(
            msg.contains(expected),
            "{msg}\n  should contain: {expected}"
        );
        if !expected.contains("duplicate") {
            assert!(
                msg.contains(
                    r#"(expected one object per line with "_id" or "id", "title", "text" and optionally "vector": [numbers])"#
                ),
                "{msg}"
            );
        }
    }
}

#[test]
fn invalid_json_and_utf8_keep_their_source() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corpus.jsonl");
    write(
        &path,
        "{\"_id\": \"a\", \"text\": \"x\"}\n{\"_id\": \"b\", \"text\": \n",
    );
    let err = read_corpus(&path).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(r#"corpus.jsonl line 2: not valid JSON (expected one object per line with "_id" or "id", "title", "text" and optionally "vector": [numbers]): "#),
        "{msg}"
    );
    assert!(err.source().is_some_and(|s| s.is::<serde_json::Error>()));

    write(
        &path,
        b"{\"_id\": \"a\", \"text\": \"x\"}\n{\"_id\": \"b\", \"text\": \"\xff\"}\n",
    );
    let err = read_corpus(&path).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("corpus.jsonl line 2: not valid UTF-8"),
        "{msg}"
    );
    assert!(err.source().is_some_and(|s| s.is::<std::str::Utf8Error>()));
}

#[test]
fn missing_files_are_io_errors_with_path() {
    let dir = tempfile::tempdir().unwrap();
    beir_folder(dir.path());
    fs::remove_file(dir.path().join("queries.jsonl")).unwrap();
    let err = load_dataset(dir.path(), "test").unwrap_err();
    assert!(matches!(err, Error::Io { .. }));
    assert!(err.to_string().contains("queries.jsonl"), "{err}");
    assert!(err.source().is_some_and(|s| s.is::<std::io::Error>()));
}

#[test]
fn jsonl_has_no_queries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docs.jsonl");
    write(&path, "{\"id\": 7, \"text\": \"x\"}\n");
    assert_eq!(read_corpus(&path).unwrap()[0].id, "7");
    let msg = load_dataset(&path, "test").unwrap_err().to_string();
    assert!(
        msg.contains(
            "docs.jsonl: a JSONL corpus has no queries; evaluate with a BEIR folder or SQuAD JSON"
        ),
        "{msg}"
    );
}

const SQUAD: &str = r#"{"version": "x", "data": [
  {"title": "A", "paragraphs": [
    {"context": "alpha", "qas": [{"id": "q1", "question": "Q1?", "answers": []},
                                 {"id": "q2", "question": "Q2?", "answers": []}]},
    {"context": "lonely", "qas": []},
    {"context": "beta", "qas": [{"id": "q3", "question": "Q3?"}]}
  ]},
  {"title": "B", "paragraphs": [
    {"context": "alpha", "qas": [{"id": 4, "question": "Q4?"}]},
    {"context": "gamma", "qas": [{"id": "q5", "question": "Q5?"}]}
  ]}
]}"#;

#[test]
fn reads_squad() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("squad.json");
    write(&path, SQUAD);
    let ds = load_dataset(&path, "ignored").unwrap();
    let docs: Vec<(&str, &str, &str)> = ds
        .corpus
        .iter()
        .map(|d| (d.id.as_str(), d.title.as_str(), d.text.as_str()))
        .collect();
    // "lonely" has no questions; the second "alpha" maps to the first one's id 0-0.
    assert_eq!(
        docs,
        [
            ("0-0", "A", "alpha"),
            ("0-2", "A", "beta"),
            ("1-1", "B", "gamma")
        ]
    );
    let qs: Vec<(&str, &str)> = ds
        .queries
        .iter()
        .map(|q| (q.id.as_str(), q.text.as_str()))
        .collect();
    assert_eq!(
        qs,
        [
            ("q1", "Q1?"),
            ("q2", "Q2?"),
            ("q3", "Q3?"),
            ("4", "Q4?"),
            ("q5", "Q5?")
        ]
    );
    assert_eq!(ds.qrels.len(), 5);
    assert_eq!(ds.qrels["4"].len(), 1);
    assert_eq!(ds.qrels["4"]["0-0"], 1);
    assert_eq!(ds.qrels["q3"]["0-2"], 1);
    assert_eq!(read_corpus(&path).unwrap(), ds.corpus);
}

#[test]
fn squad_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    write(
        &path,
        "{\"data\": [{\"title\": \"A\", \"paragraphs\": [{\"qas\": []}]}]}",
    );
    let err = load_dataset(&path, "test").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("bad.json: not a SQuAD JSON file (expected {\"data\""),
        "{msg}"
    );
    assert!(msg.contains("context"), "{msg}");
    assert!(err.source().is_some_and(|s| s.is::<serde_json::Error>()));

    write(&path, SQUAD.replace("\"q5\"", "\"q1\""));
    let msg = load_dataset(&path, "test").unwrap_err().to_string();
    assert!(
        msg.contains("duplicate question id \"q1\" in article 1, paragraph 1, already used in article 0, paragraph 0"),
        "{msg}"
    );

    write(&path, b"{\"data\": [\n{\"title\": \"\xc3\"}]}");
    let msg = load_dataset(&path, "test").unwrap_err().to_string();
    assert!(msg.contains("bad.json line 2: not valid UTF-8"), "{msg}");
}

#[test]
fn a_streamed_corpus_matches_the_one_read_whole_and_carries_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docs.jsonl");
    write(
        &path,
        "{\"_id\": \"a\", \"text\": \"x\", \"vector\": [0.5, -1, 2.25]}\n\n{\"id\": 7, \"title\": \"T\", \"text\": \"y\"}\n{\"_id\": \"a\", \"text\": \"z\"}\n",
    );
    let mut stream = hybrid_search_eval::stream_corpus(&path).unwrap();
    let first = stream.next().unwrap().unwrap();
    assert_eq!((first.id.as_str(), stream.line()), ("a", 1));
    assert_eq!(first.vector, Some(vec![0.5, -1.0, 2.25]));
    let second = stream.next().unwrap().unwrap();
    assert_eq!(
        (second.id.as_str(), second.vector.clone(), stream.line()),
        ("7", None, 3)
    );
    // The duplicate id on line 4 is an error in the stream too, naming both lines.
    let err = stream.next().unwrap().unwrap_err().to_string();
    assert!(
        err.contains("line 4: duplicate id \"a\", already used on line 1"),
        "{err}"
    );
    let whole = read_corpus(&path).unwrap_err().to_string();
    assert_eq!(err, whole);
}
