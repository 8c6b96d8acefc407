//! TREC run files: `query-id Q0 doc-id rank score tag`, one retrieved document per line.

use std::io::{self, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::lines::for_each_line;
use crate::metrics::{Run, trec_order};

/// Writes `run` in TREC run format: `qid Q0 docid rank score tag` lines.
///
/// Queries are written sorted by id; each query's documents in `trec_eval` order (score
/// descending, ties by doc id descending, duplicate doc ids dropped; see
/// [`crate::metrics`]), with ranks from 1. Scores are written in Rust's shortest round-trip
/// form, so [`read_run`] gives back the same `f32` values. A query with an empty list writes
/// no line. Ids or a tag that are empty or contain whitespace cannot be represented and give
/// an [`io::ErrorKind::InvalidInput`] error.
///
/// # Errors
///
/// An [`io::ErrorKind::InvalidInput`] error for an id or tag that is empty or holds whitespace;
/// the writer's own errors.
pub fn write_run(w: &mut impl Write, run: &Run, tag: &str) -> io::Result<()> {
    check_token("tag", tag)?;
    let mut qids: Vec<&String> = run.keys().collect();
    qids.sort();
    for qid in qids {
        check_token("query id", qid)?;
        for (i, (doc, score)) in trec_order(&run[qid]).iter().enumerate() {
            check_token("doc id", doc)?;
            writeln!(w, "{qid} Q0 {doc} {} {score} {tag}", i + 1)?;
        }
    }
    Ok(())
}

fn check_token(what: &str, s: &str) -> io::Result<()> {
    if s.is_empty() || s.chars().any(char::is_whitespace) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{what} {s:?} cannot be written to a TREC run file (expected non-empty, no whitespace)"
            ),
        ));
    }
    Ok(())
}

/// Reads a TREC run file written by [`write_run`] (or any `trec_eval` run file).
///
/// Fields are separated by whitespace; blank lines are skipped. The rank must be an integer
/// and the score a number; the second and sixth fields are not interpreted. Documents keep
/// file order within each query (metrics re-sort them anyway).
///
/// # Errors
///
/// [`Error::Io`] when the file cannot be read; [`Error::RunLine`] naming the line that is not
/// `qid Q0 doc rank score tag`.
pub fn read_run(path: &Path) -> Result<Run> {
    let mut run = Run::new();
    for_each_line(path, |line_no, line| {
        if line.trim().is_empty() {
            return Ok(());
        }
        let bad = |problem: String| Error::RunLine {
            path: path.to_path_buf(),
            line: line_no,
            problem,
        };
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [qid, _q0, doc, rank, score, _tag] = fields[..] else {
            return Err(bad(format!("{} fields instead of 6", fields.len())));
        };
        rank.parse::<i64>()
            .map_err(|_| bad(format!("rank {rank:?} is not an integer")))?;
        let score: f32 = score
            .parse()
            .map_err(|_| bad(format!("score {score:?} is not a number")))?;
        run.entry(qid.to_string())
            .or_default()
            .push((doc.to_string(), score));
        Ok(())
    })?;
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample_run() -> Run {
        Run::from([
            (
                "q2".to_string(),
                vec![
                    ("a".to_string(), 1.0),
                    ("c".to_string(), 2.5),
                    ("b".to_string(), 1.0),
                ],
            ),
            ("q1".to_string(), vec![("z".to_string(), -0.125)]),
            ("q3".to_string(), vec![]),
        ])
    }

    #[test]
    fn writes_trec_order() {
        let mut out = Vec::new();
        write_run(&mut out, &sample_run(), "bm25").unwrap();
        let text = String::from_utf8(out).unwrap();
        // q1 before q2; in q2, c (2.5) then the tie b, a by doc id descending; q3 writes nothing.
        assert_eq!(
            text,
            "q1 Q0 z 1 -0.125 bm25\nq2 Q0 c 1 2.5 bm25\nq2 Q0 b 2 1 bm25\nq2 Q0 a 3 1 bm25\n"
        );
    }

    #[test]
    fn rejects_whitespace() {
        let run = Run::from([("q 1".to_string(), vec![("a".to_string(), 1.0)])]);
        let err = write_run(&mut Vec::new(), &run, "t").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("\"q 1\""), "{err}");
        assert!(write_run(&mut Vec::new(), &Run::new(), "").is_err());
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.trec");
        let run = sample_run();
        let mut file = std::fs::File::create(&path).unwrap();
        write_run(&mut file, &run, "tag").unwrap();
        drop(file);
        let back = read_run(&path).unwrap();
        let expected: Run = run
            .iter()
            .filter(|(_, docs)| !docs.is_empty())
            .map(|(q, docs)| (q.clone(), trec_order(docs)))
            .collect();
        assert_eq!(back, expected);
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.run");
        std::fs::write(&path, "q1 Q0 d1 1 0.5 t\n\nq1 Q0 d2 x 0.4 t\n").unwrap();
        let err = read_run(&path).unwrap_err().to_string();
        assert!(
            err.contains("bad.run line 3: rank \"x\" is not an integer"),
            "{err}"
        );
        assert!(
            err.contains("expected `query-id Q0 doc-id rank score tag`"),
            "{err}"
        );
        std::fs::write(&path, "q1 Q0 d1 1 0.5\n").unwrap();
        let err = read_run(&path).unwrap_err().to_string();
        assert!(err.contains("line 1: 5 fields instead of 6"), "{err}");
        std::fs::write(&path, "q1 Q0 d1 1 high t\n").unwrap();
        let err = read_run(&path).unwrap_err().to_string();
        assert!(
            err.contains("line 1: score \"high\" is not a number"),
            "{err}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn round_trip_any_scores(
            run in prop::collection::hash_map(
                "q[0-9]{1,3}",
                prop::collection::vec(("[a-z0-9_-]{1,8}", any::<f32>().prop_filter("finite", |s| s.is_finite())), 1..20),
                0..8,
            )
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("run.trec");
            let mut buf = Vec::new();
            write_run(&mut buf, &run, "p").unwrap();
            std::fs::write(&path, &buf).unwrap();
            let back = read_run(&path).unwrap();
            let expected: Run = run.iter().map(|(q, docs)| (q.clone(), trec_order(docs))).collect();
            prop_assert_eq!(back, expected);
        }
    }
}
