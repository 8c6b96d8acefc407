//! Crash safety. `hybrid-search add` is aborted at each named failpoint of the commit and merge
//! paths (`HYBRID_SEARCH_FAILPOINT`), several times each, and killed (SIGKILL) at random
//! moments; after every crash the collection must open at a commit with both legs holding
//! exactly the same documents, each batch must be in whole or not at all, and the next `add`
//! must succeed.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Instant;

use common::s;
use hybrid_search::Collection;

const ROUNDS: usize = 20;
const BATCH: usize = 300;

/// A batch of `BATCH` new documents, plus a new text for two fixture documents.
fn write_batch(path: &Path, round: usize) {
    write_batch_of(path, round, BATCH);
}

fn write_batch_of(path: &Path, round: usize, size: usize) {
    let mut body = String::new();
    for j in 0..size {
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

fn add_command(index: &Path, model: &Path, file: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hybrid-search"));
    command.args(["add", "--index", s(index), "--model", s(model), s(file)]);
    command
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Opens the collection and checks it after a crash: sound, one vector set per document, the
/// batch of `round` in whole or not at all, and the count. Returns whether the batch is in.
fn check_after_crash(index: &Path, round: usize, size: usize, expected: u64, what: &str) -> bool {
    let c = Collection::open(index).unwrap();
    let report = c.verify().unwrap();
    assert!(report.is_sound(), "{what}: {report:?}");
    assert_eq!(report.vectors, Some(report.documents as usize), "{what}");
    let first = c.get(&format!("r{round}-0")).unwrap().is_some();
    let last = c.get(&format!("r{round}-{}", size - 1)).unwrap().is_some();
    let rewritten = c
        .get("en-01")
        .unwrap()
        .is_some_and(|d| d.text.ends_with(&format!("round {round}")));
    assert_eq!(
        (first, last, rewritten),
        (first, first, first),
        "{what}: a batch is in whole or not at all"
    );
    let expected = expected + if first { size as u64 } else { 0 };
    assert_eq!(c.len(), expected, "{what}");
    first
}

#[test]
fn aborting_at_every_failpoint_leaves_whole_commits() {
    const SIZE: usize = 20;
    let tmp = tempfile::tempdir().unwrap();
    let (index, model) = common::tiny_model_collection(tmp.path());
    let file = tmp.path().join("batch.jsonl");
    let mut expected = 30u64;
    let mut round = 0;
    let mut hits: std::collections::BTreeMap<&str, usize> = Default::default();
    // (point, whether the batch is committed when the process aborts there)
    let points = [
        ("after-vector-segment", false),
        ("after-sparse-commit", true),
        ("during-cleanup", true),
        ("mid-merge", true),
    ];
    for repeat in 0..3 {
        for (point, commits) in points {
            // An add reaches `during-cleanup` only when a file is due for removal and
            // `mid-merge` only when a merge is due: plain adds run until one aborts there.
            let mut aborted = None;
            for _ in 0..12 {
                round += 1;
                write_batch_of(&file, round, SIZE);
                let out = add_command(&index, &model, &file)
                    .env(hybrid_search::FAILPOINT_VAR, point)
                    .output()
                    .unwrap();
                if out.status.success() {
                    expected += SIZE as u64;
                    continue;
                }
                let stderr = stderr_of(&out);
                assert!(
                    stderr.contains(&format!("failpoint {point}: aborting")),
                    "{point} (repeat {repeat}): add failed without reaching the point: {stderr}"
                );
                aborted = Some(round);
                break;
            }
            let aborted_round = aborted.unwrap_or_else(|| panic!("{point} was never reached"));
            *hits.entry(point).or_default() += 1;
            let what = format!("{point}, repeat {repeat}");
            let committed = check_after_crash(&index, aborted_round, SIZE, expected, &what);
            assert_eq!(committed, commits, "{what}: committed?");
            if committed {
                expected += SIZE as u64;
            }
            // The next add succeeds and the collection stays whole.
            round += 1;
            write_batch_of(&file, round, SIZE);
            let out = add_command(&index, &model, &file).output().unwrap();
            assert!(
                out.status.success(),
                "{what}: the next add failed: {}",
                stderr_of(&out)
            );
            expected += SIZE as u64;
            check_after_crash(&index, round, SIZE, expected - SIZE as u64, &what);
        }
    }
    eprintln!("failpoint crash test: points hit {hits:?}; every round consistent");
    assert!(points.iter().all(|(p, _)| hits.get(p) == Some(&3)));
}

#[test]
fn killing_add_at_random_moments_leaves_the_last_commit_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let (index, model) = common::tiny_model_collection(tmp.path());
    let stderr_path = tmp.path().join("stderr.txt");
    let add = |file: &Path| -> Child {
        add_command(&index, &model, file)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap()
    };
    let last_stderr = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    // How long one uninterrupted add takes here: kills are spread over that time.
    let file = tmp.path().join("batch.jsonl");
    write_batch(&file, 0);
    let started = Instant::now();
    assert!(add(&file).wait().unwrap().success(), "{}", last_stderr());
    let full = started.elapsed();
    let mut expected = 30 + BATCH as u64;

    let mut rng = hybrid_search::dense::SplitMix64::new(2026);
    let (mut mid_write, mut committed) = (0, 0);
    for round in 1..=ROUNDS {
        write_batch(&file, round);
        let mut child = add(&file);
        let delay = full.mul_f64(0.2 + 1.3 * rng.uniform());
        std::thread::sleep(delay);
        let running = child.try_wait().unwrap().is_none();
        child.kill().ok();
        let status = child.wait().unwrap();
        if running {
            mid_write += 1;
        } else {
            assert!(
                status.success(),
                "round {round}: add failed: {}",
                last_stderr()
            );
        }
        let what = format!("round {round} (killed after {delay:?})");
        if check_after_crash(&index, round, BATCH, expected, &what) {
            committed += 1;
            expected += BATCH as u64;
        }
    }
    eprintln!(
        "random-kill crash test: {ROUNDS} kills ({mid_write} while add was running, {} after \
         it finished; {committed} batches committed); one add takes {full:?}; 0 inconsistencies",
        ROUNDS - mid_write
    );
    // After all that, adding still works and the result is whole.
    write_batch(&file, ROUNDS + 1);
    assert!(
        add(&file).wait().unwrap().success(),
        "the add after the kills failed: {}",
        last_stderr()
    );
    let c = Collection::open(&index).unwrap();
    assert!(c.verify().unwrap().is_sound());
    assert_eq!(c.len(), expected + BATCH as u64);
}
