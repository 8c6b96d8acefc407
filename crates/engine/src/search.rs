//! Searching a collection: each leg's ranked ids, their fusion, and hits with titles and
//! snippets.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;

use hybrid_search_dense::{Encoder, TextKind};
use hybrid_search_fusion::{
    ConvexSettings, FusedHit, Fusion, Leg, LegList, LegScore, Normalization, RrfSettings,
};

use crate::collection::{DenseLeg, Snapshot};
use crate::dense_leg::{self, DENSE_DIR, Segment};
use crate::error::{Error, Result, Setting};
use crate::manifest::{HybridOptions, Mode};
use crate::remote::{RemoteLegs, ServerFusion};
use crate::request::SearchRequest;
use crate::rerank::FirstStage;
use crate::snippet::{query_terms, snippet_for_terms};

/// One search result.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// External document id.
    pub id: String,
    /// Title.
    pub title: String,
    /// The best-matching stretch of the text, matches marked with `**`.
    pub snippet: String,
    /// The score: BM25 (sparse), cosine similarity (dense) or the fused score (hybrid).
    pub score: f64,
    /// What each leg gave the document: raw score, rank, normalised score, contribution
    /// (left out of JSON when empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub legs: Vec<LegScore>,
    /// Where a reranked hit stood before the cross-encoder, and its logit (with `explain`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_stage: Option<FirstStage>,
}

/// A ranked result list and how it was made.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchResults<H = Hit> {
    /// The mode that answered: [`Mode::Sparse`] when a hybrid search fell back.
    pub mode: Mode,
    /// Why the dense leg took no part, when a hybrid search fell back to the sparse leg.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degraded: Option<Degraded>,
    /// The fusion settings that blended the legs (hybrid mode only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fusion: Option<HybridOptions>,
    /// The cross-encoder that reordered the top hits, and how.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerank: Option<RerankInfo>,
    /// The results, best first.
    pub hits: Vec<H>,
}

/// Why a hybrid search was answered by the sparse leg alone. Serialised as
/// `{"reason": "model_unavailable", "message": "..."}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Degraded {
    /// The collection's model was not named and could not be found or loaded.
    ModelUnavailable {
        /// What went wrong, with where the model was looked for.
        message: String,
    },
    /// The collection was built without a dense leg.
    NoDenseLeg {
        /// What to do.
        message: String,
    },
    /// No encoder is attached to the collection (library use without
    /// [`Collection::attach_encoder`](crate::Collection::attach_encoder) or [`Collection::attach_model`](crate::Collection::attach_model)).
    NoEncoder {
        /// What to do.
        message: String,
    },
    /// The vector segments of the last commit are missing or damaged (`hybrid-search
    /// repair` rebuilds them).
    VectorsDamaged {
        /// What is damaged.
        message: String,
    },
    /// Encoding the query or searching the vectors failed.
    DenseFailed {
        /// The error.
        message: String,
    },
}

impl Degraded {
    /// The explanation, for a person.
    pub fn message(&self) -> &str {
        match self {
            Degraded::ModelUnavailable { message }
            | Degraded::NoDenseLeg { message }
            | Degraded::NoEncoder { message }
            | Degraded::VectorsDamaged { message }
            | Degraded::DenseFailed { message } => message,
        }
    }

    /// The reason a dense-leg error gives (`dense`: whether the collection has a dense leg).
    pub(crate) fn of(err: &Error, dense: bool) -> Self {
        let message = err.to_string();
        match err {
            Error::NoModel(..) if !dense => Degraded::NoDenseLeg { message },
            Error::NoModel(..) => Degraded::NoEncoder { message },
            Error::DenseDamaged { .. } => Degraded::VectorsDamaged { message },
            _ => Degraded::DenseFailed { message },
        }
    }
}

impl std::fmt::Display for Degraded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// The reranking of a result list, as reported with it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RerankInfo {
    /// The cross-encoder's directory.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub model: std::path::PathBuf,
    /// Hits it reordered at most.
    pub depth: usize,
    /// Its weight against the first stage.
    pub weight: f64,
}

/// Ranked ids with every leg's share of the score, before titles and snippets are fetched.
pub type Ranked = SearchResults<FusedHit<Arc<str>>>;

/// The sparse leg's list for fusion: when BM25 returned fewer documents than `depth`, it
/// returned every document that matches the query, so every other one scored 0.
pub(crate) fn sparse_list(hits: &[(Arc<str>, f32)], depth: usize) -> LegList<'_, Arc<str>> {
    LegList {
        hits,
        absent: (hits.len() < depth).then_some(0.0),
    }
}

/// A one-leg list in the fused shape: the leg's score is the hit's score.
pub(crate) fn single_leg(leg: Leg, list: Vec<(Arc<str>, f32)>) -> Vec<FusedHit<Arc<str>>> {
    list.into_iter()
        .enumerate()
        .map(|(i, (id, score))| FusedHit {
            id,
            score: f64::from(score),
            legs: vec![LegScore {
                leg,
                found: true,
                rank: Some(i + 1),
                raw_score: Some(score),
                normalized: f64::from(score),
                contribution: f64::from(score),
            }],
        })
        .collect()
}

/// The engine's fusion nearest to what `server` computes, reported as the search's fusion:
/// RRF with `k` = 60 and equal weights (the same formula, ties aside); for DBSF a convex
/// combination with `alpha` = 0.5 of DBSF-normalised scores, which differs from Qdrant's in
/// clipping and in a missing document's score (the hits are explained by [`qdrant_dbsf`]).
fn equivalent_fusion(server: ServerFusion) -> Fusion {
    match server {
        ServerFusion::Rrf => Fusion::Rrf(RrfSettings::default()),
        ServerFusion::Dbsf => Fusion::Convex(ConvexSettings {
            alpha: 0.5,
            dense: Normalization::Dbsf,
            sparse: Normalization::Dbsf,
        }),
    }
}

/// Qdrant's distribution-based score fusion, as Qdrant 1.19 computes it
/// (`lib/segment/src/common/score_fusion.rs`): each list's scores become
/// `(s - (mean - 3 std)) / (6 std)` with the sample standard deviation, not clipped (a list of
/// one score, or of equal scores, gives 0.5), and a document's fused score is the sum over the
/// lists that returned it (a missing document adds 0). Ties by id. Source: M. Mazzeschi,
/// "Distribution-based Score Fusion (DBSF)", 2023.
pub(crate) fn qdrant_dbsf(
    sparse: &[(Arc<str>, f32)],
    dense: &[(Arc<str>, f32)],
) -> Vec<FusedHit<Arc<str>>> {
    let normalise = |list: &[(Arc<str>, f32)]| -> Vec<f64> {
        let n = list.len() as f64;
        let mean = list.iter().map(|(_, s)| f64::from(*s)).sum::<f64>() / n;
        let var = list
            .iter()
            .map(|(_, s)| (f64::from(*s) - mean).powi(2))
            .sum::<f64>()
            / (n - 1.0);
        let (lo, width) = (mean - 3.0 * var.sqrt(), 6.0 * var.sqrt());
        list.iter()
            .map(|(_, s)| {
                if list.len() < 2 || width == 0.0 {
                    0.5
                } else {
                    (f64::from(*s) - lo) / width
                }
            })
            .collect()
    };
    let mut by_id: HashMap<Arc<str>, FusedHit<Arc<str>>> = HashMap::new();
    for (leg, list) in [(Leg::Sparse, sparse), (Leg::Dense, dense)] {
        for (rank, ((id, raw), norm)) in list.iter().zip(normalise(list)).enumerate() {
            let hit = by_id.entry(id.clone()).or_insert_with(|| FusedHit {
                id: id.clone(),
                score: 0.0,
                legs: Vec::new(),
            });
            hit.score += norm;
            hit.legs.push(LegScore {
                leg,
                found: true,
                rank: Some(rank + 1),
                raw_score: Some(*raw),
                normalized: norm,
                contribution: norm,
            });
        }
    }
    let mut hits: Vec<_> = by_id.into_values().collect();
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
    hits
}

/// `server`'s ranking and scores, each hit with its legs from `explained` (the engine's
/// equivalent fusion of the same lists).
fn in_server_order(
    explained: Vec<FusedHit<Arc<str>>>,
    server: Vec<(Arc<str>, f32)>,
) -> Vec<FusedHit<Arc<str>>> {
    let mut legs: HashMap<Arc<str>, Vec<LegScore>> =
        explained.into_iter().map(|h| (h.id, h.legs)).collect();
    server
        .into_iter()
        .map(|(id, score)| FusedHit {
            legs: legs.remove(&id).unwrap_or_default(),
            id,
            score: f64::from(score),
        })
        .collect()
}

impl Snapshot {
    /// The attached encoder, if any.
    pub fn encoder(&self) -> Option<&Arc<Encoder>> {
        self.dense.as_ref().and_then(|d| d.encoder.as_ref())
    }

    pub(crate) fn dense_leg(&self) -> Result<(&DenseLeg, &Arc<Encoder>)> {
        let leg = self.dense.as_ref().ok_or_else(|| {
            Error::NoModel(
                self.dir.clone(),
                "this collection has no dense leg; build it with `hybrid-search index --model DIR`"
                    .into(),
            )
        })?;
        let encoder = leg.encoder.as_ref().ok_or_else(|| {
            Error::NoModel(
                self.dir.clone(),
                "the dense leg needs the model its vectors were made with; pass --model DIR \
                 (or attach_encoder in the library)"
                    .into(),
            )
        })?;
        Ok((leg, encoder))
    }

    /// Query vectors for `queries`, batched.
    ///
    /// # Errors
    ///
    /// [`Error::NoModel`] without a dense leg or an attached encoder; [`Error::Dense`] when
    /// encoding fails.
    pub(crate) fn encode_queries(&self, queries: &[&str]) -> Result<Vec<Vec<f32>>> {
        let _span = tracing::debug_span!("encode", queries = queries.len()).entered();
        let (_, encoder) = self.dense_leg()?;
        Ok(encoder.encode(queries, TextKind::Query, crate::defaults::QUERY_BATCH)?)
    }

    /// The loaded segments, or why they cannot be used.
    pub(crate) fn segments(&self) -> Result<(&DenseLeg, &[Arc<Segment>])> {
        let leg = self.dense.as_ref().ok_or_else(|| {
            Error::NoModel(self.dir.clone(), "this collection has no dense leg".into())
        })?;
        let damaged = |message: &String| Error::DenseDamaged {
            collection: self.dir.clone(),
            message: message.clone(),
        };
        if let Some(message) = &leg.damage {
            return Err(damaged(message));
        }
        if leg.segments.get().is_none() {
            let manifest = self
                .manifest
                .dense
                .as_ref()
                .expect("a dense leg has a manifest");
            let mut opened = Vec::with_capacity(self.record.segments.len());
            for s in &self.record.segments {
                if let Some(open) = leg.known.get(&s.file) {
                    opened.push(open.clone());
                    continue;
                }
                match dense_leg::open_segment(&self.dir, manifest, &s.file, &self.sparse) {
                    Ok(index) => opened.push(Arc::new(Segment {
                        file: s.file.clone(),
                        index,
                    })),
                    // Present at reload, gone now: later commits of another process merged it
                    // away. Not damage, and not remembered: a reload sees the new segments.
                    Err(_) if !self.dir.join(DENSE_DIR).join(&s.file).exists() => {
                        return Err(Error::Commit {
                            path: self.dir.clone(),
                            message: format!(
                                "vector segment {} was merged away by a newer commit since this \
                                 collection was opened; reload it (open it again)",
                                s.file
                            ),
                        });
                    }
                    Err(e) => {
                        let _ = leg.segments.set(Err(e.to_string()));
                        break;
                    }
                }
            }
            let _ = leg.segments.set(Ok(opened));
        }
        let opened = leg.segments.get().expect("set above");
        match opened {
            Ok(s) => Ok((leg, s.as_slice())),
            Err(message) => Err(damaged(message)),
        }
    }

    /// The key -> id map of the live documents, read from the sparse leg once per commit seen.
    pub(crate) fn live_ids(&self, leg: &DenseLeg) -> Result<Arc<HashMap<u64, Arc<str>>>> {
        if let Some(ids) = leg.ids.get() {
            return Ok(ids.clone());
        }
        let ids: Arc<HashMap<u64, Arc<str>>> =
            Arc::new(self.sparse.live_keys()?.into_iter().collect());
        Ok(leg.ids.get_or_init(|| ids).clone())
    }

    /// The top `k` documents for a query vector as (external id, cosine similarity): each
    /// segment's top `k` among live documents, merged.
    ///
    /// # Errors
    ///
    /// [`Error::NoModel`] without a dense leg; [`Error::DenseDamaged`] when the segments cannot
    /// be read; [`Error::InvalidRequest`] for a vector of the wrong length or with a non-finite
    /// value.
    pub fn dense_search_ids(&self, vector: &[f32], k: usize) -> Result<Vec<(Arc<str>, f32)>> {
        let _span = tracing::debug_span!("dense", k).entered();
        let (leg, segments) = self.segments()?;
        self.check_query_vector(vector)?;
        let ids = self.live_ids(leg)?;
        let live = |key: u64| ids.contains_key(&key);
        let mut all = Vec::new();
        for segment in segments {
            all.extend(segment.index.search_filtered(vector, k, &live)?);
        }
        all.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut seen = HashSet::with_capacity(k);
        Ok(all
            .into_iter()
            .filter(|(key, _)| seen.insert(*key))
            .take(k)
            .filter_map(|(key, score)| ids.get(&key).map(|id| (id.clone(), score)))
            .collect())
    }

    /// The mode a search uses when the caller does not choose: hybrid for a collection with a
    /// dense leg, sparse otherwise.
    pub fn default_mode(&self) -> Mode {
        if self.manifest.dense.is_some() {
            Mode::Hybrid
        } else {
            Mode::Sparse
        }
    }

    /// The hybrid settings a search uses when the caller does not choose: the collection's
    /// tuned ones ([`Collection::set_search_defaults`](crate::Collection::set_search_defaults)), else [`HybridOptions::default`].
    pub fn hybrid_options(&self) -> HybridOptions {
        self.manifest
            .search
            .as_ref()
            .map(|s| s.hybrid)
            .unwrap_or_default()
    }

    /// The top `k` documents for `query`, ranked by the leg(s) `mode` names, with each leg's
    /// share of every score. `vector` is the query's vector when already encoded.
    ///
    /// A hybrid search whose dense leg fails (no model attached, damaged vectors, an encoder
    /// error) is answered by the sparse leg alone, and says why in
    /// [`SearchResults::degraded`]; a dense search fails instead.
    ///
    /// # Errors
    ///
    /// [`Error::NoModel`] or [`Error::DenseDamaged`] for a dense search without a usable
    /// dense leg, [`Error::InvalidRequest`] for a query vector of the wrong length,
    /// [`Error::Fusion`] for invalid fusion settings, [`Error::Sparse`] when BM25 fails.
    pub fn rank(
        &self,
        query: &str,
        vector: Option<&[f32]>,
        k: usize,
        mode: Mode,
        options: &HybridOptions,
    ) -> Result<Ranked> {
        self.rank_on(None, query, vector, k, mode, options)
    }

    /// [`Snapshot::rank`] with the legs answered by `remote` when given (a Qdrant cluster
    /// holding this collection's points): the query is analysed, weighed with this
    /// collection's BM25 statistics and encoded here, and the lists are fused here with
    /// `options`, or by the remote side when it fuses itself ([`RemoteLegs::server_fusion`]:
    /// the hits keep the server's order and scores, each leg's share computed by RRF with
    /// `k` = 60 or by Qdrant's DBSF formula, `qdrant_dbsf` in this module).
    ///
    /// # Errors
    ///
    /// Those of [`Snapshot::rank`], and [`Error::Remote`] when the remote side fails.
    pub fn rank_on(
        &self,
        remote: Option<&dyn RemoteLegs>,
        query: &str,
        vector: Option<&[f32]>,
        k: usize,
        mode: Mode,
        options: &HybridOptions,
    ) -> Result<Ranked> {
        let query_vector = || -> Result<Vec<f32>> {
            let v = match vector {
                Some(v) => v.to_vec(),
                None => self.encode_queries(&[query])?.remove(0),
            };
            self.check_query_vector(&v)?;
            Ok(v)
        };
        let dense_list = |depth: usize| -> Result<Vec<(Arc<str>, f32)>> {
            let v = query_vector()?;
            match remote {
                Some(r) => Ok(r.search(None, Some(&v), depth, None)?.dense),
                None => self.dense_search_ids(&v, depth),
            }
        };
        let sparse_list_of = |depth: usize| -> Result<Vec<(Arc<str>, f32)>> {
            match remote {
                Some(r) => Ok(r
                    .search(Some(&self.query_sparse_vector(query)?), None, depth, None)?
                    .sparse),
                None => self.search_ids(query, depth),
            }
        };
        let asked = mode;
        let mut fusion_used = *options;
        let (mode, degraded, hits) = match mode {
            Mode::Sparse => (mode, None, single_leg(Leg::Sparse, sparse_list_of(k)?)),
            Mode::Dense => (mode, None, single_leg(Leg::Dense, dense_list(k)?)),
            Mode::Hybrid => {
                let depth = options.depth.max(k);
                let degrade = |err: Error| -> Result<(Mode, Option<Degraded>)> {
                    match err {
                        // A query vector that does not fit is the caller's mistake, not a leg
                        // that cannot answer: refused as in the dense mode. A remote side
                        // that fails is not a missing leg either.
                        err @ (Error::InvalidRequest { .. } | Error::Remote { .. }) => Err(err),
                        err => {
                            let reason = match (&self.model_problem, &err) {
                                // The model that failed to load explains the missing encoder.
                                (Some(problem), Error::NoModel(..)) => problem.clone(),
                                _ => Degraded::of(&err, self.manifest.dense.is_some()),
                            };
                            Ok((Mode::Sparse, Some(reason)))
                        }
                    }
                };
                match remote {
                    None => {
                        let sparse = self.search_ids(query, depth)?;
                        let (mode, degraded, dense) = match dense_list(depth) {
                            Ok(dense) => (Mode::Hybrid, None, dense),
                            Err(err) => {
                                let (mode, reason) = degrade(err)?;
                                (mode, reason, Vec::new())
                            }
                        };
                        let _fuse = tracing::debug_span!("fuse", depth).entered();
                        let mut fused = options
                            .fusion
                            .fuse_lists(sparse_list(&sparse, depth), LegList::new(&dense))?;
                        fused.truncate(k);
                        (mode, degraded, fused)
                    }
                    Some(r) => {
                        let sparse_vector = self.query_sparse_vector(query)?;
                        let (mode, degraded, dense) = match query_vector() {
                            Ok(v) => (Mode::Hybrid, None, Some(v)),
                            Err(err) => {
                                let (mode, reason) = degrade(err)?;
                                (mode, reason, None)
                            }
                        };
                        let server = r.server_fusion().filter(|_| dense.is_some());
                        let lists = r.search(
                            Some(&sparse_vector),
                            dense.as_deref(),
                            depth,
                            server.map(|_| k),
                        )?;
                        if let Some(server) = server {
                            fusion_used = HybridOptions {
                                fusion: equivalent_fusion(server),
                                depth,
                            };
                        }
                        let mut fused = match server {
                            Some(ServerFusion::Dbsf) => qdrant_dbsf(&lists.sparse, &lists.dense),
                            _ => fusion_used.fusion.fuse_lists(
                                sparse_list(&lists.sparse, depth),
                                LegList::new(&lists.dense),
                            )?,
                        };
                        if let Some(server_list) = lists.fused {
                            fused = in_server_order(fused, server_list);
                        }
                        fused.truncate(k);
                        (mode, degraded, fused)
                    }
                }
            }
        };
        Ok(SearchResults {
            mode,
            degraded,
            // Kept when a hybrid search fell back: the hits' legs were fused with them.
            fusion: (asked == Mode::Hybrid).then_some(fusion_used),
            rerank: None,
            hits,
        })
    }

    /// Checks a query vector against the collection's dimension: a wrong length or a value
    /// that is not finite is [`Error::InvalidRequest`] of [`Setting::Vector`].
    fn check_query_vector(&self, vector: &[f32]) -> Result<()> {
        if let Some(m) = &self.manifest.dense {
            dense_leg::check_supplied("", vector, m.vectors.dim).map_err(|e| match e {
                Error::InvalidVector { message, .. } => Error::InvalidRequest {
                    setting: Setting::Vector,
                    problem: format!("cannot be used: {message}"),
                },
                e => e,
            })?;
        }
        Ok(())
    }

    /// The top `k` documents as (external id, BM25 score), ranked. Ids are shared, not copied.
    ///
    /// # Errors
    ///
    /// [`Error::Sparse`] when the query cannot be analysed or BM25 fails.
    pub fn search_ids(&self, query: &str, k: usize) -> Result<Vec<(Arc<str>, f32)>> {
        let _span = tracing::debug_span!("bm25", k).entered();
        Ok(self
            .sparse
            .search(query, k)?
            .into_iter()
            .map(|h| (h.id, h.score))
            .collect())
    }

    /// The top `k` documents with title and snippet, in the collection's default mode and
    /// fusion settings ([`Snapshot::default_mode`], [`Snapshot::hybrid_options`]).
    ///
    /// # Errors
    ///
    /// Those of [`Snapshot::run`].
    pub fn search(&self, query: &str, k: usize) -> Result<SearchResults> {
        self.run(&SearchRequest::new(query, k).with_explain(true))
    }

    /// Ranked hits of `query` ([`Snapshot::rank`], possibly reranked) with title and
    /// snippet.
    ///
    /// # Errors
    ///
    /// [`Error::Sparse`] when a stored document cannot be read.
    pub(crate) fn hits(&self, query: &str, ranked: Vec<FusedHit<Arc<str>>>) -> Result<Vec<Hit>> {
        let _span = tracing::debug_span!("fetch", hits = ranked.len()).entered();
        let analyzer = self.sparse.analyzer();
        let wanted = query_terms(analyzer, query);
        let mut hits = Vec::new();
        for fused in ranked {
            let doc = self.sparse.get(&fused.id)?;
            let (title, text) = doc.map(|d| (d.title, d.text)).unwrap_or_default();
            let snippet = snippet_for_terms(analyzer, &wanted, &text, 240);
            hits.push(Hit {
                id: fused.id.to_string(),
                title,
                snippet,
                score: fused.score,
                legs: fused.legs,
                first_stage: None,
            });
        }
        Ok(hits)
    }
}
