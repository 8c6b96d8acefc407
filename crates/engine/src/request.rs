//! One search request, run whole by the engine: query text or vector, `k`, mode, fusion
//! overrides, an optional separate query encoder, an optional cross-encoder, explain. The CLI
//! and the benchmarks go through [`Snapshot::run`], evaluation through its ranked half
//! (`Snapshot::run_ranked`), so a search is the same wherever it comes from.

use std::sync::Arc;

use rayon::prelude::*;

use hybrid_search_dense::{CrossEncoder, Encoder};
use hybrid_search_fusion::{ConvexSettings, Fusion, Normalization, RrfSettings};
use hybrid_search_sparse::{Fields, Filter, QueryTerms};

use hybrid_search_document::show_number;

use crate::collection::Snapshot;
use crate::error::{Error, Result, Setting};
use crate::evaluate::query_vectors;
use crate::legs::{LegFilter, Legs, LocalLegs};
use crate::manifest::{HybridOptions, Mode};
use crate::rerank::{FirstStage, RerankOptions, rerank};
use crate::search::{Ranked, RerankInfo, SearchResults, StoredDocs};

/// The fusion method a caller picks (`rrf`, `convex` in JSON).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FusionMethod {
    /// Reciprocal rank fusion.
    Rrf,
    /// A convex combination of normalised scores.
    Convex,
}

/// How a convex combination normalises both legs' scores (`minmax`, `zscore`, `dbsf`,
/// `theoretical` in JSON and on the command line).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NormChoice {
    /// Min-max over each returned list.
    #[cfg_attr(feature = "clap", value(name = "minmax"))]
    MinMax,
    /// Z-score over each returned list.
    #[cfg_attr(feature = "clap", value(name = "zscore"))]
    ZScore,
    /// Distribution-based score fusion (mean ± 3 standard deviations).
    Dbsf,
    /// Cosine from [-1, 1], BM25 from 0 to the list's maximum.
    Theoretical,
}

/// Fusion settings a caller sets on top of the collection's own (tuned, or
/// [`crate::defaults::fusion_tuned_on_scifact_train`]). Empty: the collection's settings.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FusionOverrides {
    /// Settings that replace the collection's before the fields below apply.
    pub settings: Option<HybridOptions>,
    /// The method; switching method starts from that method's defaults (RRF: k 60, equal
    /// weights; convex: the tuned default's convex settings).
    pub method: Option<FusionMethod>,
    /// Convex: the dense leg's weight, in [0, 1]. Read as `f64` (as JSON and the command line
    /// give numbers) and kept as `f32` once checked.
    pub alpha: Option<f64>,
    /// RRF: the rank constant k, > 0 and within `f32`'s normal range
    /// ([`f32::MIN_POSITIVE`] to [`f32::MAX`]), where the fusion keeps it.
    pub rrf_k: Option<f64>,
    /// Convex: the normalisation of both legs.
    pub norm: Option<NormChoice>,
    /// Candidates taken from each leg, at least 1.
    pub depth: Option<usize>,
}

impl FusionOverrides {
    /// Overrides that set exactly `settings`.
    pub fn exactly(settings: HybridOptions) -> Self {
        Self {
            settings: Some(settings),
            ..Self::default()
        }
    }

    /// Checks what can be checked without the collection: a depth of at least 1, alpha in
    /// [0, 1], k > 0, and no flag of the other method than the one named.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] naming the setting.
    pub fn validate(&self) -> Result<()> {
        let bad =
            |setting: Setting, problem: String| Err(Error::InvalidRequest { setting, problem });
        if self.depth == Some(0) {
            return bad(Setting::Depth, "must be at least 1".into());
        }
        if let Some(a) = self.alpha
            && !(0.0..=1.0).contains(&a)
        {
            return bad(
                Setting::Alpha,
                format!("must be between 0 and 1, got {}", show_number(a)),
            );
        }
        if let Some(k) = self.rrf_k {
            if !(k.is_finite() && k > 0.0) {
                return bad(
                    Setting::RrfK,
                    format!("must be a number > 0, got {}", show_number(k)),
                );
            }
            if k > f64::from(f32::MAX) {
                return bad(
                    Setting::RrfK,
                    format!(
                        "{} is above the largest rrf_k, {:e} (the fusion keeps it as a 32-bit \
                         float); ranks barely matter past a k of a few thousand",
                        show_number(k),
                        f32::MAX
                    ),
                );
            }
            if k < f64::from(f32::MIN_POSITIVE) {
                return bad(
                    Setting::RrfK,
                    format!(
                        "{} is below the smallest rrf_k, {:e} (the fusion keeps it as a 32-bit \
                         float); the usual k is 60",
                        show_number(k),
                        f32::MIN_POSITIVE
                    ),
                );
            }
        }
        let convex_setting = if self.alpha.is_some() {
            Some(Setting::Alpha)
        } else if self.norm.is_some() {
            Some(Setting::Norm)
        } else {
            None
        };
        match (self.method, convex_setting) {
            (Some(FusionMethod::Rrf), Some(setting)) => bad(
                setting,
                "applies to the convex fusion method, and the method asked for is rrf".into(),
            ),
            (Some(FusionMethod::Convex), _) if self.rrf_k.is_some() => bad(
                Setting::RrfK,
                "applies to the rrf fusion method, and the method asked for is convex".into(),
            ),
            (None, Some(setting)) if self.rrf_k.is_some() => bad(
                setting,
                "is a setting of the convex fusion method and rrf_k one of rrf: give the \
                 settings of one method"
                    .into(),
            ),
            _ => Ok(()),
        }
    }

    /// The method these overrides pick: the one named, else the one whose settings are given
    /// (`alpha` or `norm`: convex; `rrf_k`: RRF), else none.
    fn method(&self) -> Option<FusionMethod> {
        self.method
            .or(if self.alpha.is_some() || self.norm.is_some() {
                Some(FusionMethod::Convex)
            } else if self.rrf_k.is_some() {
                Some(FusionMethod::Rrf)
            } else {
                None
            })
    }

    /// `base` (or [`FusionOverrides::settings`]) with these overrides applied. A setting of
    /// one method given without [`FusionOverrides::method`] picks that method (`alpha` on a
    /// collection tuned to RRF searches by convex combination).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] when settings of both methods are given, or of the other
    /// method than the one named; [`Error::Fusion`] when the result is not valid.
    pub fn apply(&self, base: HybridOptions) -> Result<HybridOptions> {
        self.validate()?;
        let base = self.settings.unwrap_or(base);
        let method = self.method().unwrap_or(match base.fusion {
            Fusion::Rrf(_) => FusionMethod::Rrf,
            _ => FusionMethod::Convex,
        });
        // `validate` refused settings of the other method than this one.
        let fusion = match method {
            FusionMethod::Rrf => {
                let mut settings = match base.fusion {
                    Fusion::Rrf(s) => s,
                    _ => RrfSettings::default(),
                };
                if let Some(k) = self.rrf_k {
                    // Checked by `validate` to be a normal f32.
                    settings.k = k as f32;
                }
                Fusion::Rrf(settings)
            }
            FusionMethod::Convex => {
                let mut settings = match base.fusion {
                    Fusion::Convex(s) => s,
                    _ => match crate::defaults::fusion_tuned_on_scifact_train().fusion {
                        Fusion::Convex(s) => s,
                        _ => ConvexSettings::default(),
                    },
                };
                if let Some(alpha) = self.alpha {
                    // Checked by `validate` to be in [0, 1].
                    settings.alpha = alpha as f32;
                }
                if let Some(norm) = self.norm {
                    (settings.dense, settings.sparse) = match norm {
                        NormChoice::MinMax => (Normalization::MinMax, Normalization::MinMax),
                        NormChoice::ZScore => (Normalization::ZScore, Normalization::ZScore),
                        NormChoice::Dbsf => (Normalization::Dbsf, Normalization::Dbsf),
                        NormChoice::Theoretical => (Normalization::cosine(), Normalization::bm25()),
                    };
                }
                Fusion::Convex(settings)
            }
        };
        fusion.validate()?;
        Ok(HybridOptions {
            fusion,
            depth: self.depth.unwrap_or(base.depth),
        })
    }
}

/// A cross-encoder and how it reorders the top of a result list.
#[derive(Clone)]
pub struct Rerank {
    /// The cross-encoder.
    pub model: Arc<CrossEncoder>,
    /// Depth and weight.
    pub options: RerankOptions,
}

/// A search, as every caller states it: `SearchRequest::new(query, k)` searches in the
/// collection's default mode with its fusion settings, and the `with_*` methods set the rest,
/// so an option added later breaks no caller:
///
/// ```
/// use hybrid_search::{FusionMethod, FusionOverrides, Mode, SearchRequest};
///
/// let request = SearchRequest::new("IL-6 in sepsis", 10)
///     .with_mode(Mode::Hybrid)
///     .with_fusion(FusionOverrides { method: Some(FusionMethod::Rrf), ..Default::default() })
///     .with_explain(true);
/// assert_eq!(request.k(), 10);
/// ```
#[derive(Clone)]
pub struct SearchRequest {
    /// The query text (BM25's input, and the dense leg's unless `vector` is given).
    pub(crate) query: String,
    /// The query's vector when the caller has it (the dense leg then encodes nothing); its
    /// length must be the collection's dimension.
    pub(crate) vector: Option<Vec<f32>>,
    /// Results wanted, at least 1.
    pub(crate) k: usize,
    /// Which leg(s) answer; `None`: [`Snapshot::default_mode`].
    pub(crate) mode: Option<Mode>,
    /// Fusion settings over the collection's.
    pub(crate) fusion: FusionOverrides,
    /// Encodes the query instead of the collection's model.
    pub(crate) query_encoder: Option<Arc<Encoder>>,
    /// Reorders the top hits with a cross-encoder.
    pub(crate) rerank: Option<Rerank>,
    /// Keep each hit's per-leg scores (and, reranked, its first-stage rank and logit).
    pub(crate) explain: bool,
    /// Where the legs are answered: `None` for the collection's own indexes.
    pub(crate) legs: Option<Arc<dyn Legs>>,
    /// The documents searched: those the filter matches (both legs, before their top k).
    pub(crate) filter: Option<Filter>,
    /// What each hit carries besides id, title, snippet and score.
    pub(crate) fields: FieldSelection,
    /// Hits skipped before the first one returned (paging).
    pub(crate) offset: usize,
    /// Pseudo-relevance feedback; `None`: the collection's ([`SearchDefaults::prf`]).
    ///
    /// [`SearchDefaults::prf`]: crate::SearchDefaults::prf
    pub(crate) prf: Option<crate::Prf>,
}

/// What a hit carries besides its id, title, snippet and score: the full text and the
/// fields named (`*`: all of them). Empty: nothing more (the default). A name no document has
/// is not an error (a field may be on some documents only): it returns nothing, as Qdrant's
/// and Elasticsearch's include lists do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelection(Vec<String>);

impl FieldSelection {
    /// The selection of `names`: `text` is the full text, `*` every field, any other name the
    /// field of that name.
    pub fn new<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        Self(names.into_iter().map(Into::into).collect())
    }

    /// Whether nothing more is asked for.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the full text is asked for (`text` or `*`).
    pub fn text(&self) -> bool {
        self.0.iter().any(|n| n == "text" || n == "*")
    }

    /// The fields of `fields` asked for (`None`: none is).
    pub fn pick(&self, fields: &Fields) -> Option<Fields> {
        if self.0.iter().any(|n| n == "*") {
            return Some(fields.clone());
        }
        let named: Vec<&String> = self.0.iter().filter(|n| *n != "text").collect();
        if named.is_empty() {
            return None;
        }
        Some(
            fields
                .iter()
                .filter(|(name, _)| named.contains(name))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }
}

impl SearchRequest {
    /// `k` results for `query` in the collection's default mode and fusion, no explanation.
    pub fn new(query: &str, k: usize) -> Self {
        Self {
            query: query.to_string(),
            vector: None,
            k,
            mode: None,
            fusion: FusionOverrides::default(),
            query_encoder: None,
            rerank: None,
            explain: false,
            legs: None,
            filter: None,
            fields: FieldSelection::default(),
            offset: 0,
            prf: None,
        }
    }

    /// Searches only the documents `filter` matches: both legs are restricted before their
    /// top `k` is taken, so a search returns `min(k, matches)` hits.
    pub fn with_filter(mut self, filter: Option<Filter>) -> Self {
        self.filter = filter;
        self
    }

    /// Returns the full text and the named fields with each hit ([`FieldSelection`]).
    pub fn with_fields(mut self, fields: FieldSelection) -> Self {
        self.fields = fields;
        self
    }

    /// Skips the first `offset` hits: page `p` (from 0) of `k` hits is `offset = p * k`, and
    /// equals hits `p*k+1 ..= (p+1)*k` of a search for `(p+1)*k`.
    pub fn with_offset(mut self, offset: usize) -> Self {
        self.offset = offset;
        self
    }

    /// Searches with this pseudo-relevance feedback instead of the collection's
    /// ([`crate::Prf::OFF`]: none).
    pub fn with_prf(mut self, prf: crate::Prf) -> Self {
        self.prf = Some(prf);
        self
    }

    /// The filter, if any.
    pub fn filter(&self) -> Option<&Filter> {
        self.filter.as_ref()
    }

    /// Hits skipped.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The same request for another query text (a template's settings, each query's text).
    pub fn with_query(mut self, query: &str) -> Self {
        self.query = query.to_string();
        self
    }

    /// The same request for `k` results.
    pub fn with_k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }

    /// Searches with this query vector (the dense leg then encodes nothing); its length must
    /// be the collection's dimension and its values finite.
    pub fn with_vector(mut self, vector: Vec<f32>) -> Self {
        self.vector = Some(vector);
        self
    }

    /// Searches with the leg(s) `mode` names instead of the collection's default mode.
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// Searches with `mode` when given, else the collection's default mode.
    pub fn with_mode_or_default(mut self, mode: Option<Mode>) -> Self {
        self.mode = mode;
        self
    }

    /// Fusion settings over the collection's.
    pub fn with_fusion(mut self, fusion: FusionOverrides) -> Self {
        self.fusion = fusion;
        self
    }

    /// Encodes the query with `encoder` instead of the collection's model (a query encoder
    /// trained with `train-dense --separate`); its dimension must match the collection's
    /// vectors.
    pub fn with_query_encoder(mut self, encoder: Arc<Encoder>) -> Self {
        self.query_encoder = Some(encoder);
        self
    }

    /// Reorders the top hits with a cross-encoder.
    pub fn with_rerank(mut self, rerank: Rerank) -> Self {
        self.rerank = Some(rerank);
        self
    }

    /// Keeps each hit's per-leg scores (and, reranked, its first-stage rank and logit).
    pub fn with_explain(mut self, explain: bool) -> Self {
        self.explain = explain;
        self
    }

    /// Has the legs answered by `legs` (a backend holding the collection's points, such as a
    /// Qdrant cluster) instead of the collection's own indexes ([`LocalLegs`]).
    pub fn with_legs(mut self, legs: Arc<dyn Legs>) -> Self {
        self.legs = Some(legs);
        self
    }

    /// The query text.
    pub fn query(&self) -> &str {
        &self.query
    }

    /// Results wanted.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The mode asked for (`None`: the collection's default).
    pub fn mode(&self) -> Option<Mode> {
        self.mode
    }

    /// The query vector given, if any.
    pub fn vector(&self) -> Option<&[f32]> {
        self.vector.as_deref()
    }

    /// The separate query encoder, if any.
    pub fn query_encoder(&self) -> Option<&Arc<Encoder>> {
        self.query_encoder.as_ref()
    }

    /// Checks what can be checked without a collection: `k` of at least 1, the fusion
    /// overrides, the rerank depth and weight, a finite vector.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] naming the setting.
    pub fn validate(&self) -> Result<()> {
        let bad =
            |setting: Setting, problem: String| Err(Error::InvalidRequest { setting, problem });
        if self.k == 0 {
            return bad(Setting::K, "must be at least 1".into());
        }
        let window = crate::defaults::MAX_RESULT_WINDOW;
        if self.offset.saturating_add(self.k) > window {
            return bad(
                if self.offset > 0 {
                    Setting::Offset
                } else {
                    Setting::K
                },
                format!(
                    "offset + k is {}, beyond the deepest a search pages ({window} hits); narrow \
                     the search with a filter instead of paging this deep",
                    self.offset.saturating_add(self.k)
                ),
            );
        }
        self.fusion.validate()?;
        if let Some(r) = &self.rerank {
            r.options.validate()?;
        }
        if let Some(v) = &self.vector {
            if v.is_empty() {
                return bad(Setting::Vector, "is empty".into());
            }
            if let Some(at) = v.iter().position(|x| !x.is_finite()) {
                return bad(
                    Setting::Vector,
                    format!("value {at} ({}) is not finite", v[at]),
                );
            }
        }
        Ok(())
    }
}

impl Snapshot {
    /// How deep each leg of a hybrid search goes for fusion depth `depth` and `k` hits: at
    /// least `k`, and no deeper than the collection holds (a leg cannot return more), so a
    /// fusion depth past it (the CLI takes any number) allocates nothing for hits that cannot
    /// exist. The settings reported with the results keep the depth as asked.
    pub(crate) fn leg_depth(&self, depth: usize, k: usize) -> usize {
        let most = usize::try_from(self.len()).unwrap_or(usize::MAX);
        depth.max(k).min(most.max(k).max(1))
    }
}

/// Whether `query` is empty once normalised: nothing, white space, or only invisible
/// characters (a zero-width joiner, a byte order mark).
fn blank(query: &str) -> bool {
    hybrid_search_sparse::normalize::normalize(query)
        .text
        .chars()
        .all(char::is_whitespace)
}

/// Refuses a search with neither query words nor a vector: no leg has anything to search
/// for, and a dense leg would rank the encoding of nothing (arbitrary documents).
fn check_query(request: &SearchRequest) -> Result<()> {
    if request.vector.is_none() && blank(&request.query) {
        return Err(Error::InvalidRequest {
            setting: Setting::Query,
            problem: "is empty (nothing but white space or invisible characters): give words to \
                      search for, or a vector in mode dense"
                .into(),
        });
    }
    Ok(())
}

/// A request resolved against a collection: the mode and fusion settings in force, and the
/// filter compiled for the collection's index.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The mode asked for.
    pub mode: Mode,
    /// The fusion settings (used in the hybrid mode).
    pub hybrid: HybridOptions,
    /// The filter, compiled.
    pub filter: Option<Arc<LegFilter>>,
    /// The pseudo-relevance feedback in force.
    pub prf: crate::Prf,
}

impl Snapshot {
    /// The mode and fusion settings `request` searches with here, checked against the
    /// collection: a vector needs the dense leg's mode, a query encoder a dense leg of the same
    /// dimension (a vector's length is checked where the dense leg searches, in
    /// [`Snapshot::rank`], for every caller).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] naming what does not fit, and the errors of
    /// [`SearchRequest::validate`] and [`FusionOverrides::apply`].
    pub fn resolve(&self, request: &SearchRequest) -> Result<Resolved> {
        request.validate()?;
        let mode = request.mode.unwrap_or_else(|| self.default_mode());
        let hybrid = request.fusion.apply(self.hybrid_options())?;
        let deepest = request.offset + request.k;
        if mode == Mode::Hybrid && request.offset > 0 && deepest > hybrid.depth {
            // Each leg goes `max(depth, offset + k)` deep: past the depth, every page would fuse
            // other lists, and pages would repeat or skip hits.
            return Err(Error::InvalidRequest {
                setting: Setting::Offset,
                problem: format!(
                    "offset + k is {deepest}, deeper than the fusion depth {}: every page of a \
                     hybrid search fuses the same lists, so set the fusion depth to at least \
                     {deepest} (the same for every page)",
                    hybrid.depth
                ),
            });
        }
        if mode == Mode::Sparse && request.vector.is_some() {
            return Err(Error::InvalidRequest {
                setting: Setting::Vector,
                problem: "needs the dense leg: search in mode dense or hybrid, on a collection \
                          built with a model"
                    .into(),
            });
        }
        if let Some(encoder) = &request.query_encoder {
            self.check_query_model(mode, encoder.dir(), Some(encoder.description().dim))?;
        }
        let filter = match &request.filter {
            Some(f) => Some(Arc::new(LegFilter::new(self, f)?)),
            None => None,
        };
        let prf = match request.prf {
            Some(prf) => {
                prf.validate()?;
                prf
            }
            None => self
                .manifest
                .search
                .as_ref()
                .map(|s| s.prf)
                .unwrap_or_default(),
        };
        Ok(Resolved {
            mode,
            hybrid,
            filter,
            prf,
        })
    }

    /// Whether a separate query encoder (`--query-model DIR`, making `dim`-dimensional
    /// vectors; `None` when not loaded yet) can search this collection in `mode`: not in the
    /// sparse mode, only with a dense leg, and only with the vectors' dimension.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] saying which of those fails and what to do.
    pub fn check_query_model(
        &self,
        mode: Mode,
        dir: &std::path::Path,
        dim: Option<usize>,
    ) -> Result<()> {
        let here = self.dir().display();
        let bad = |problem: String| {
            Err(Error::InvalidRequest {
                setting: Setting::QueryModel,
                problem,
            })
        };
        let Some(dense) = &self.manifest().dense else {
            return bad(format!(
                "{}: {here} has no dense leg, so no query encoder can search it; rebuild it \
                 with a model (`hybrid-search index --model`)",
                dir.display()
            ));
        };
        if mode == Mode::Sparse {
            return bad("applies to the dense and hybrid modes, not sparse".into());
        }
        let theirs = dense.vectors.dim;
        match dim {
            Some(ours) if ours != theirs => bad(format!(
                "{} makes {ours}-dimensional vectors, but the vectors of {here} ({}) have \
                 {theirs}; use the query encoder trained with the collection's model",
                dir.display(),
                dense.model.name
            )),
            _ => Ok(()),
        }
    }

    /// Runs `request`: resolves it ([`Snapshot::resolve`]), encodes the query (with the
    /// request's query encoder, else the collection's model, unless a vector is given),
    /// ranks with the leg(s) of its mode, fuses, reranks the top when asked, and fetches
    /// titles and snippets for the top `k`. A hybrid search whose dense leg cannot answer
    /// falls back to BM25 and says why in [`SearchResults::degraded`].
    ///
    /// # Errors
    ///
    /// Those of [`Snapshot::resolve`] and [`Snapshot::rank`], and
    /// [`Error::Dense`] when the query encoder or the cross-encoder fails.
    pub fn run(&self, request: &SearchRequest) -> Result<SearchResults> {
        let _span = tracing::debug_span!("search", k = request.k).entered();
        check_query(request)?;
        let mut docs = StoredDocs::default();
        let resolved = self.resolve(request)?;
        let terms = self.query_terms(&request.query, resolved.mode)?;
        let (ranked, before) = self.ranked(request, &resolved, &terms, &mut docs)?;
        let mut hits = self.hits(&terms, ranked.hits, &request.fields, &mut docs)?;
        for (hit, first) in hits.iter_mut().zip(before) {
            hit.first_stage = Some(first);
        }
        if !request.explain {
            for hit in &mut hits {
                hit.legs.clear();
                hit.first_stage = None;
            }
        }
        Ok(SearchResults {
            mode: ranked.mode,
            degraded: ranked.degraded,
            fusion: ranked.fusion,
            rerank: ranked.rerank,
            hits,
        })
    }

    /// Runs each of `requests` as [`Snapshot::run`] would, for many queries at once (an
    /// evaluation, a batch of questions): the texts the collection's model must encode are
    /// encoded together first, in batches of [`crate::defaults::QUERY_BATCH`], and the searches
    /// run in parallel (rayon). Results come in request order, each request succeeding or
    /// failing on its own (an encoding failure leaves each request to encode its own query,
    /// and report, as `run` does).
    pub fn run_batch(&self, requests: &[SearchRequest]) -> Vec<Result<SearchResults>> {
        let encoded_here = |r: &SearchRequest| {
            r.vector.is_none()
                && !blank(&r.query)
                && r.query_encoder.is_none()
                && self
                    .resolve(r)
                    .is_ok_and(|resolved| resolved.mode != Mode::Sparse)
        };
        let wanted: Vec<usize> = (0..requests.len())
            .filter(|&i| encoded_here(&requests[i]))
            .collect();
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; requests.len()];
        if !wanted.is_empty() && self.encoder().is_some() {
            let texts: Vec<&str> = wanted.iter().map(|&i| requests[i].query.as_str()).collect();
            if let Ok(encoded) = self.encode_queries(&texts) {
                for (i, v) in wanted.into_iter().zip(encoded) {
                    vectors[i] = Some(v);
                }
            }
        }
        requests
            .par_iter()
            .zip(vectors)
            .map(|(request, vector)| match vector {
                Some(v) => self.run(&request.clone().with_vector(v)),
                None => self.run(request),
            })
            .collect()
    }

    /// The ranked half of [`Snapshot::run`]: the top `k` ids with their scores and each leg's
    /// share (reranked when asked), without reading any stored document (no titles, no
    /// snippets): what evaluation and parity checks compare.
    ///
    /// # Errors
    ///
    /// Those of [`Snapshot::run`].
    pub fn rank(&self, request: &SearchRequest) -> Result<Ranked> {
        check_query(request)?;
        let resolved = self.resolve(request)?;
        let terms = self.query_terms(&request.query, resolved.mode)?;
        Ok(self
            .ranked(request, &resolved, &terms, &mut StoredDocs::default())?
            .0)
    }

    /// [`Snapshot::rank`], with each reranked hit's first-stage rank and logit.
    fn ranked(
        &self,
        request: &SearchRequest,
        resolved: &Resolved,
        terms: &QueryTerms,
        docs: &mut StoredDocs,
    ) -> Result<(Ranked, Vec<FirstStage>)> {
        let own = match (&request.vector, &request.query_encoder) {
            (None, Some(encoder)) if resolved.mode != Mode::Sparse => Some(
                query_vectors(self, Some(encoder), &[request.query.as_str()], &|_| {})?.remove(0),
            ),
            _ => None,
        };
        let vector = request.vector.as_deref().or(own.as_deref());
        let k = request.offset + request.k;
        let (mut ranked, mut before) =
            self.run_ranked(request, resolved, terms, vector, k, docs)?;
        ranked.hits.truncate(k);
        // Paging: the first `offset` of the `offset + k` best are another page's.
        let skip = request.offset.min(ranked.hits.len());
        ranked.hits.drain(..skip);
        before.drain(..skip.min(before.len()));
        Ok((ranked, before))
    }

    /// The query analysed once for the search (BM25's terms, which the snippets mark): an
    /// analysis error fails a search that uses BM25; a dense search goes on with no terms
    /// (its snippets then mark nothing).
    pub(crate) fn query_terms(&self, query: &str, mode: Mode) -> Result<QueryTerms> {
        match self.sparse.query_terms(query) {
            Ok(terms) => Ok(terms),
            Err(_) if mode == Mode::Dense => Ok(QueryTerms::default()),
            Err(e) => Err(e.into()),
        }
    }

    /// The ranked half of [`Snapshot::run`] for a resolved request and its query vector
    /// (`None`: the collection encodes the query when its mode needs it): the top
    /// `max(k, rerank depth)` ranked, reranked when asked, with each reranked hit's
    /// first-stage rank and logit (in the new order). No titles or snippets; the documents the
    /// cross-encoder read are kept in `docs` for them.
    ///
    /// # Errors
    ///
    /// Those of `rank_with`, and [`Error::Dense`] when the cross-encoder fails.
    pub(crate) fn run_ranked(
        &self,
        request: &SearchRequest,
        resolved: &Resolved,
        terms: &QueryTerms,
        vector: Option<&[f32]>,
        k: usize,
        docs: &mut StoredDocs,
    ) -> Result<(Ranked, Vec<FirstStage>)> {
        let depth = request.rerank.as_ref().map_or(0, |r| r.options.depth);
        let ranked = self.rank_with(
            request.legs.as_deref().unwrap_or(&LocalLegs),
            &request.query,
            terms,
            vector,
            k.max(depth),
            resolved,
        )?;
        let Some(r) = &request.rerank else {
            return Ok((ranked, Vec::new()));
        };
        let _span = tracing::debug_span!("rerank", depth).entered();
        let mut out = rerank(self, &request.query, ranked, &r.model, &r.options, docs)?;
        out.results.rerank = Some(RerankInfo {
            model: r.model.dir().to_path_buf(),
            depth: r.options.depth,
            weight: r.options.weight,
        });
        Ok((out.results, out.before))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rrf_base() -> HybridOptions {
        HybridOptions {
            fusion: Fusion::Rrf(RrfSettings::default()),
            depth: 100,
        }
    }

    #[test]
    fn a_setting_of_one_method_picks_it() {
        let alpha = FusionOverrides {
            alpha: Some(0.3),
            ..FusionOverrides::default()
        };
        match alpha.apply(rrf_base()).unwrap().fusion {
            Fusion::Convex(s) => assert_eq!(s.alpha, 0.3),
            other => panic!("{other:?}"),
        }
        let rrf_k = FusionOverrides {
            rrf_k: Some(10.0),
            ..FusionOverrides::default()
        };
        match rrf_k.apply(HybridOptions::default()).unwrap().fusion {
            Fusion::Rrf(s) => assert_eq!(s.k, 10.0),
            other => panic!("{other:?}"),
        }
        let both = FusionOverrides {
            alpha: Some(0.3),
            rrf_k: Some(10.0),
            ..FusionOverrides::default()
        };
        assert!(
            both.apply(rrf_base())
                .unwrap_err()
                .to_string()
                .contains("give the settings of one method")
        );
    }

    #[test]
    fn numbers_out_of_f32_range_are_quoted_as_sent() {
        let message = |rrf_k: f64| {
            FusionOverrides {
                rrf_k: Some(rrf_k),
                ..FusionOverrides::default()
            }
            .validate()
            .unwrap_err()
            .to_string()
        };
        assert!(
            message(5.388624124391167e307).starts_with(
                "rrf_k: 5.388624124391167e307 is above the largest rrf_k, 3.4028235e38"
            ),
            "{}",
            message(5.388624124391167e307)
        );
        assert!(message(5e-324).starts_with("rrf_k: 5e-324 is below the smallest rrf_k"));
        assert!(message(-1.0).contains("must be a number > 0, got -1"));
    }
}
