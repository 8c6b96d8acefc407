//! Crash safety: `hybrid-search add` is killed (SIGKILL) at random moments, again and again;
//! after every kill the collection must open at a commit with both legs holding exactly the
//! same documents, and each batch must be in whole or not at all.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use common::{index_with_model, s};
use hybrid_search::Collection;
use hybrid_search::dense::TinyModel;

const ROUNDS: usize = 30;
const BATCH: usize = 300;

/// SplitMix64, for reproducible kill times (relative to the measured run time).
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A batch of `BATCH` new documents, plus a new text for two fixture documents.
fn write_batch(path: &Path, round: usize) {
    let mut body = String::new();
    for j in 0..BATCH {
        body.push_str(&format!(
            "{{\"_id\": \"r{round}-{j}\", \"title\": \"round {round}\", \"text\": \"document {j} \
             of round {round} about cytokines sepsis glucose and ldl {}\"}}\n",
            "with a longer body ".repeat(j % 7)
        ));
    }
    for id in ["en-01", "ko-01"] {
        body.push_str(&format!(
            "{{\"_id\": \"{id}\", \"text\": \"{id} rewritten in round {round}\"}}\n"
        ));
    }
    std::fs::write(path, body).unwrap();
}

#[test]
fn killing_add_at_any_moment_leaves_the_last_commit_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let (index, model) = (tmp.path().join("idx"), tmp.path().join("tiny"));
    // Wide enough that encoding, not process start, takes most of an add's time.
    TinyModel {
        hidden: 128,
        max_seq_length: 64,
        ..TinyModel::default()
    }
    .write(&model)
    .unwrap();
    index_with_model(&index, &model, &["--analyzer", "en"]);
    let add = |file: &Path| {
        Command::new(env!("CARGO_BIN_EXE_hybrid-search"))
            .args(["add", "--index", s(&index), "--model", s(&model), s(file)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // How long one uninterrupted add takes here: kills are spread over that time.
    let file = tmp.path().join("batch.jsonl");
    write_batch(&file, 0);
    let started = Instant::now();
    assert!(add(&file).wait().unwrap().success());
    let full = started.elapsed();
    let mut expected = 30 + BATCH as u64;

    let mut rng = Rng(2026);
    let (mut mid_write, mut committed, mut orphans) = (0, 0, 0);
    let mut seen_notes = std::collections::HashSet::new();
    for round in 1..=ROUNDS {
        write_batch(&file, round);
        let mut child = add(&file);
        let delay = full.mul_f64(0.2 + 1.3 * rng.next_f64());
        std::thread::sleep(delay);
        let running = child.try_wait().unwrap().is_none();
        child.kill().ok();
        child.wait().unwrap();
        if running {
            mid_write += 1;
        }

        let c = Collection::open(&index).unwrap();
        let report = c.verify().unwrap();
        assert!(
            report.is_sound(),
            "round {round} (killed after {delay:?}): {report:?}"
        );
        assert_eq!(report.vectors, Some(report.documents as usize));
        // A vector file written for a commit that the kill interrupted (the next commit
        // removes it): this kill landed between the dense and the sparse half of a commit.
        orphans += usize::from(report.notes.iter().any(|n| !seen_notes.contains(n)));
        seen_notes.extend(report.notes.iter().cloned());
        let first = c.get(&format!("r{round}-0")).unwrap().is_some();
        let last = c.get(&format!("r{round}-{}", BATCH - 1)).unwrap().is_some();
        let rewritten = c
            .get("en-01")
            .unwrap()
            .is_some_and(|d| d.text.ends_with(&format!("round {round}")));
        assert_eq!(
            (first, last, rewritten),
            (first, first, first),
            "round {round}: a batch is in whole or not at all"
        );
        if first {
            committed += 1;
            expected += BATCH as u64;
        }
        assert_eq!(c.len(), expected, "round {round}");
    }
    eprintln!(
        "crash test: {ROUNDS} kills ({mid_write} while add was running, {} after it finished; \
         {committed} batches committed, {orphans} kills between the dense and sparse halves of a \
         commit); \
         one add takes {full:?}; 0 inconsistencies",
        ROUNDS - mid_write
    );
    assert!(
        mid_write >= ROUNDS / 3,
        "most kills must land while add runs"
    );
    // After all that, adding still works and the result is whole.
    write_batch(&file, ROUNDS + 1);
    assert!(add(&file).wait().unwrap().success());
    let c = Collection::open(&index).unwrap();
    assert!(c.verify().unwrap().is_sound());
    assert_eq!(c.len(), expected + BATCH as u64);
}
