//! Evaluating a search setting on a labelled dataset: every query of the split run as one
//! [`SearchRequest`] (the request template with the query's text), scored with nDCG@10,
//! Recall@100 and MRR@10 as `trec_eval` computes them. `hybrid-search eval` uses it and `tune`
//! its batched query vectors; each query runs through `Snapshot::run_ranked`, so an
//! evaluated search is the search a user runs, only deeper.

use std::time::Instant;

use rayon::prelude::*;

use hybrid_search_dense::{Encoder, TextKind};
use hybrid_search_eval::metrics::{self, Run, Scores};
use hybrid_search_eval::{Dataset, Query};

use crate::collection::Snapshot;
use crate::defaults::{EVAL_DEPTH_FUSED_MIN, EVAL_DEPTH_ONE_LEG, QUERY_BATCH};
use crate::error::{Error, Result};
use crate::manifest::{HybridOptions, Mode};
use crate::request::{Resolved, SearchRequest};
use crate::search::{Degraded, RerankInfo, StoredDocs};

/// What an evaluation is doing, for progress bars: encoding the queries, then searching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalStage {
    /// Query vectors, [`QUERY_BATCH`] per forward pass.
    Encoding,
    /// One search per query (in parallel).
    Searching,
}

/// The result of [`evaluate`].
#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    /// Mean nDCG@10, Recall@100, MRR@10 over the judged queries.
    pub scores: Scores,
    /// Each query's ranked list, as written to a TREC run file. Reranked lists carry
    /// rank-derived scores (`n - rank`), since reranked and first-stage scores do not share
    /// a scale.
    pub run: Run,
    /// The mode asked for.
    pub mode: Mode,
    /// The fusion settings (hybrid mode only).
    pub fusion: Option<HybridOptions>,
    /// The reranking, when asked.
    pub rerank: Option<RerankInfo>,
    /// Documents ranked per query: [`EVAL_DEPTH_ONE_LEG`] with one leg, `max(depth,
    /// `[`EVAL_DEPTH_FUSED_MIN`]`)` fused.
    pub depth: usize,
    /// Queries a hybrid search answered with BM25 alone.
    pub degraded_queries: usize,
    /// Why, for the first of them.
    pub degraded: Option<Degraded>,
    /// Wall-clock seconds, query encoding included.
    pub seconds: f64,
}

/// Query vectors for `queries`, [`QUERY_BATCH`] per forward pass, with `encoder` (a separate
/// query encoder) or else the collection's model; `on_batch(done)` runs after each batch.
///
/// # Errors
///
/// [`Error::NoModel`] without an encoder, [`Error::Dense`] when encoding fails.
pub fn query_vectors(
    collection: &Snapshot,
    encoder: Option<&Encoder>,
    queries: &[&str],
    on_batch: &dyn Fn(usize),
) -> Result<Vec<Vec<f32>>> {
    let _span = tracing::debug_span!("encode_queries", queries = queries.len()).entered();
    let mut vectors = Vec::with_capacity(queries.len());
    for chunk in queries.chunks(QUERY_BATCH) {
        vectors.extend(match encoder {
            Some(e) => e.encode(chunk, TextKind::Query, QUERY_BATCH)?,
            None => collection.encode_queries(chunk)?,
        });
        on_batch(vectors.len());
    }
    Ok(vectors)
}

/// Runs `template` (its query text replaced) for every query of `dataset` and scores the runs
/// against its judgements. The queries are encoded first, in batches, then searched in
/// parallel; each ranks [`EvalReport::depth`] documents (`template.k` is not used). A hybrid
/// template on a collection whose model is missing answers with BM25 and counts the queries
/// in [`EvalReport::degraded_queries`]. `progress(stage, done, total)` reports both stages.
///
/// # Errors
///
/// [`Error::InvalidOption`] when the dataset has no judged query, and the errors of
/// [`Snapshot::resolve`], [`query_vectors`] and `Snapshot::run_ranked`.
pub fn evaluate(
    collection: &Snapshot,
    dataset: &Dataset,
    template: &SearchRequest,
    progress: &(dyn Fn(EvalStage, usize, usize) + Sync),
) -> Result<EvalReport> {
    let _span = tracing::info_span!("evaluate", queries = dataset.queries.len()).entered();
    if dataset.queries.is_empty() {
        return Err(Error::InvalidOption(
            "the dataset has no queries with judgements in this split".into(),
        ));
    }
    let resolved: Resolved = collection.resolve(template)?;
    let depth = match resolved.mode {
        Mode::Hybrid => collection.leg_depth(resolved.hybrid.depth, EVAL_DEPTH_FUSED_MIN),
        _ => EVAL_DEPTH_ONE_LEG,
    };
    let started = Instant::now();
    let texts: Vec<&str> = dataset.queries.iter().map(|q| q.text.as_str()).collect();
    let total = texts.len();
    // The collection encodes its queries only when it can: a hybrid search without its model
    // falls back per query (and says why).
    let encodable = template.query_encoder.is_some() || collection.encoder().is_some();
    let vectors = match resolved.mode {
        Mode::Dense | Mode::Hybrid if encodable => Some(query_vectors(
            collection,
            template.query_encoder.as_deref(),
            &texts,
            &|done| progress(EvalStage::Encoding, done, total),
        )?),
        _ => None,
    };
    let done = std::sync::atomic::AtomicUsize::new(0);
    type One = (
        String,
        Vec<(String, f32)>,
        Option<Degraded>,
        Option<RerankInfo>,
    );
    let results: Vec<One> = dataset
        .queries
        .par_iter()
        .enumerate()
        .map(|(i, q): (usize, &Query)| {
            let request = SearchRequest {
                query: q.text.clone(),
                ..template.clone()
            };
            let vector = vectors.as_ref().map(|v| v[i].as_slice());
            let mut docs = StoredDocs::default();
            let terms = collection.query_terms(&q.text, resolved.mode)?;
            let (ranked, _) =
                collection.run_ranked(&request, &resolved, &terms, vector, depth, &mut docs)?;
            let n = ranked.hits.len();
            let reranked = ranked.rerank.is_some();
            let hits = ranked.hits.into_iter().enumerate().map(|(rank, h)| {
                let score = if reranked {
                    (n - rank) as f32
                } else {
                    h.score as f32
                };
                (h.id.to_string(), score)
            });
            let finished = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            progress(EvalStage::Searching, finished, total);
            Ok((q.id.clone(), hits.collect(), ranked.degraded, ranked.rerank))
        })
        .collect::<Result<_>>()?;
    let seconds = started.elapsed().as_secs_f64();
    let degraded_queries = results.iter().filter(|r| r.2.is_some()).count();
    let degraded = results.iter().find_map(|r| r.2.clone());
    let rerank = results.iter().find_map(|r| r.3.clone());
    let run: Run = results.into_iter().map(|(q, h, _, _)| (q, h)).collect();
    let (scores, _) = metrics::evaluate(&dataset.qrels, &run);
    Ok(EvalReport {
        scores,
        run,
        mode: resolved.mode,
        fusion: (resolved.mode == Mode::Hybrid).then_some(resolved.hybrid),
        rerank,
        depth,
        degraded_queries,
        degraded,
        seconds,
    })
}
