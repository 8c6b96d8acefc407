//! Flag groups shared by several commands, each parsed and checked into the engine's own option
//! types without touching the disk: [`AnalyzerArgs`] to an `AnalyzerConfig`, [`ModelArgs`] to a
//! `ModelChoice`, [`FusionArgs`] to `FusionOverrides`, [`SearchArgs`] to a [`SearchPlan`] (the
//! engine options of a `SearchRequest`, models not yet loaded), [`WaitArgs`] to a `Wait`.

use std::path::PathBuf;

use anyhow::bail;
use clap::ValueEnum;

use hybrid_search::defaults::{RERANK_DEPTH, RERANK_WEIGHT_SCIFACT_DEV};
use hybrid_search::dense::WeightFormat;
use hybrid_search::{
    AnalyzerConfig, AnalyzerKind, DecompoundMode, FusionMethod, FusionOverrides, Mode, ModelChoice,
    NormChoice, RerankOptions, Setting, StopWords, Wait,
};
use hybrid_search_qdrant::{LegsOptions, ServerFusion, Target};

/// The flag that sets `setting` (the engine's errors name settings neutrally).
pub fn flag(setting: Setting) -> &'static str {
    match setting {
        Setting::Query => "the query",
        Setting::K => "-k",
        Setting::Vector => "--vector",
        Setting::Mode => "--mode",
        Setting::Method => "--fusion",
        Setting::Alpha => "--alpha",
        Setting::RrfK => "--rrf-k",
        Setting::Norm => "--norm",
        Setting::Depth => "--depth",
        Setting::QueryModel => "--query-model",
        Setting::RerankDepth => "--rerank-depth",
        Setting::RerankWeight => "--rerank-weight",
        Setting::Filter => "--filter",
        Setting::Fields => "--fields",
        Setting::Offset => "--offset",
        Setting::Prf => "--prf",
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum FusionArg {
    Rrf,
    Convex,
    /// With --qdrant: Qdrant fuses the legs itself with RRF (k = 60, ranks from 1).
    ServerRrf,
    /// With --qdrant: Qdrant fuses the legs itself with DBSF (distribution-based score fusion).
    ServerDbsf,
}

/// Analyzer settings shared by `index` and `analyze`.
#[derive(clap::Args, Clone)]
pub struct AnalyzerArgs {
    /// Analyzer: auto (Korean and English), ko or en.
    #[arg(long, value_enum, default_value = "auto")]
    analyzer: AnalyzerKind,
    /// How Korean compound nouns are indexed.
    #[arg(long, value_enum)]
    decompound: Option<DecompoundMode>,
    /// Korean part-of-speech tags to drop, comma-separated (default: Lucene nori's 30 tags).
    #[arg(long, value_delimiter = ',')]
    stop_tags: Option<Vec<String>>,
    /// English stop-word list.
    #[arg(long, value_enum)]
    stop_words: Option<StopWords>,
    /// Turn English stemming off.
    #[arg(long)]
    no_stem: bool,
    /// Weight of the Hangul character-bigram field in queries; 0 turns it off.
    #[arg(long)]
    ngram_weight: Option<f32>,
}

impl AnalyzerArgs {
    /// The analyzer settings the flags describe.
    pub fn config(&self) -> anyhow::Result<AnalyzerConfig> {
        let mut c = AnalyzerConfig::for_kind(self.analyzer);
        if let Some(d) = self.decompound {
            c.decompound = d;
        }
        if let Some(tags) = &self.stop_tags {
            c.stop_tags = tags
                .iter()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect();
        }
        if let Some(s) = self.stop_words {
            c.stop_words = s;
        }
        c.stem = !self.no_stem;
        if let Some(w) = self.ngram_weight {
            if !(w.is_finite() && w >= 0.0) {
                bail!("--ngram-weight must be a number >= 0, got {w}");
            }
            c.ngram_weight = w;
        }
        Ok(c)
    }
}

/// Which model makes query (and passage) vectors.
#[derive(clap::Args, Clone)]
pub struct ModelArgs {
    /// Model directory (config.json + safetensors, or a packed E5S1 file; tokenizer.json;
    /// sentence-transformers files; or a decoder LLM: a llama/gemma3 GGUF file with
    /// decoder.json). For an existing collection, defaults to the directory
    /// it was built with, else models/<name> under $HYBRID_SEARCH_HOME, the working folder
    /// or the executable's folders.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// How the model's matrices run.
    #[arg(long, value_enum, default_value = "int8")]
    weights: WeightFormat,
}

impl ModelArgs {
    /// The engine's model choice.
    pub fn choice(&self) -> ModelChoice {
        ModelChoice {
            dir: self.model.clone(),
            weights: self.weights,
        }
    }
}

/// How a write waits for another writer of the same collection.
#[derive(clap::Args, Clone, Copy)]
pub struct WaitArgs {
    /// When another process is writing to the collection, queue behind it: `--wait` waits
    /// as long as it takes, `--wait=SECONDS` at most that long; without it a busy collection
    /// is an error at once.
    #[arg(
        long,
        value_name = "SECONDS",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "inf"
    )]
    wait: Option<f64>,
}

impl WaitArgs {
    /// The engine's waiting policy.
    pub fn wait(&self) -> anyhow::Result<Wait> {
        Ok(match self.wait {
            None => Wait::No,
            Some(s) if s.is_infinite() && s > 0.0 => Wait::Forever,
            Some(s) if s.is_finite() && s >= 0.0 => {
                Wait::For(std::time::Duration::from_secs_f64(s))
            }
            Some(s) => bail!("--wait=SECONDS takes a number of seconds >= 0 (got {s})"),
        })
    }
}

/// How `--mode hybrid` blends the legs. Unset flags keep the collection's stored settings
/// (`hybrid-search tune`), else the built-in default (convex combination, theoretical bounds,
/// alpha 0.85, depth 100: tuned on SciFact train).
#[derive(clap::Args, Clone)]
pub struct FusionArgs {
    /// Reciprocal rank fusion, or a convex combination of normalised scores.
    #[arg(long, value_enum)]
    fusion: Option<FusionArg>,
    /// Convex combination: the dense leg's weight (the sparse leg gets 1 - alpha).
    #[arg(long)]
    alpha: Option<f64>,
    /// RRF: the rank constant k in 1 / (k + rank).
    #[arg(long)]
    rrf_k: Option<f64>,
    /// Convex combination: how each leg's scores are normalised.
    #[arg(long, value_enum)]
    norm: Option<NormChoice>,
    /// Candidates taken from each leg (at least -k).
    #[arg(long)]
    depth: Option<usize>,
}

impl FusionArgs {
    /// The engine's fusion overrides, checked.
    pub fn overrides(&self) -> anyhow::Result<FusionOverrides> {
        let overrides = FusionOverrides {
            settings: None,
            method: self.fusion.and_then(|f| match f {
                FusionArg::Rrf => Some(FusionMethod::Rrf),
                FusionArg::Convex => Some(FusionMethod::Convex),
                FusionArg::ServerRrf | FusionArg::ServerDbsf => None,
            }),
            alpha: self.alpha,
            rrf_k: self.rrf_k,
            norm: self.norm,
            depth: self.depth,
        };
        overrides.validate()?;
        Ok(overrides)
    }
}

/// Which leg(s) answer, with which model, fusion settings and reranker (`search` and `eval`).
#[derive(clap::Args, Clone)]
pub struct SearchArgs {
    /// Which leg answers (hybrid: both, fused). Default: hybrid for a collection built with a
    /// model, sparse otherwise.
    #[arg(long, value_enum)]
    mode: Option<Mode>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    fusion: FusionArgs,
    /// Encode queries with this model instead of the collection's: the query encoder of a
    /// model trained with `train-dense --separate` (OUT/query_encoder), for a collection
    /// indexed with its passage encoder (OUT/passage_encoder).
    #[arg(long)]
    pub query_model: Option<PathBuf>,
    /// Rerank the top hits with this cross-encoder (a directory written by
    /// `hybrid-search train-reranker`).
    #[arg(long)]
    pub rerank: Option<PathBuf>,
    /// Hits the cross-encoder reorders; the ones below keep their order after them.
    #[arg(long, default_value_t = RERANK_DEPTH, requires = "rerank")]
    rerank_depth: usize,
    /// How much the cross-encoder counts, 0 to 1: reranked hits score weight x logit +
    /// (1 - weight) x first-stage score, both min-max normalised over the reranked hits; 1
    /// orders them by the logit alone. The default, 0.2, was best on held-out SciFact
    /// queries; the logit alone hurt there (docs/benchmarks.md). Choose it on held-out
    /// labelled queries (`eval --split`).
    #[arg(long, default_value_t = RERANK_WEIGHT_SCIFACT_DEV, requires = "rerank")]
    rerank_weight: f64,
    /// Search only the documents this filter matches (both legs, before their top k), as
    /// JSON: {"field": "source", "eq": "pubmed"}, {"field": "year", "gte": 2020, "lt": 2024},
    /// {"field": "tags", "in": ["a", "b"]}, {"field": "lang", "exists": true},
    /// {"and": [...]}, {"or": [...]}, {"not": {...}}; "field": "id" is the document id.
    #[arg(long, value_name = "JSON")]
    filter: Option<String>,
    #[command(flatten)]
    prf: PrfArgs,
    #[command(flatten)]
    qdrant: QdrantArgs,
}

/// Pseudo-relevance feedback (`search` and `eval`): a first pass of a leg whose top documents
/// rewrite its query. Unset: the collection's settings (off unless set).
#[derive(clap::Args, Clone)]
pub struct PrfArgs {
    /// Which legs use feedback: `rm3` (BM25: expansion terms from the top documents),
    /// `rocchio` (dense: the query vector moved towards the top documents'), both
    /// (`rm3,rocchio`), or `off`.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "LEGS")]
    prf: Option<Vec<PrfLeg>>,
    /// RM3: feedback documents.
    #[arg(long, value_name = "N")]
    rm3_docs: Option<usize>,
    /// RM3: expansion terms.
    #[arg(long, value_name = "N")]
    rm3_terms: Option<usize>,
    /// RM3: the weight of the query's own terms, 0 to 1.
    #[arg(long, value_name = "W")]
    rm3_weight: Option<f32>,
    /// Rocchio: feedback documents.
    #[arg(long, value_name = "N")]
    rocchio_docs: Option<usize>,
    /// Rocchio: the weight of the feedback documents' mean vector.
    #[arg(long, value_name = "B")]
    rocchio_beta: Option<f32>,
}

/// A leg's pseudo-relevance feedback (`--prf`).
#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum PrfLeg {
    /// RM3 on BM25.
    Rm3,
    /// Rocchio on the dense leg.
    Rocchio,
    /// No feedback.
    Off,
}

impl PrfArgs {
    /// The feedback asked for (`None`: the collection's), checked.
    pub fn prf(&self) -> anyhow::Result<Option<hybrid_search::Prf>> {
        let Some(legs) = &self.prf else {
            if self.rm3_docs.is_some()
                || self.rm3_terms.is_some()
                || self.rm3_weight.is_some()
                || self.rocchio_docs.is_some()
                || self.rocchio_beta.is_some()
            {
                bail!("the --rm3-* and --rocchio-* settings need --prf rm3, rocchio or both");
            }
            return Ok(None);
        };
        let mut prf = hybrid_search::Prf::OFF;
        if legs.contains(&PrfLeg::Rm3) {
            let d = hybrid_search::Rm3::default();
            prf.rm3 = Some(hybrid_search::Rm3 {
                docs: self.rm3_docs.unwrap_or(d.docs),
                terms: self.rm3_terms.unwrap_or(d.terms),
                original_weight: self.rm3_weight.unwrap_or(d.original_weight),
            });
        }
        if legs.contains(&PrfLeg::Rocchio) {
            let d = hybrid_search::Rocchio::default();
            prf.rocchio = Some(hybrid_search::Rocchio {
                docs: self.rocchio_docs.unwrap_or(d.docs),
                beta: self.rocchio_beta.unwrap_or(d.beta),
            });
        }
        if legs.contains(&PrfLeg::Off) && !prf.is_off() {
            bail!("--prf off cannot go with rm3 or rocchio");
        }
        prf.validate()?;
        Ok(Some(prf))
    }
}

/// `--filter JSON` as a filter.
///
/// # Errors
///
/// What is wrong with it, and where in it.
pub fn parse_filter(text: &str) -> anyhow::Result<hybrid_search::Filter> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        anyhow::anyhow!(
            "--filter: not JSON ({e}); expected an object such as '{{\"field\": \"source\", \
             \"eq\": \"pubmed\"}}'"
        )
    })?;
    hybrid_search::Filter::from_json(&value).map_err(|e| anyhow::anyhow!("--filter: {e}"))
}

/// Where the legs run when a Qdrant collection serves the collection (`search` and `eval`).
#[derive(clap::Args, Clone)]
pub struct QdrantArgs {
    /// Run both legs in Qdrant (its gRPC URL, such as http://127.0.0.1:6334), on a collection
    /// filled by `hybrid-search qdrant sync`; the query is still analysed, weighed and encoded
    /// by the engine, and fused by it unless --fusion server-rrf|server-dbsf.
    #[arg(long, value_name = "URL", requires = "collection")]
    qdrant: Option<String>,
    /// The Qdrant collection's name.
    #[arg(long, value_name = "NAME", requires = "qdrant")]
    collection: Option<String>,
    /// With --qdrant: exact (brute-force) dense search instead of Qdrant's HNSW.
    #[arg(long, requires = "qdrant")]
    exact: bool,
}

/// The Qdrant side of a [`SearchPlan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QdrantPlan {
    /// Server and collection.
    pub target: Target,
    /// Exact dense search, server-side fusion.
    pub options: LegsOptions,
}

/// What [`SearchArgs`] asks for, checked, before anything is loaded.
pub struct SearchPlan {
    /// The mode asked for (`None`: the collection's default).
    pub mode: Option<Mode>,
    /// The collection's model.
    pub model: ModelChoice,
    /// Fusion flags.
    pub fusion: FusionOverrides,
    /// The separate query encoder's directory.
    pub query_model: Option<PathBuf>,
    /// The cross-encoder's directory and how it reranks.
    pub rerank: Option<(PathBuf, RerankOptions)>,
    /// Where the legs run when not in the collection itself.
    pub qdrant: Option<QdrantPlan>,
    /// The documents searched.
    pub filter: Option<hybrid_search::Filter>,
    /// Pseudo-relevance feedback (`None`: the collection's).
    pub prf: Option<hybrid_search::Prf>,
}

impl SearchArgs {
    /// The flags as engine options, checked.
    pub fn plan(&self) -> anyhow::Result<SearchPlan> {
        let rerank = self.rerank.clone().map(|dir| {
            (
                dir,
                RerankOptions {
                    depth: self.rerank_depth,
                    weight: self.rerank_weight,
                },
            )
        });
        if let Some((_, o)) = &rerank {
            o.validate()?;
        }
        let server_fusion = match self.fusion.fusion {
            Some(FusionArg::ServerRrf) => Some(ServerFusion::Rrf),
            Some(FusionArg::ServerDbsf) => Some(ServerFusion::Dbsf),
            _ => None,
        };
        let qdrant = match (&self.qdrant.qdrant, &self.qdrant.collection) {
            (Some(url), Some(collection)) => Some(QdrantPlan {
                target: Target {
                    url: url.clone(),
                    collection: collection.clone(),
                },
                options: LegsOptions {
                    exact: self.qdrant.exact,
                    server_fusion,
                },
            }),
            _ if server_fusion.is_some() => bail!(
                "--fusion server-rrf and server-dbsf are Qdrant's own fusions: they need \
                 --qdrant URL --collection NAME"
            ),
            _ => None,
        };
        Ok(SearchPlan {
            filter: self.filter.as_deref().map(parse_filter).transpose()?,
            qdrant,
            mode: self.mode,
            model: self.model.choice(),
            fusion: self.fusion.overrides()?,
            query_model: self.query_model.clone(),
            rerank,
            prf: self.prf.prf()?,
        })
    }
}
