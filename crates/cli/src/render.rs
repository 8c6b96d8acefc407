//! Every command's output, in one place: text for people, one JSON object per command for
//! programs (`--json`), notes and warnings on stderr.

use std::io::{self, Write};
use std::path::Path;

use hybrid_search::fusion::{Fusion, Leg, Normalization};
use hybrid_search::{
    Degraded, EvalReport, HybridOptions, SearchResults, TuneRecord, TuneRow, VerifyReport,
};
use hybrid_search_train::{TrainReport, TrainingSet};

use crate::commands::train::DataArgs;

/// One line describing fusion settings: `convex minmax alpha=0.40 depth=100`.
pub fn describe(options: &HybridOptions) -> String {
    let norm = |n: &Normalization| match n {
        Normalization::MinMax => "minmax",
        Normalization::ZScore => "zscore",
        Normalization::Dbsf => "dbsf",
        _ => "theoretical",
    };
    match options.fusion {
        Fusion::Rrf(s) => format!(
            "rrf k={} dense-weight={} depth={}",
            s.k,
            s.dense_weight / s.sparse_weight,
            options.depth
        ),
        Fusion::Convex(s) => format!(
            "convex {} alpha={:.2} depth={}",
            norm(&s.dense),
            s.alpha,
            options.depth
        ),
    }
}

/// The method and normalisation of a setting, without its numbers.
fn family(options: &HybridOptions) -> String {
    describe(options)
        .split_whitespace()
        .take_while(|w| !w.contains('='))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `value` as JSON, through its text form so that `f32` fields print as written (`0.85`,
/// not the `f64` widening `0.8500000238418579` that `serde_json::to_value` gives).
pub fn to_json<T: serde::Serialize>(value: &T) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::from_str(&serde_json::to_string(value)?)?)
}

/// Says on stderr that the dense leg took no part, and why.
pub fn degraded_note(reason: &Degraded) {
    let hint = match reason {
        Degraded::ModelUnavailable { .. } | Degraded::NoEncoder { .. } => {
            "; pass the model's folder with --model DIR"
        }
        _ => "",
    };
    eprintln!(
        "note: the dense leg is unavailable ({reason}){hint}; results come from the sparse leg \
         only"
    );
}

/// Prints what went wrong after a commit was already durable, or what opening a collection
/// noticed.
pub fn warnings(warnings: impl IntoIterator<Item = String>) {
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
}

/// `search`'s output.
pub fn search(
    query: &str,
    results: &SearchResults,
    k: usize,
    (json, explain, offset): (bool, bool, usize),
) -> anyhow::Result<()> {
    if let Some(reason) = &results.degraded {
        degraded_note(reason);
    }
    let mut out = io::stdout().lock();
    if json {
        let mut value = to_json(results)?;
        value["query"] = query.into();
        writeln!(out, "{value}")?;
        return Ok(());
    }
    if results.hits.is_empty() {
        writeln!(out, "no results")?;
    }
    if explain && let Some(fusion) = &results.fusion {
        writeln!(out, "hybrid: {}", describe(fusion))?;
    }
    if explain && let Some(r) = &results.rerank {
        let score = if r.weight >= 1.0 {
            "its logit".to_string()
        } else {
            format!(
                "{w} x normalised logit + {} x normalised first-stage score",
                1.0 - r.weight,
                w = r.weight
            )
        };
        writeln!(
            out,
            "rerank: the top {} by {} (score: {score})",
            r.depth,
            r.model.display()
        )?;
    }
    let depth = results.fusion.map_or(k, |f| f.depth).max(k);
    for (rank, hit) in results.hits.iter().enumerate() {
        writeln!(
            out,
            "{:>3}. {:<12} {:>8.3}  {}",
            offset + rank + 1,
            hit.id,
            hit.score,
            hit.title
        )?;
        writeln!(out, "     {}", hit.snippet)?;
        if let Some(fields) = &hit.fields {
            for (name, value) in fields {
                writeln!(out, "     {name}: {value}")?;
            }
        }
        if let Some(text) = &hit.text {
            writeln!(out, "     text: {text}")?;
        }
        if let Some(first) = &hit.first_stage {
            writeln!(
                out,
                "     rerank logit {:.4}; first stage rank {} score {:.4}",
                first.logit, first.rank, first.score
            )?;
        }
        for leg in &hit.legs {
            let raw = match leg.leg {
                Leg::Sparse => "BM25",
                _ => "cosine",
            };
            match (leg.rank, leg.raw_score) {
                (Some(rank), Some(score)) => writeln!(
                    out,
                    "     {:<6} rank {rank:<4} {raw} {score:<8.4} normalised {:.4}  adds {:.4}",
                    leg.leg.as_str(),
                    leg.normalized,
                    leg.contribution
                )?,
                _ => writeln!(
                    out,
                    "     {:<6} not in its top {:<4} normalised {:.4}  adds {:.4}",
                    leg.leg.as_str(),
                    depth,
                    leg.normalized,
                    leg.contribution
                )?,
            }
        }
    }
    Ok(())
}

/// `eval`'s output.
pub fn eval(
    report: &EvalReport,
    (dataset, split): (&Path, &str),
    query_model: Option<&Path>,
    json: bool,
) -> anyhow::Result<()> {
    if let Some(reason) = &report.degraded {
        degraded_note(reason);
    }
    let scores = &report.scores;
    let mut out = io::stdout().lock();
    if json {
        let mut value = serde_json::json!({
            "ndcg@10": scores.ndcg_at_10,
            "recall@100": scores.recall_at_100,
            "mrr@10": scores.mrr_at_10,
            "queries": scores.queries,
            "mode": report.mode.as_str(),
            "dataset": dataset.display().to_string(),
            "split": split,
            "seconds": report.seconds,
        });
        if let Some(fusion) = &report.fusion {
            value["fusion"] = to_json(fusion)?;
            value["degraded_queries"] = report.degraded_queries.into();
        }
        if let Some(dir) = query_model {
            value["query_model"] = dir.display().to_string().into();
        }
        if let Some(r) = &report.rerank {
            value["rerank"] = to_json(r)?;
        }
        writeln!(out, "{value}")?;
        return Ok(());
    }
    writeln!(out, "dataset     {} ({split})", dataset.display())?;
    writeln!(out, "mode        {}", report.mode.as_str())?;
    if let Some(fusion) = &report.fusion {
        writeln!(out, "fusion      {}", describe(fusion))?;
        if report.degraded_queries > 0 {
            writeln!(
                out,
                "fallback    {} queries answered by the sparse leg only",
                report.degraded_queries
            )?;
        }
    }
    if let Some(dir) = query_model {
        writeln!(out, "queries by  {}", dir.display())?;
    }
    if let Some(r) = &report.rerank {
        writeln!(
            out,
            "rerank      top {} by {} (weight {})",
            r.depth,
            r.model.display(),
            r.weight
        )?;
    }
    writeln!(out, "queries     {}", scores.queries)?;
    writeln!(out, "nDCG@10     {:.4}", scores.ndcg_at_10)?;
    writeln!(out, "Recall@100  {:.4}", scores.recall_at_100)?;
    writeln!(out, "MRR@10      {:.4}", scores.mrr_at_10)?;
    writeln!(out, "time        {:.2} s", report.seconds)?;
    Ok(())
}

/// `tune`'s output: the best `top` rows, then the best row of each other method.
pub fn tune(
    index: &Path,
    (rows, record, seconds): (&[TuneRow], &TuneRecord, f64),
    (top, stored, json): (usize, bool, bool),
) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    if json {
        let table = rows
            .iter()
            .map(|r| {
                Ok(serde_json::json!({
                    "fusion": to_json(&r.options)?,
                    "prf": to_json(&r.prf)?,
                    "ndcg@10": r.scores.ndcg_at_10,
                    "recall@100": r.scores.recall_at_100,
                    "mrr@10": r.scores.mrr_at_10,
                }))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let value = serde_json::json!({
            "tuned": record,
            "stored": stored,
            "seconds": seconds,
            "rows": table,
        });
        writeln!(out, "{value}")?;
        return Ok(());
    }
    writeln!(
        out,
        "{} settings on {} queries of {} ({}) in {seconds:.1} s",
        rows.len(),
        record.queries,
        record.dataset,
        record.split
    )?;
    writeln!(out, "rank  nDCG@10  R@100   MRR@10  prf           fusion")?;
    let line = |out: &mut io::StdoutLock, rank: usize, r: &TuneRow| {
        writeln!(
            out,
            "{rank:>4}  {:.4}   {:.4}  {:.4}  {:<12}  {}",
            r.scores.ndcg_at_10,
            r.scores.recall_at_100,
            r.scores.mrr_at_10,
            describe_prf(&r.prf),
            describe(&r.options)
        )
    };
    for (i, row) in rows.iter().enumerate().take(top) {
        line(&mut out, i + 1, row)?;
    }
    let family = |r: &TuneRow| format!("{} {}", family(&r.options), describe_prf(&r.prf));
    let mut shown: Vec<String> = rows.iter().take(top).map(family).collect();
    for (i, row) in rows.iter().enumerate().skip(top) {
        let f = family(row);
        if !shown.contains(&f) {
            line(&mut out, i + 1, row)?;
            shown.push(f);
        }
    }
    if stored {
        writeln!(
            out,
            "stored in {}: {}, feedback {} (searches without fusion or --prf flags use them)",
            index.display(),
            describe(&rows[0].options),
            describe_prf(&rows[0].prf)
        )?;
    } else {
        writeln!(out, "dry run: {} keeps its settings", index.display())?;
    }
    Ok(())
}

/// Pseudo-relevance feedback in a word: `off`, `rm3`, `rocchio` or `rm3+rocchio`.
fn describe_prf(prf: &hybrid_search::Prf) -> &'static str {
    match (prf.rm3.is_some(), prf.rocchio.is_some()) {
        (false, false) => "off",
        (true, false) => "rm3",
        (false, true) => "rocchio",
        (true, true) => "rm3+rocchio",
    }
}

/// `verify`'s output.
pub fn verify(report: &VerifyReport, dense: bool, json: bool) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(report)?)?;
        return Ok(());
    }
    writeln!(out, "documents   {}", report.documents)?;
    if dense {
        match report.vectors {
            Some(n) => writeln!(out, "vectors     {n} documents")?,
            None => writeln!(out, "vectors     unreadable")?,
        }
        if let Some(n) = report.segments {
            writeln!(out, "segments    {n}")?;
        }
    }
    for note in &report.notes {
        writeln!(out, "note: {note}")?;
    }
    for problem in &report.problems {
        writeln!(out, "problem: {problem}")?;
    }
    if report.is_sound() {
        writeln!(out, "ok: both legs hold the same documents")?;
    }
    Ok(())
}

/// `analyze`'s output: one token per line (term, start byte, end byte, tag).
pub fn tokens(tokens: &[hybrid_search::sparse::AnalyzedToken]) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    for t in tokens {
        match &t.tag {
            Some(tag) => writeln!(out, "{}\t{}\t{}\t{tag}", t.term, t.start, t.end)?,
            None => writeln!(out, "{}\t{}\t{}", t.term, t.start, t.end)?,
        }
    }
    Ok(())
}

/// What a training run (`train-dense`, `train-reranker`) did, printed at the end.
pub struct TrainingSummary<'a> {
    pub kind: &'a str,
    pub layout: Option<&'a str>,
    pub data: &'a DataArgs,
    pub training: &'a TrainingSet,
    /// Hard negatives asked for per query (0 without a collection to mine).
    pub hard_negatives: usize,
    pub report: &'a TrainReport,
    pub seconds: f64,
}

impl TrainingSummary<'_> {
    /// Prints the summary (one JSON object with `--json`).
    pub fn print(&self) -> anyhow::Result<()> {
        let (data, training, report) = (self.data, self.training, self.report);
        let mut out = io::stdout().lock();
        if data.json {
            let mut value = serde_json::json!({
                "kind": self.kind,
                "base": data.base.display().to_string(),
                "out": data.out.display().to_string(),
                "dataset": data.dataset.display().to_string(),
                "split": data.split,
                "examples": training.examples.len(),
                "queries": training.queries,
                "hard_negatives": self.hard_negatives,
                "examples_with_negatives": training.with_negatives,
                "steps": report.steps,
                "epoch_losses": report.epoch_losses,
                "seconds": self.seconds,
                "checkpoints": data
                    .checkpoint_dirs(report.epoch_losses.len())
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>(),
            });
            if let Some(layout) = self.layout {
                value["layout"] = layout.into();
            }
            writeln!(out, "{value}")?;
            return Ok(());
        }
        match self.layout {
            Some(layout) => writeln!(
                out,
                "trained     {} ({}) from {}",
                self.kind,
                if layout == "separate" {
                    "separate query and passage encoders"
                } else {
                    "one encoder for queries and passages"
                },
                data.base.display()
            )?,
            None => writeln!(
                out,
                "trained     {} from {}",
                self.kind,
                data.base.display()
            )?,
        }
        writeln!(
            out,
            "examples    {} from {} queries of {} ({})",
            training.examples.len(),
            training.queries,
            data.dataset.display(),
            data.split
        )?;
        match &data.index {
            Some(index) if self.hard_negatives > 0 => writeln!(
                out,
                "negatives   up to {} per query from {} ({} examples have some)",
                self.hard_negatives,
                index.display(),
                training.with_negatives
            )?,
            _ => writeln!(out, "negatives   in-batch only (no --index)")?,
        }
        for (i, loss) in report.epoch_losses.iter().enumerate() {
            writeln!(out, "epoch {:<5} loss {loss:.4}", i + 1)?;
        }
        writeln!(
            out,
            "time        {:.1} s ({} steps)",
            self.seconds, report.steps
        )?;
        for dir in data.checkpoint_dirs(report.epoch_losses.len()) {
            writeln!(out, "checkpoint  {}", dir.display())?;
        }
        writeln!(out, "saved       {}", data.out.display())?;
        Ok(())
    }
}
