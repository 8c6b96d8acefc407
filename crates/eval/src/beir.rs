//! The BEIR folder layout: `corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::Path;

use crate::dataset::{Dataset, Qrels, read_jsonl_corpus, read_jsonl_queries};
use crate::error::{Error, Result};
use crate::lines::for_each_line;

/// Loads a BEIR folder for `split` (see [`crate::load_dataset`]).
pub(crate) fn load_beir(dir: &Path, split: &str) -> Result<Dataset> {
    let qrels_path = dir.join("qrels").join(format!("{split}.tsv"));
    if !qrels_path.is_file() {
        return Err(Error::MissingSplit {
            path: qrels_path,
            split: split.to_string(),
            available: available_splits(&dir.join("qrels")),
        });
    }
    let corpus = read_jsonl_corpus(&dir.join("corpus.jsonl"))?;
    let (qrels, first_lines) = read_qrels(&qrels_path)?;
    let queries_path = dir.join("queries.jsonl");
    let queries: Vec<_> = read_jsonl_queries(&queries_path)?
        .into_iter()
        .filter(|q| qrels.contains_key(&q.id))
        .collect();
    if queries.len() != qrels.len() {
        // Some judged query has no text: report the earliest such qrels line.
        let known: std::collections::HashSet<&str> =
            queries.iter().map(|q| q.id.as_str()).collect();
        if let Some((id, &line)) = first_lines
            .iter()
            .filter(|(id, _)| !known.contains(id.as_str()))
            .min_by_key(|(_, line)| **line)
        {
            return Err(Error::UnknownQuery {
                path: qrels_path,
                line,
                id: id.clone(),
                queries: queries_path,
            });
        }
    }
    Ok(Dataset {
        corpus,
        queries,
        qrels,
    })
}

/// The file stems of `qrels/*.tsv`, sorted (empty when the folder is missing).
fn available_splits(qrels_dir: &Path) -> Vec<String> {
    let mut splits: Vec<String> = std::fs::read_dir(qrels_dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "tsv"))
        .filter_map(|p| p.file_stem().and_then(|s| s.to_str()).map(str::to_string))
        .collect();
    splits.sort();
    splits
}

/// Reads a BEIR qrels TSV: an optional header line, then `qid<TAB>docid<TAB>score` lines.
///
/// The first line is skipped as a header when its third column is not a number. Blank lines
/// are skipped. The score must be an integer (a number such as `2.0` is accepted as 2). A
/// repeated `(qid, docid)` pair is an error naming both lines. Also returns, for each query,
/// the line of its first judgment.
pub(crate) fn read_qrels(path: &Path) -> Result<(Qrels, HashMap<String, usize>)> {
    let mut qrels = Qrels::new();
    let mut first_lines: HashMap<String, usize> = HashMap::new();
    let mut pair_lines: HashMap<(String, String), usize> = HashMap::new();
    for_each_line(path, |line_no, line| {
        if line.trim().is_empty() {
            return Ok(());
        }
        let bad = |problem: String| Error::Qrels {
            path: path.to_path_buf(),
            line: line_no,
            problem,
        };
        let mut fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != 3 {
            fields = line.split_whitespace().collect();
        }
        if line_no == 1
            && fields
                .get(2)
                .is_none_or(|s| s.trim().parse::<f64>().is_err())
        {
            return Ok(()); // header
        }
        let [qid, docid, score] = fields[..] else {
            return Err(bad(format!("{} columns instead of 3", fields.len())));
        };
        let (qid, docid, score) = (qid.trim(), docid.trim(), score.trim());
        if qid.is_empty() || docid.is_empty() {
            return Err(bad("empty query id or corpus id".into()));
        }
        let grade =
            parse_grade(score).ok_or_else(|| bad(format!("score {score:?} is not an integer")))?;
        match pair_lines.entry((qid.to_string(), docid.to_string())) {
            Entry::Occupied(first) => {
                return Err(bad(format!(
                    "query {qid:?} and document {docid:?} already judged on line {}",
                    first.get()
                )));
            }
            Entry::Vacant(v) => {
                v.insert(line_no);
            }
        }
        first_lines.entry(qid.to_string()).or_insert(line_no);
        qrels
            .entry(qid.to_string())
            .or_default()
            .insert(docid.to_string(), grade);
        Ok(())
    })?;
    Ok((qrels, first_lines))
}

fn parse_grade(s: &str) -> Option<i32> {
    if let Ok(g) = s.parse::<i32>() {
        return Some(g);
    }
    let f = s.parse::<f64>().ok()?;
    (f.fract() == 0.0 && f.abs() <= f64::from(i32::MAX)).then_some(f as i32)
}
