//! One writer at a time: a second writer is refused with a message that names the collection
//! and `--wait`, or queues behind the first with `--wait`; two concurrent `add` processes never
//! lose or misattribute a document.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::s;
use hybrid_search::dense::{Device, Encoder, TextKind};
use hybrid_search::{Collection, FusionOverrides, Mode, SearchRequest};

fn write_batch(path: &Path, tag: &str, size: usize) {
    let mut body = String::new();
    for j in 0..size {
        body.push_str(&format!(
            "{{\"_id\": \"{tag}-{j}\", \"title\": \"{tag}\", \"text\": \"p{j} {}\"}}\n",
            ["sepsis", "glucose", "ldl", "insulin"][j % 4],
        ));
    }
    std::fs::write(path, body).unwrap();
}

fn add(index: &Path, model: &Path, file: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hybrid-search"));
    command
        .args(["add", "--index", s(index), "--model", s(model)])
        .args(extra)
        .arg(file);
    command
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_second_writer_is_refused_or_waits() {
    let tmp = tempfile::tempdir().unwrap();
    let (index, model) = common::tiny_model_collection(tmp.path());
    let file = tmp.path().join("one.jsonl");
    write_batch(&file, "w", 3);

    // This process holds the write lock.
    let mut holder = Collection::open(&index).unwrap();
    let writer = holder.writer().unwrap();

    let out = add(&index, &model, &file, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(5), "busy: {}", stderr_of(&out));
    let message = stderr_of(&out);
    assert!(
        message.contains(s(&index))
            && message.contains("another process is writing")
            && message.contains("--wait"),
        "{message}"
    );
    let started = Instant::now();
    let out = add(&index, &model, &file, &["--wait=0.5"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", stderr_of(&out));
    assert!(started.elapsed() >= Duration::from_millis(500));
    for args in [
        vec!["delete", "--index", s(&index), "en-01"],
        vec!["repair", "--index", s(&index), "--model", s(&model)],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_hybrid-search"))
            .args(&args)
            .output()
            .unwrap();
        assert!(
            stderr_of(&out).contains("another process is writing"),
            "{args:?}"
        );
    }
    // Searches never take the lock.
    common::ok(&[
        "search",
        "--index",
        s(&index),
        "--model",
        s(&model),
        "sepsis",
    ]);

    // `--wait` without a value queues until the holder lets go.
    let waiting = add(&index, &model, &file, &["--wait"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    drop(writer);
    let out = waiting.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let c = Collection::open(&index).unwrap();
    assert_eq!(c.len(), 33);
    assert!(c.verify().unwrap().is_sound());
}

#[test]
fn two_concurrent_adds_lose_and_misattribute_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (index, model) = common::tiny_model_collection(tmp.path());
    let encoder = Encoder::load(&model, &Device::Cpu).unwrap();
    let mut expected = 30usize;
    for (round, extra) in [(0, vec![]), (1, vec!["--wait"]), (2, vec!["--wait=60"])] {
        let (a, b) = (tmp.path().join("a.jsonl"), tmp.path().join("b.jsonl"));
        let (tag_a, tag_b) = (format!("a{round}"), format!("b{round}"));
        write_batch(&a, &tag_a, 150);
        write_batch(&b, &tag_b, 150);
        let spawn = |file: &Path| {
            add(&index, &model, file, &extra)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (first, second) = (spawn(&a), spawn(&b));
        let outs = [
            first.wait_with_output().unwrap(),
            second.wait_with_output().unwrap(),
        ];
        let mut landed = Vec::new();
        for (out, tag) in outs.iter().zip([&tag_a, &tag_b]) {
            if out.status.success() {
                landed.push(tag.clone());
            } else {
                // Only without --wait may a writer be turned away, and only as busy.
                assert!(extra.is_empty(), "{}", stderr_of(out));
                assert!(
                    stderr_of(out).contains("another process is writing"),
                    "{}",
                    stderr_of(out)
                );
            }
        }
        assert!(!landed.is_empty());
        expected += 150 * landed.len();
        let mut c = Collection::open(&index).unwrap();
        c.attach_encoder(std::sync::Arc::new(
            Encoder::load(&model, &Device::Cpu).unwrap(),
        ))
        .unwrap();
        let report = c.verify().unwrap();
        assert!(report.is_sound(), "round {round}: {report:?}");
        assert_eq!(c.len() as usize, expected, "round {round}");
        // Every landed document is found by its own vector under its own id (a vector
        // attributed to another document's key would answer with the wrong id).
        for tag in &landed {
            for j in [0, 77, 149] {
                let id = format!("{tag}-{j}");
                let doc = c.get(&id).unwrap().unwrap();
                let text = hybrid_search::passage_text(&doc);
                let v = encoder
                    .encode(&[text.as_str()], TextKind::Passage, 1)
                    .unwrap();
                let hits = c
                    .rank(
                        &SearchRequest::new("", 1)
                            .with_mode(Mode::Dense)
                            .with_fusion(FusionOverrides::exactly(c.hybrid_options()))
                            .with_vector(v[0].to_vec()),
                    )
                    .unwrap()
                    .hits;
                assert_eq!(&*hits[0].id, id.as_str(), "round {round}");
            }
        }
    }
}

#[test]
fn supplied_vectors_and_query_vectors_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let (index, model) = common::tiny_model_collection(tmp.path());
    let v: Vec<f32> = (0..128)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) / 10.0)
        .collect();
    let good = tmp.path().join("good.jsonl");
    std::fs::write(
        &good,
        format!(
            "{}\n",
            serde_json::json!({"_id": "given", "text": "never encoded", "vector": v})
        ),
    )
    .unwrap();
    common::ok(&["add", "--index", s(&index), "--model", s(&model), s(&good)]);
    let vector = serde_json::to_string(&v).unwrap();
    let out = common::ok(&[
        "search",
        "--index",
        s(&index),
        "--model",
        s(&model),
        "--mode",
        "dense",
        "--json",
        "--vector",
        &vector,
    ]);
    let hits = common::hit_ids(&serde_json::from_str(&out).unwrap());
    assert_eq!(hits[0], "given");

    // A vector of the wrong length: the error names the file's line and the document, and
    // nothing of the file is committed.
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"_id\": \"ok-1\", \"text\": \"fine\"}\n{\"_id\": \"short\", \"text\": \"x\", \"vector\": [0.1, 0.2, 0.3]}\n",
    )
    .unwrap();
    let message = common::err(&["add", "--index", s(&index), "--model", s(&model), s(&bad)]);
    assert!(
        message.contains("line 2") && message.contains("\"short\"") && message.contains("128"),
        "{message}"
    );
    let c = Collection::open(&index).unwrap();
    assert_eq!(c.len(), 31);
    assert!(c.get("ok-1").unwrap().is_none());
    // A query vector that does not fit is refused with what is wrong.
    let message = common::err(&[
        "search",
        "--index",
        s(&index),
        "--model",
        s(&model),
        "--mode",
        "dense",
        "--vector",
        "[0.1, 0.2]",
    ]);
    assert!(
        message.contains("--vector: cannot be used: it has 2 values") && message.contains("128"),
        "{message}"
    );
}
