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
