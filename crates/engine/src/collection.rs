//! The collection on disk: manifest, the sparse leg and the commit record.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use hybrid_search_dense::{Encoder, TextKind, VectorIndex};
use hybrid_search_eval::Document;
use hybrid_search_fusion::{
    ConvexSettings, FusedHit, Fusion, Leg, LegList, LegScore, Normalization,
};
use hybrid_search_sparse::{AnalyzerConfig, Bm25Index, Bm25Writer, SparseDoc};

use crate::dense_leg::{self, DENSE_DIR, DenseManifest, DenseOptions, DenseWriter, EncodeProgress};
use crate::error::{Error, Result};
use crate::snippet::{query_terms, snippet_for_terms};

/// The on-disk format version this code writes. Version 1 (no dense leg) is still read.
pub const FORMAT_VERSION: u32 = 2;

const MANIFEST: &str = "manifest.json";
const SPARSE_DIR: &str = "sparse";
/// Indexing memory for tantivy's writer (split across its threads).
const WRITER_HEAP: usize = 256 << 20;

/// `manifest.json`: what a collection is and how its text is analysed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// On-disk format version.
    pub format_version: u32,
    /// Analyzer settings used for both documents and queries.
    pub analyzer: AnalyzerConfig,
    /// The version of hybrid-search that created the collection.
    pub created_by: String,
    /// The dense leg, when the collection was built with a model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dense: Option<DenseManifest>,
    /// Search defaults (the tuned fusion settings), when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchDefaults>,
}

/// Which leg answers a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// BM25 over the analysed text.
    #[default]
    Sparse,
    /// Nearest passages to the query's vector.
    Dense,
    /// Both legs, fused ([`HybridOptions`]).
    Hybrid,
}

impl Mode {
    /// The lowercase name (`sparse`, `dense`, `hybrid`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Sparse => "sparse",
            Mode::Dense => "dense",
            Mode::Hybrid => "hybrid",
        }
    }
}

/// How the hybrid mode blends the legs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HybridOptions {
    /// The fusion method and its settings.
    pub fusion: Fusion,
    /// Candidates taken from each leg (at least the number of results asked for).
    pub depth: usize,
}

impl Default for HybridOptions {
    /// A convex combination over the top 100 of each leg with theoretical-bounds
    /// normalisation (cosine from [-1, 1], BM25 from [0, the list's best]) and dense weight
    /// 0.85: the setting `hybrid-search tune` chose on SciFact's train split (BM25 +
    /// all-MiniLM-L6-v2), which also beat reciprocal rank fusion on SciFact test, KorQuAD (with
    /// multilingual-e5-small) and Cranfield (`docs/benchmarks.md`). A collection tuned on its
    /// own labelled queries stores its own ([`SearchDefaults`]).
    fn default() -> Self {
        Self {
            fusion: Fusion::Convex(ConvexSettings {
                alpha: 0.85,
                dense: Normalization::cosine(),
                sparse: Normalization::bm25(),
            }),
            depth: 100,
        }
    }
}

/// How the collection answers a search when the caller does not say: stored in the manifest
/// by [`Collection::set_search_defaults`] (`hybrid-search tune`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchDefaults {
    /// The fusion settings of the hybrid mode.
    pub hybrid: HybridOptions,
    /// Where the settings come from, when tuned on labelled queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuned: Option<TuneRecord>,
}

/// The labelled queries a collection's fusion settings were tuned on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuneRecord {
    /// The dataset (as given on the command line).
    pub dataset: String,
    /// Its split.
    pub split: String,
    /// Queries evaluated.
    pub queries: usize,
    /// Settings tried.
    pub tried: usize,
    /// nDCG@10 of the chosen settings on those queries.
    pub ndcg_at_10: f64,
}

/// The engine's record stored as the payload of every sparse commit.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct CommitRecord {
    /// The next internal key to hand out.
    next_key: u64,
    /// The generation of the dense vectors this commit goes with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dense_generation: Option<u64>,
}

/// One search result.
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
}

/// A ranked result list and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchResults<H = Hit> {
    /// The mode that answered: [`Mode::Sparse`] when a hybrid search fell back.
    pub mode: Mode,
    /// Why the dense leg took no part, when a hybrid search fell back to the sparse leg.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// The results, best first.
    pub hits: Vec<H>,
}

/// Ranked ids with every leg's share of the score, before titles and snippets are fetched.
pub type Ranked = SearchResults<FusedHit<Arc<str>>>;

/// What [`Collection::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VerifyReport {
    /// Live documents in the sparse leg.
    pub documents: u64,
    /// Documents holding vectors in the dense leg (`None` without a readable dense leg).
    pub vectors: Option<usize>,
    /// The dense generation the last commit names.
    pub dense_generation: Option<u64>,
    /// Inconsistencies and damage: the collection is sound when there are none.
    pub problems: Vec<String>,
    /// Harmless findings (files left by interrupted commits).
    pub notes: Vec<String>,
}

impl VerifyReport {
    /// Whether no problem was found.
    pub fn is_sound(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The first five items of a list, and how many more.
fn first_few(items: &[String]) -> String {
    let mut out = items.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > 5 {
        out.push_str(&format!(" and {} more", items.len() - 5));
    }
    out
}

/// The sparse leg's list for fusion: when BM25 returned fewer documents than `depth`, it
/// returned every document that matches the query, so every other one scored 0.
pub(crate) fn sparse_list(hits: &[(Arc<str>, f32)], depth: usize) -> LegList<'_, Arc<str>> {
    LegList {
        hits,
        absent: (hits.len() < depth).then_some(0.0),
    }
}

/// A one-leg list in the fused shape: the leg's score is the hit's score.
fn single_leg(leg: Leg, list: Vec<(Arc<str>, f32)>) -> Vec<FusedHit<Arc<str>>> {
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

/// A collection: a folder holding a manifest and the search legs.
pub struct Collection {
    dir: PathBuf,
    manifest: Manifest,
    sparse: Bm25Index,
    dense: Option<DenseLeg>,
}

/// The loaded dense leg: vectors of the last commit seen (or why they could not be read), the
/// key -> id map of the live documents, and the encoder once one is attached.
struct DenseLeg {
    encoder: Option<Arc<Encoder>>,
    vectors: std::result::Result<Box<dyn VectorIndex>, String>,
    generation: Option<u64>,
    ids: Arc<HashMap<u64, Arc<str>>>,
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    let file = fs::File::open(&tmp).map_err(|e| Error::io(&tmp, e))?;
    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

impl Collection {
    /// Creates a new, empty collection in `dir` (created if missing; it must be empty).
    pub fn create(dir: &Path, analyzer: AnalyzerConfig) -> Result<Self> {
        Self::create_with(dir, analyzer, None)
    }

    /// Creates a new, empty collection in `dir` with a dense leg made by `encoder` when given.
    pub fn create_with(
        dir: &Path,
        analyzer: AnalyzerConfig,
        dense: Option<(Arc<Encoder>, DenseOptions)>,
    ) -> Result<Self> {
        if Self::exists(dir) {
            return Err(Error::NotEmpty(dir.to_path_buf()));
        }
        if dir.exists() {
            let mut entries = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
            if entries.next().is_some() {
                return Err(Error::NotEmpty(dir.to_path_buf()));
            }
        }
        let sparse_dir = dir.join(SPARSE_DIR);
        fs::create_dir_all(&sparse_dir).map_err(|e| Error::io(&sparse_dir, e))?;
        let sparse = Bm25Index::create(&sparse_dir, &analyzer)?;
        let mut leg = None;
        let dense_manifest = match dense {
            Some((encoder, options)) => {
                let dense_dir = dir.join(DENSE_DIR);
                fs::create_dir_all(&dense_dir).map_err(|e| Error::io(&dense_dir, e))?;
                let m = DenseManifest::new(&encoder, options);
                leg = Some(DenseLeg {
                    vectors: Ok(dense_leg::load_vectors(dir, &m, None)?),
                    encoder: Some(encoder),
                    generation: None,
                    ids: Arc::default(),
                });
                Some(m)
            }
            None => None,
        };
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            analyzer,
            created_by: format!("hybrid-search {}", env!("CARGO_PKG_VERSION")),
            dense: dense_manifest,
            search: None,
        };
        let json = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
        // The manifest is written last: a folder without one is not a collection yet.
        write_atomic(&dir.join(MANIFEST), &json)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
            sparse,
            dense: leg,
        })
    }

    /// Whether `dir` holds a collection (its manifest is written last, so a half-created folder
    /// is not one).
    pub fn exists(dir: &Path) -> bool {
        dir.join(MANIFEST).is_file()
    }

    /// Opens the collection in `dir` at its last commit.
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST);
        if !path.is_file() {
            return Err(Error::NotACollection(dir.to_path_buf()));
        }
        let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| Error::Manifest {
            path: path.clone(),
            message: format!("not a valid manifest ({e}); the collection must be rebuilt"),
        })?;
        if !(1..=FORMAT_VERSION).contains(&manifest.format_version) {
            return Err(Error::Manifest {
                path,
                message: format!(
                    "format version {} is not supported by this build (version {FORMAT_VERSION}); \
                     use a matching hybrid-search or rebuild the collection",
                    manifest.format_version
                ),
            });
        }
        let sparse =
            Bm25Index::open(&dir.join(SPARSE_DIR), &manifest.analyzer).map_err(|e| match e {
                hybrid_search_sparse::Error::Tantivy(e) => Error::SparseDamaged {
                    collection: dir.to_path_buf(),
                    message: e.to_string(),
                },
                e => Error::Sparse(e),
            })?;
        let mut collection = Self {
            dir: dir.to_path_buf(),
            manifest,
            sparse,
            dense: None,
        };
        collection.load_dense(None)?;
        Ok(collection)
    }

    /// (Re)loads the dense leg at the generation the last commit names, keeping `encoder`.
    fn load_dense(&mut self, encoder: Option<Arc<Encoder>>) -> Result<()> {
        let Some(manifest) = &self.manifest.dense else {
            return Ok(());
        };
        let generation = self.commit_record()?.dense_generation;
        let same = self
            .dense
            .as_ref()
            .is_some_and(|d| d.generation == generation);
        // Damaged vectors do not stop the collection from opening: the sparse leg still
        // answers, and the damage is reported by dense searches, writers and `verify`.
        let vectors = match self.dense.take() {
            Some(leg) if same => leg.vectors,
            _ => {
                dense_leg::load_vectors(&self.dir, manifest, generation).map_err(|e| e.to_string())
            }
        };
        let ids: HashMap<u64, Arc<str>> = self.sparse.live_keys()?.into_iter().collect();
        self.dense = Some(DenseLeg {
            encoder,
            vectors,
            generation,
            ids: Arc::new(ids),
        });
        Ok(())
    }

    /// Attaches the model that makes query vectors (and vectors for new documents); it must be
    /// the model the collection's vectors were made with.
    pub fn attach_encoder(&mut self, encoder: Arc<Encoder>) -> Result<()> {
        let Some(manifest) = &self.manifest.dense else {
            return Err(Error::NoModel(
                self.dir.clone(),
                "this collection was built without a dense leg, and one cannot be added to it; \
                 index the documents into a new folder with `hybrid-search index --model`"
                    .into(),
            ));
        };
        manifest.check(&encoder, &self.dir)?;
        if let Some(leg) = &mut self.dense {
            leg.encoder = Some(encoder);
        }
        Ok(())
    }

    /// The attached encoder, if any.
    pub fn encoder(&self) -> Option<&Arc<Encoder>> {
        self.dense.as_ref().and_then(|d| d.encoder.as_ref())
    }

    fn dense_leg(&self) -> Result<(&DenseLeg, &Arc<Encoder>)> {
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
    pub fn encode_queries(&self, queries: &[&str]) -> Result<Vec<Vec<f32>>> {
        let (_, encoder) = self.dense_leg()?;
        Ok(encoder.encode(queries, TextKind::Query, dense_leg::DEFAULT_BATCH)?)
    }

    /// The loaded vectors, or why they cannot be used.
    fn vectors(&self) -> Result<(&DenseLeg, &dyn VectorIndex)> {
        let leg = self.dense.as_ref().ok_or_else(|| {
            Error::NoModel(self.dir.clone(), "this collection has no dense leg".into())
        })?;
        match &leg.vectors {
            Ok(v) => Ok((leg, v.as_ref())),
            Err(message) => Err(Error::DenseDamaged {
                collection: self.dir.clone(),
                message: message.clone(),
            }),
        }
    }

    /// The top `k` documents for a query vector as (external id, cosine similarity).
    pub fn dense_search_ids(&self, vector: &[f32], k: usize) -> Result<Vec<(Arc<str>, f32)>> {
        let (leg, vectors) = self.vectors()?;
        Ok(vectors
            .search(vector, k)?
            .into_iter()
            .filter_map(|(key, score)| leg.ids.get(&key).map(|id| (id.clone(), score)))
            .collect())
    }

    /// Opens the collection in `dir`, or creates it with `analyzer` if the folder has none.
    pub fn open_or_create(dir: &Path, analyzer: AnalyzerConfig) -> Result<Self> {
        if Self::exists(dir) {
            Self::open(dir)
        } else {
            Self::create(dir, analyzer)
        }
    }

    /// The collection's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The BM25 leg.
    pub fn sparse(&self) -> &Bm25Index {
        &self.sparse
    }

    /// Number of documents at the last commit seen.
    pub fn len(&self) -> u64 {
        self.sparse.num_docs()
    }

    /// Whether the collection holds no documents.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sees the last commit (after a [`CollectionWriter::commit`]).
    pub fn reload(&mut self) -> Result<()> {
        self.sparse.reload()?;
        let encoder = self.dense.as_ref().and_then(|d| d.encoder.clone());
        self.load_dense(encoder)
    }

    fn commit_record(&self) -> Result<CommitRecord> {
        match self.sparse.commit_payload()? {
            None => Ok(CommitRecord::default()),
            Some(payload) => serde_json::from_str(&payload).map_err(|e| Error::Commit {
                path: self.dir.clone(),
                message: format!(
                    "the last commit's record is unreadable ({e}); rebuild the collection"
                ),
            }),
        }
    }

    /// A writer; only one may exist at a time (tantivy holds a lock on the index). With a
    /// dense leg, the vectors must be readable, and adding documents needs the encoder
    /// attached (deleting does not).
    pub fn writer(&mut self) -> Result<CollectionWriter> {
        self.writer_inner(false)
    }

    /// A writer; with `rebuild`, the dense leg starts from no vectors and every live document
    /// waits to be encoded again.
    fn writer_inner(&mut self, rebuild: bool) -> Result<CollectionWriter> {
        let record = self.commit_record()?;
        let dense = match (&self.manifest.dense, &self.dense) {
            (Some(manifest), Some(leg)) => {
                let encoder = leg.encoder.clone();
                if rebuild {
                    self.dense_leg()?;
                }
                let mut pending = Vec::new();
                let vectors = if rebuild {
                    for (key, id) in leg.ids.iter() {
                        if let Some(doc) = self.get(id)? {
                            pending.push((*key, dense_leg::passage_text(&doc)));
                        }
                    }
                    pending.sort_unstable_by_key(|(key, _)| *key);
                    dense_leg::load_vectors(&self.dir, manifest, None)?
                } else {
                    self.vectors()?;
                    dense_leg::load_vectors(&self.dir, manifest, record.dense_generation)?
                };
                Some(DenseWriter {
                    dir: self.dir.clone(),
                    manifest: manifest.clone(),
                    encoder,
                    vectors,
                    generation: record.dense_generation,
                    keys: leg.ids.iter().map(|(k, id)| (id.to_string(), *k)).collect(),
                    changed: !pending.is_empty(),
                    pending,
                    undo: Vec::new(),
                    progress: None,
                })
            }
            _ => None,
        };
        Ok(CollectionWriter {
            sparse: self.sparse.writer(WRITER_HEAP)?,
            next_key: record.next_key,
            dense_generation: record.dense_generation,
            dense,
        })
    }

    /// Rebuilds the dense leg's vectors from the stored documents (after the vector file was
    /// lost or damaged, see [`Error::DenseDamaged`]) and commits them as a new generation.
    /// Needs the collection's model attached. Returns the number of documents encoded.
    pub fn repair_dense(&mut self, on_encoded: Option<EncodeProgress>) -> Result<usize> {
        let mut writer = self.writer_inner(true)?;
        let Some(dense) = &mut writer.dense else {
            return Err(Error::NoModel(
                self.dir.clone(),
                "this collection has no dense leg to repair".into(),
            ));
        };
        dense.progress = on_encoded;
        let documents = dense.pending.len();
        writer.commit()?;
        writer.finish()?;
        self.reload()?;
        Ok(documents)
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
    /// tuned ones ([`Collection::set_search_defaults`]), else [`HybridOptions::default`].
    pub fn hybrid_options(&self) -> HybridOptions {
        self.manifest
            .search
            .as_ref()
            .map(|s| s.hybrid)
            .unwrap_or_default()
    }

    /// Stores `defaults` in the manifest (written atomically): later searches that do not say
    /// otherwise use them.
    pub fn set_search_defaults(&mut self, defaults: SearchDefaults) -> Result<()> {
        defaults.hybrid.fusion.validate()?;
        let mut manifest = self.manifest.clone();
        manifest.search = Some(defaults);
        let json = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
        write_atomic(&self.dir.join(MANIFEST), &json)?;
        self.manifest = manifest;
        Ok(())
    }

    /// The top `k` documents for `query`, ranked by the leg(s) `mode` names, with each leg's
    /// share of every score. `vector` is the query's vector when already encoded.
    ///
    /// A hybrid search whose dense leg fails (no model attached, damaged vectors, an encoder
    /// error) is answered by the sparse leg alone, and says so in
    /// [`SearchResults::fallback`]; a dense search fails instead.
    pub fn rank(
        &self,
        query: &str,
        vector: Option<&[f32]>,
        k: usize,
        mode: Mode,
        options: &HybridOptions,
    ) -> Result<Ranked> {
        let dense_list = |depth: usize| -> Result<Vec<(Arc<str>, f32)>> {
            match vector {
                Some(v) => self.dense_search_ids(v, depth),
                None => self.dense_search_ids(&self.encode_queries(&[query])?[0], depth),
            }
        };
        let (mode, fallback, hits) = match mode {
            Mode::Sparse => (
                mode,
                None,
                single_leg(Leg::Sparse, self.search_ids(query, k)?),
            ),
            Mode::Dense => (mode, None, single_leg(Leg::Dense, dense_list(k)?)),
            Mode::Hybrid => {
                let depth = options.depth.max(k);
                let sparse = self.search_ids(query, depth)?;
                let (mode, fallback, dense) = match dense_list(depth) {
                    Ok(dense) => (Mode::Hybrid, None, dense),
                    Err(err) => (Mode::Sparse, Some(err.to_string()), Vec::new()),
                };
                let mut fused = options
                    .fusion
                    .fuse_lists(sparse_list(&sparse, depth), LegList::new(&dense))?;
                fused.truncate(k);
                (mode, fallback, fused)
            }
        };
        Ok(SearchResults {
            mode,
            fallback,
            hits,
        })
    }

    /// The top `k` documents as (external id, BM25 score), ranked. Ids are shared, not copied.
    pub fn search_ids(&self, query: &str, k: usize) -> Result<Vec<(Arc<str>, f32)>> {
        Ok(self
            .sparse
            .search(query, k)?
            .into_iter()
            .map(|h| (h.id, h.score))
            .collect())
    }

    /// The top `k` documents with title and snippet, in the collection's default mode and
    /// fusion settings ([`Collection::default_mode`], [`Collection::hybrid_options`]).
    pub fn search(&self, query: &str, k: usize) -> Result<SearchResults> {
        self.search_with(query, k, self.default_mode(), &self.hybrid_options())
    }

    /// The top `k` documents from the leg(s) `mode` names, with title and snippet.
    pub fn search_with(
        &self,
        query: &str,
        k: usize,
        mode: Mode,
        options: &HybridOptions,
    ) -> Result<SearchResults> {
        let ranked = self.rank(query, None, k, mode, options)?;
        Ok(SearchResults {
            mode: ranked.mode,
            fallback: ranked.fallback,
            hits: self.hits(query, ranked.hits)?,
        })
    }

    /// Ranked hits of `query` ([`Collection::rank`], possibly reranked) with title and
    /// snippet.
    pub fn hits(&self, query: &str, ranked: Vec<FusedHit<Arc<str>>>) -> Result<Vec<Hit>> {
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
            });
        }
        Ok(hits)
    }

    /// Upserts `docs` in one commit, merges the load into one segment and reloads; `on_doc` runs
    /// after each upsert (a progress bar). On error nothing of `docs` is committed.
    pub fn bulk_load(&mut self, docs: &[Document], on_doc: impl FnMut()) -> Result<()> {
        self.bulk_load_with(docs, on_doc, None)
    }

    /// [`Collection::bulk_load`], with `on_encoded` told (inputs encoded, inputs in all) while
    /// the dense leg encodes the documents.
    pub fn bulk_load_with(
        &mut self,
        docs: &[Document],
        on_doc: impl FnMut(),
        on_encoded: Option<EncodeProgress>,
    ) -> Result<()> {
        self.upsert_all(docs, on_doc, on_encoded, true)
    }

    /// Upserts `docs` (a document whose id exists is replaced) in one commit covering both
    /// legs, and reloads. Unlike [`Collection::bulk_load`] it leaves segment merging to the
    /// background policy, so adding to a large collection does not rewrite it. On error, or
    /// if the process dies, nothing of `docs` is committed and the last commit stays whole.
    pub fn add(&mut self, docs: &[Document], on_encoded: Option<EncodeProgress>) -> Result<()> {
        self.upsert_all(docs, || {}, on_encoded, false)
    }

    fn upsert_all(
        &mut self,
        docs: &[Document],
        mut on_doc: impl FnMut(),
        on_encoded: Option<EncodeProgress>,
        merge: bool,
    ) -> Result<()> {
        let mut writer = self.writer()?;
        if let Some(dense) = &mut writer.dense {
            dense.progress = on_encoded;
        }
        for doc in docs {
            writer.upsert(doc)?;
            on_doc();
        }
        writer.commit()?;
        if merge {
            writer.optimize()?;
        }
        writer.finish()?;
        self.reload()
    }

    /// Deletes the documents with these ids in one commit covering both legs, and reloads.
    /// Returns how many of them existed.
    pub fn delete(&mut self, ids: &[&str]) -> Result<usize> {
        let ids: std::collections::BTreeSet<&str> = ids.iter().copied().collect();
        let mut found = 0;
        for id in &ids {
            if self.sparse.get(id)?.is_some() {
                found += 1;
            }
        }
        let mut writer = self.writer()?;
        for id in ids {
            writer.delete(id)?;
        }
        writer.commit()?;
        writer.finish()?;
        self.reload()?;
        Ok(found)
    }

    /// Checks that the collection is whole and both legs hold the same documents: every live
    /// document readable and its id unique, the commit record ahead of every key, and (with a
    /// dense leg) exactly one set of vectors per live document and none for anything else.
    /// Problems are reported, not repaired; leftovers of interrupted commits are notes.
    pub fn verify(&self) -> Result<VerifyReport> {
        let mut report = VerifyReport {
            documents: self.sparse.num_docs(),
            ..VerifyReport::default()
        };
        let live = self.sparse.live_keys()?;
        if live.len() as u64 != report.documents {
            report.problems.push(format!(
                "the sparse index counts {} documents but lists {} live keys",
                report.documents,
                live.len()
            ));
        }
        let mut seen: HashMap<&str, u64> = HashMap::with_capacity(live.len());
        for (key, id) in &live {
            if let Some(other) = seen.insert(id, *key) {
                report.problems.push(format!(
                    "document id {id:?} is live twice (keys {other} and {key})"
                ));
            }
        }
        let record = self.commit_record()?;
        report.dense_generation = record.dense_generation;
        if let Some(max) = live.iter().map(|(k, _)| *k).max()
            && max >= record.next_key
        {
            report.problems.push(format!(
                "the commit record's next key {} is not above the largest key in use {max}",
                record.next_key
            ));
        }
        let mut unreadable = Vec::new();
        for (_, id) in &live {
            match self.sparse.get(id) {
                Ok(Some(_)) => {}
                Ok(None) => unreadable.push(format!("{id:?} (not found by its id)")),
                Err(e) => unreadable.push(format!("{id:?} ({e})")),
            }
        }
        if !unreadable.is_empty() {
            report.problems.push(format!(
                "{} stored documents cannot be read: {}",
                unreadable.len(),
                first_few(&unreadable)
            ));
        }
        if self.manifest.dense.is_some() {
            match self.vectors() {
                Err(e) => report.problems.push(e.to_string()),
                Ok((_, vectors)) => {
                    report.vectors = Some(vectors.len());
                    let missing: Vec<String> = live
                        .iter()
                        .filter(|(key, _)| !vectors.contains(*key))
                        .map(|(_, id)| format!("{id:?}"))
                        .collect();
                    if !missing.is_empty() {
                        report.problems.push(format!(
                            "{} documents have no vector: {}",
                            missing.len(),
                            first_few(&missing)
                        ));
                    }
                    let present = live.len() - missing.len();
                    if vectors.len() != present {
                        report.problems.push(format!(
                            "the vector index holds {} keys that are not live documents",
                            vectors.len() - present
                        ));
                    }
                }
            }
            let current = record
                .dense_generation
                .zip(self.manifest.dense.as_ref())
                .map(|(g, m)| dense_leg::vectors_path(&self.dir, m.kind, g));
            let dense_dir = self.dir.join(DENSE_DIR);
            if let Ok(entries) = fs::read_dir(&dense_dir) {
                for entry in entries.flatten() {
                    if Some(entry.path()) != current {
                        report.notes.push(format!(
                            "{} is not part of the last commit (left by an interrupted or \
                             superseded commit; the next commit removes it)",
                            entry.path().display()
                        ));
                    }
                }
            }
        }
        Ok(report)
    }

    /// The stored document with external id `id`.
    pub fn get(&self, id: &str) -> Result<Option<Document>> {
        Ok(self.sparse.get(id)?.map(|d| Document {
            id: d.id,
            title: d.title,
            text: d.text,
        }))
    }
}

/// Adds and deletes documents; nothing is visible, and nothing committed is lost, until
/// [`CollectionWriter::commit`]. Dropping a writer without committing discards its changes.
pub struct CollectionWriter {
    sparse: Bm25Writer,
    next_key: u64,
    dense_generation: Option<u64>,
    dense: Option<DenseWriter>,
}

impl CollectionWriter {
    /// Adds `doc`, replacing the document with the same id if there is one.
    pub fn upsert(&mut self, doc: &Document) -> Result<()> {
        let key = self.next_key;
        self.next_key += 1;
        self.sparse.upsert(&SparseDoc {
            id: doc.id.clone(),
            key,
            title: doc.title.clone(),
            text: doc.text.clone(),
        })?;
        if let Some(dense) = &mut self.dense {
            dense.upsert(doc, key)?;
        }
        Ok(())
    }

    /// Deletes the document with external id `id` (no error if there is none).
    pub fn delete(&mut self, id: &str) -> Result<()> {
        self.sparse.delete(id);
        if let Some(dense) = &mut self.dense {
            dense.delete(id)?;
        }
        Ok(())
    }

    /// Makes every change since the last commit durable and visible to [`Collection::reload`].
    ///
    /// The dense vectors are encoded and written first, as a new generation file; the sparse
    /// commit, whose record names that generation, then switches both legs at once.
    pub fn commit(&mut self) -> Result<()> {
        let mut written = None;
        if let Some(dense) = &mut self.dense {
            dense.flush()?;
            if dense.changed {
                let generation = dense.generation.map_or(1, |g| g + 1);
                let path = dense_leg::vectors_path(&dense.dir, dense.manifest.kind, generation);
                dense.vectors.save(&path)?;
                written = Some((generation, path));
            }
        }
        let record = CommitRecord {
            next_key: self.next_key,
            dense_generation: written.as_ref().map(|(g, _)| *g).or(self.dense_generation),
        };
        let payload = serde_json::to_string(&record).expect("record serialises");
        self.sparse.commit(&payload)?;
        self.dense_generation = record.dense_generation;
        if let Some(dense) = &mut self.dense {
            dense.committed();
        }
        if let (Some(dense), Some((generation, path))) = (&mut self.dense, written) {
            dense.generation = Some(generation);
            dense_leg::remove_stale(&dense.dir, &path)?;
        }
        Ok(())
    }

    /// Discards every change since the last commit.
    pub fn rollback(&mut self) -> Result<()> {
        self.sparse.rollback()?;
        if let Some(dense) = &mut self.dense {
            dense.rollback()?;
        }
        Ok(())
    }

    /// Merges the committed documents into one segment: call after a bulk load for the fastest
    /// deep (k = 1000) searches. The merge replaces segments atomically; nothing is lost if it
    /// is interrupted.
    pub fn optimize(&mut self) -> Result<()> {
        self.sparse.merge_all()?;
        Ok(())
    }

    /// Waits for background merges, so the folder is compact when the process exits.
    pub fn finish(self) -> Result<()> {
        Ok(self.sparse.wait_merging_threads()?)
    }
}
