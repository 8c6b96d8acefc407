//! Searching a collection: each leg's ranked ids, their fusion, and hits with titles and
//! snippets.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;

use hybrid_search_dense::{Encoder, TextKind};
use hybrid_search_fusion::{FusedHit, Leg, LegList, LegScore};
use hybrid_search_sparse::{QueryTerms, SparseDoc};

use crate::collection::{DenseLeg, Snapshot};
use crate::dense_leg::{self, DENSE_DIR, Segment};
use crate::error::{Error, Result, Setting};
use crate::legs::{LegFilter, LegQuery, Legs, degrades, sparse_list};
use crate::manifest::{HybridOptions, Mode};
use crate::request::{Resolved, SearchRequest};
use crate::rerank::FirstStage;
use crate::snippet::{marked_terms, snippet_for_terms};

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
    /// The full text, when the request asked for it (`fields` holding `text` or `*`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The fields the request asked for that the document has, as they were given.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub fields: Option<hybrid_search_sparse::Fields>,
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
    /// `Collection::attach_encoder` or `Collection::attach_model`).
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
            Error::NoDenseLeg(..) => Degraded::NoDenseLeg { message },
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

/// The stored documents one request has read, by id: each is read once however many steps
/// (reranking, titles and snippets) need it.
#[derive(Default)]
pub(crate) struct StoredDocs(HashMap<Arc<str>, Option<Arc<SparseDoc>>>);

impl StoredDocs {
    /// The stored document with external id `id` on `snapshot`'s commit.
    pub(crate) fn get(
        &mut self,
        snapshot: &Snapshot,
        id: &Arc<str>,
    ) -> Result<Option<Arc<SparseDoc>>> {
        if let Some(doc) = self.0.get(id) {
            return Ok(doc.clone());
        }
        let doc = snapshot.sparse.get(id)?.map(Arc::new);
        self.0.insert(id.clone(), doc.clone());
        Ok(doc)
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

impl Snapshot {
    /// The attached encoder, if any.
    pub fn encoder(&self) -> Option<&Arc<Encoder>> {
        self.dense.as_ref().and_then(|d| d.encoder.as_ref())
    }

    pub(crate) fn dense_leg(&self) -> Result<(&DenseLeg, &Arc<Encoder>)> {
        let leg = self.dense.as_ref().ok_or_else(|| {
            Error::NoDenseLeg(
                self.dir.clone(),
                "this collection has no dense leg (it was built without a model); a collection \
                 built with one searches by vectors"
                    .into(),
            )
        })?;
        let encoder = leg.encoder.as_ref().ok_or_else(|| {
            Error::NoModel(
                self.dir.clone(),
                "the dense leg needs the model its vectors were made with, and none is attached"
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
            Error::NoDenseLeg(self.dir.clone(), "this collection has no dense leg".into())
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
    ///
    /// With a `filter`, only the documents it matches are searched, before the top `k` is
    /// taken: when it matches at most [`crate::defaults::FILTER_EXACT_MATCHES`] documents,
    /// their vectors are compared with the query one by one (exact); otherwise the graph is
    /// searched with the filter as its predicate, widened by the filter's selectivity, and
    /// searched exactly after all if it found fewer than `min(k, matches)` documents.
    pub(crate) fn dense_search_ids(
        &self,
        vector: &[f32],
        k: usize,
        filter: Option<&LegFilter>,
    ) -> Result<Vec<(Arc<str>, f32)>> {
        let _span = tracing::debug_span!("dense", k).entered();
        let (leg, segments) = self.segments()?;
        let vector = &*self.check_query_vector(vector)?;
        let ids = self.live_ids(leg)?;
        let mut all = Vec::new();
        match filter {
            None => {
                let live = |key: u64| ids.contains_key(&key);
                for segment in segments {
                    all.extend(segment.index.search_filtered(vector, k, &live)?);
                }
            }
            Some(filter) => {
                let keys = filter.keys(self)?;
                let wanted = k.min(keys.len());
                let exact = |all: &mut Vec<(u64, f32)>| -> Result<()> {
                    all.clear();
                    for segment in segments {
                        all.extend(segment.index.search_among(vector, k, keys.sorted())?);
                    }
                    Ok(())
                };
                if wanted == 0 {
                } else if keys.len() <= crate::defaults::FILTER_EXACT_MATCHES {
                    exact(&mut all)?;
                } else {
                    // A graph search keeps `ef` candidates that pass the predicate; with a
                    // share `s` of documents passing, it meets about `ef / s` nodes, so `ef` (at
                    // least the index's own) is widened by 1/s, up to 8x, to keep its recall.
                    let total = ids.len().max(1);
                    let widen = (total / keys.len()).clamp(1, 8);
                    let pass = |key: u64| keys.contains(key);
                    for segment in segments {
                        let ef = k.max(segment.index.settings().expansion_search) * widen;
                        let found = segment.index.search_filtered(vector, ef, &pass)?;
                        all.extend(found.into_iter().take(k));
                    }
                    let distinct: HashSet<u64> = all.iter().map(|(key, _)| *key).collect();
                    if distinct.len() < wanted {
                        exact(&mut all)?;
                    }
                }
            }
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

    /// The top `k` documents for `query` (analysed into `terms`) from `legs`, ranked by the
    /// leg(s) the resolved mode names, with each leg's share of every score. `vector` is the
    /// query's vector when already encoded. In the hybrid mode each leg goes `max(k, depth)`
    /// deep and the lists are fused with the resolved fusion settings, unless the legs fused them themselves ([`LegLists::fused`]: their order
    /// and scores are kept, and their fusion reported).
    ///
    /// A hybrid search whose dense leg fails (no model attached, damaged vectors, an encoder
    /// error, a score that is not a finite number) is answered by the sparse leg alone, and says why in
    /// [`SearchResults::degraded`]; a dense search fails instead.
    pub(crate) fn rank_with(
        &self,
        legs: &dyn Legs,
        query: &str,
        terms: &QueryTerms,
        vector: Option<&[f32]>,
        k: usize,
        resolved: &Resolved,
    ) -> Result<Ranked> {
        let (mode, options) = (resolved.mode, &resolved.hybrid);
        let filter = resolved.filter.as_deref();
        // Pseudo-relevance feedback (`crate::prf`): a first pass of each leg that uses it
        // rewrites that leg's query; snippets keep the query's own terms.
        let expanded;
        let terms = match resolved.prf.rm3 {
            Some(rm3) if mode != Mode::Dense => {
                expanded = self.rm3_expanded(legs, query, terms, filter, &rm3)?;
                &expanded
            }
            _ => terms,
        };
        let query_vector = || -> Result<Vec<f32>> {
            let v = match vector {
                Some(v) => self.check_query_vector(v)?.into_owned(),
                None => self.encode_queries(&[query]).map(|mut v| v.remove(0))?,
            };
            match resolved.prf.rocchio {
                Some(rocchio) => self.rocchio_moved(legs, query, &v, filter, &rocchio),
                None => Ok(v),
            }
        };
        // Why the dense leg took no part, when `err` leaves a hybrid search to BM25.
        let reason = |err: Error| -> Result<Degraded> {
            if !degrades(&err) {
                return Err(err);
            }
            Ok(match (&self.model_problem, &err) {
                // The model that failed to load explains the missing encoder.
                (Some(problem), Error::NoModel(..)) => problem.clone(),
                _ => Degraded::of(&err, self.manifest.dense.is_some()),
            })
        };
        let (hits, degraded, fusion) = match mode {
            Mode::Sparse => {
                let asked = LegQuery::sparse(query, k)
                    .with_terms(terms)
                    .with_filter(resolved.filter.as_deref());
                let lists = legs.search(self, &asked)?;
                (single_leg(Leg::Sparse, lists.sparse), None, None)
            }
            Mode::Dense => {
                let v = query_vector()?;
                let asked = LegQuery::dense(query, &v, k)
                    .with_terms(terms)
                    .with_filter(resolved.filter.as_deref());
                let lists = legs.search(self, &asked)?;
                (single_leg(Leg::Dense, lists.dense?), None, None)
            }
            Mode::Hybrid => {
                let depth = self.leg_depth(options.depth, k);
                let (v, mut degraded) = match query_vector() {
                    Ok(v) => (Some(v), None),
                    Err(err) => (None, Some(reason(err)?)),
                };
                let asked = LegQuery::hybrid(query, v.as_deref(), depth, k)
                    .with_terms(terms)
                    .with_filter(resolved.filter.as_deref());
                let lists = legs.search(self, &asked)?;
                let dense = match lists.dense.and_then(finite_scores) {
                    Ok(dense) => dense,
                    Err(err) => {
                        degraded = Some(reason(err)?);
                        Vec::new()
                    }
                };
                let _fuse = tracing::debug_span!("fuse", depth).entered();
                let (mut fused, fusion) = match lists.fused {
                    Some(backend) if degraded.is_none() => (backend.hits, backend.fusion),
                    _ => (
                        options
                            .fusion
                            .fuse_lists(sparse_list(&lists.sparse, depth), LegList::new(&dense))?,
                        *options,
                    ),
                };
                fused.truncate(k);
                // Kept when a hybrid search fell back: the hits' legs were fused with them.
                (fused, degraded, Some(fusion))
            }
        };
        Ok(SearchResults {
            mode: if degraded.is_some() {
                Mode::Sparse
            } else {
                mode
            },
            degraded,
            fusion,
            rerank: None,
            hits,
        })
    }

    /// Checks a query vector against the collection's dense leg and returns it as the leg
    /// compares it (`dense_leg::check_supplied`: unit length under cosine similarity): a wrong
    /// length, a value that is not finite or a zero vector is [`Error::InvalidRequest`] of
    /// [`Setting::Vector`].
    fn check_query_vector<'v>(&self, vector: &'v [f32]) -> Result<std::borrow::Cow<'v, [f32]>> {
        match &self.manifest.dense {
            Some(m) => dense_leg::check_supplied("", vector, &m.vectors).map_err(|e| match e {
                Error::InvalidVector { message, .. }
                | Error::InvalidVectorValues { message, .. } => Error::InvalidRequest {
                    setting: Setting::Vector,
                    problem: format!("cannot be used: {message}"),
                },
                e => e,
            }),
            None => Ok(std::borrow::Cow::Borrowed(vector)),
        }
    }

    /// The top `k` documents as (external id, BM25 score) for a query already analysed
    /// ([`Bm25Index::query_terms`](hybrid_search_sparse::Bm25Index::query_terms)), ranked. Ids
    /// are shared, not copied.
    ///
    /// # Errors
    ///
    /// [`Error::Sparse`] when BM25 fails.
    pub(crate) fn search_ids(
        &self,
        query: &QueryTerms,
        k: usize,
        filter: Option<&LegFilter>,
    ) -> Result<Vec<(Arc<str>, f32)>> {
        let _span = tracing::debug_span!("bm25", k).entered();
        Ok(self
            .sparse
            .search_terms_filtered(query, k, filter.map(|f| &f.query))?
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
    pub(crate) fn hits(
        &self,
        query: &QueryTerms,
        ranked: Vec<FusedHit<Arc<str>>>,
        wanted_fields: &crate::request::FieldSelection,
        docs: &mut StoredDocs,
    ) -> Result<Vec<Hit>> {
        let _span = tracing::debug_span!("fetch", hits = ranked.len()).entered();
        let analyzer = self.sparse.analyzer();
        let wanted = marked_terms(&query.terms);
        let mut hits = Vec::new();
        for fused in ranked {
            let doc = docs.get(self, &fused.id)?;
            let (title, snippet) = match &doc {
                Some(d) => (
                    d.title.clone(),
                    snippet_for_terms(analyzer, &wanted, &d.text, 240),
                ),
                None => Default::default(),
            };
            hits.push(Hit {
                id: fused.id.to_string(),
                title,
                snippet,
                text: wanted_fields
                    .text()
                    .then(|| doc.as_ref().map(|d| d.text.clone()).unwrap_or_default()),
                fields: doc.as_ref().and_then(|d| wanted_fields.pick(&d.fields)),
                score: fused.score,
                legs: fused.legs,
                first_stage: None,
            });
        }
        Ok(hits)
    }
}

/// The dense leg's list, or an error naming the first document whose score is not a finite
/// number (a stored vector that cannot be compared: one written before vectors were checked),
/// so a hybrid search falls back to BM25 and says why instead of failing in fusion.
fn finite_scores(list: crate::legs::IdList) -> Result<crate::legs::IdList> {
    match list.iter().find(|(_, score)| !score.is_finite()) {
        None => Ok(list),
        Some((id, score)) => Err(Error::InvalidVector {
            id: id.to_string(),
            message: format!(
                "it scored {score} against the query, so its stored vector cannot be compared \
                 (a vector stored before vectors were checked); add the document again"
            ),
        }),
    }
}
