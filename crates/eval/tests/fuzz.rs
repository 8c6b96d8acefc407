//! Fuzzing the dataset readers on stable Rust: property tests over files of arbitrary lines
//! (valid documents with odd ids, arbitrary JSON, arbitrary bytes, blank lines), plain and
//! gzip-compressed, in BEIR folders with arbitrary queries and judgments.
//!
//! What is checked: no reader panics; a corpus that reads has documents whose ids pass the id
//! rule and are unique; an error names the file, and the line it names is in the file; the
//! streaming reader agrees with the whole-file reader. `FUZZ_CASES=N cargo test --release -p
//! hybrid-search-eval --test fuzz` runs N cases per property (CI runs the number given below).

use std::io::Write;
use std::path::Path;

use hybrid_search_eval::{load_dataset, read_corpus, stream_corpus};
use proptest::prelude::*;

/// The case budget: `FUZZ_CASES` when set, else `ci`.
fn cases(ci: u32) -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ci)
}

/// An id: ordinary, empty, blank, with control characters, long, or arbitrary text.
fn id() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        4 => "[a-z0-9]{1,8}".prop_map(serde_json::Value::from),
        1 => Just(serde_json::Value::from("")),
        1 => Just(serde_json::Value::from("  ")),
        1 => "[a\n\t\u{0}\u{7f}]{1,4}".prop_map(serde_json::Value::from),
        1 => (500usize..530).prop_map(|n| serde_json::Value::from("x".repeat(n))),
        1 => any::<String>().prop_map(serde_json::Value::from),
        1 => any::<i64>().prop_map(serde_json::Value::from),
        1 => Just(serde_json::Value::Null),
    ]
}

/// Any JSON value, a few levels deep.
fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("_id".to_string()),
                    Just("id".to_string()),
                    Just("title".to_string()),
                    Just("text".to_string()),
                    Just("vector".to_string()),
                    "[a-z.]{1,6}",
                ],
                inner,
                0..5,
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// One line of a corpus file.
fn line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => (id(), any::<String>(), prop::option::of(any::<String>())).prop_map(|(id, text, title)| {
            let mut doc = serde_json::json!({"_id": id, "text": text});
            if let Some(title) = title {
                doc["title"] = title.into();
            }
            doc.to_string().into_bytes()
        }),
        2 => json().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..40),
        1 => Just(Vec::new()),
    ]
}

fn file(lines: &[Vec<u8>], crlf: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
    }
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Checks what a reader gave for the corpus at `path` of `lines` lines.
fn check_corpus(
    path: &Path,
    lines: usize,
    read: &Result<Vec<hybrid_search_eval::Document>, hybrid_search_eval::Error>,
) -> Result<(), TestCaseError> {
    match read {
        Ok(docs) => {
            let mut seen = std::collections::HashSet::new();
            for d in docs {
                prop_assert!(
                    hybrid_search_document::check_id(&d.id).is_ok(),
                    "id {:?} breaks the rule",
                    d.id
                );
                prop_assert!(seen.insert(d.id.clone()), "id {:?} twice", d.id);
            }
        }
        Err(e) => {
            let message = e.to_string();
            let name = path.file_name().unwrap().to_str().unwrap();
            prop_assert!(message.contains(name), "{message}");
            if let Some(at) = message.find(" line ") {
                let n: usize = message[at + 6..]
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                prop_assert!(
                    (1..=lines.max(1)).contains(&n),
                    "line {n} of {lines}: {message}"
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    #[test]
    fn corpus_files_of_arbitrary_lines_read_or_fail_clearly(
        lines in prop::collection::vec(line(), 0..12),
        crlf in any::<bool>(),
        compressed in any::<bool>(),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let bytes = file(&lines, crlf);
        // Physical lines: a generated line may hold a newline byte itself.
        let physical = bytes.iter().filter(|&&b| b == b'\n').count();
        let path = tmp.path().join(if compressed { "docs.jsonl.gz" } else { "docs.jsonl" });
        std::fs::write(&path, if compressed { gzip(&bytes) } else { bytes }).unwrap();
        let whole = read_corpus(&path);
        check_corpus(&path, physical, &whole)?;
        let streamed: Result<Vec<_>, _> = stream_corpus(&path).and_then(|s| s.collect());
        prop_assert_eq!(whole.is_ok(), streamed.is_ok());
        if let (Ok(a), Ok(b)) = (&whole, &streamed) {
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn beir_folders_of_arbitrary_queries_and_judgments_never_panic(
        corpus in prop::collection::vec(line(), 0..6),
        queries in prop::collection::vec(line(), 0..6),
        qrels in prop::collection::vec(
            prop_oneof![
                ("[a-z0-9]{1,3}", "[a-z0-9]{1,3}", -2i32..4)
                    .prop_map(|(q, d, r)| format!("{q}\t{d}\t{r}").into_bytes()),
                prop::collection::vec(any::<u8>(), 0..20),
            ],
            0..6,
        ),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("beir");
        std::fs::create_dir_all(dir.join("qrels")).unwrap();
        std::fs::write(dir.join("corpus.jsonl"), file(&corpus, false)).unwrap();
        std::fs::write(dir.join("queries.jsonl"), file(&queries, false)).unwrap();
        let mut tsv = b"query-id\tcorpus-id\tscore\n".to_vec();
        tsv.extend(file(&qrels, false));
        std::fs::write(dir.join("qrels/test.tsv"), tsv).unwrap();
        if let Err(e) = load_dataset(&dir, "test") {
            prop_assert!(!e.to_string().is_empty());
        }
    }
}
