//! The collection on disk: manifest, the sparse leg and the commit record.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use hybrid_search_dense::{Encoder, TextKind};
use hybrid_search_document::Document;
use hybrid_search_fusion::{
    ConvexSettings, FusedHit, Fusion, Leg, LegList, LegScore, Normalization,
};
use hybrid_search_sparse::{AnalyzerConfig, Bm25Index, Bm25Writer, SparseDoc};

use crate::dense_leg::{
    self, DENSE_DIR, DenseManifest, DenseOptions, DenseWriter, EncodeProgress, Segment,
    SegmentRecord,
};
use crate::error::{Error, Result};
use crate::failpoint;
use crate::lock::{Wait, WriteLock};
use crate::snippet::{query_terms, snippet_for_terms};

/// The on-disk format version this code writes: 3, vector segments listed in each commit.
/// Versions 1 (no dense leg) and 2 (one vector file per commit) are still read, and a write
/// upgrades them to 3.
pub const FORMAT_VERSION: u32 = 3;

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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct CommitRecord {
    /// The next internal key to hand out.
    next_key: u64,
    /// Format 2: the generation of the one vector file this commit goes with (read only; it
    /// becomes the single entry of `segments`).
    #[serde(default, skip_serializing)]
    dense_generation: Option<u64>,
    /// The live vector segments, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    segments: Vec<SegmentRecord>,
    /// The id of the next segment file.
    #[serde(default)]
    next_segment: u64,
}

impl CommitRecord {
    /// Reads a commit's payload, turning a format 2 record into a one-segment list (its file
    /// listed with `legacy_keys` keys: the live documents, which it held).
    fn parse(
        payload: Option<&str>,
        dir: &Path,
        kind: Option<dense_leg::VectorKind>,
        legacy_keys: u64,
    ) -> Result<Self> {
        let Some(payload) = payload else {
            return Ok(Self::default());
        };
        let mut record: CommitRecord =
            serde_json::from_str(payload).map_err(|e| Error::Commit {
                path: dir.to_path_buf(),
                message: format!(
                    "the last commit's record is unreadable ({e}); rebuild the collection"
                ),
            })?;
        if let (Some(generation), Some(kind)) = (record.dense_generation.take(), kind)
            && record.segments.is_empty()
        {
            record.segments.push(SegmentRecord {
                file: dense_leg::legacy_file(kind, generation),
                keys: legacy_keys,
            });
        }
        Ok(record)
    }

    fn payload(&self) -> String {
        serde_json::to_string(self).expect("record serialises")
    }
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
    /// Vector segments the last commit lists (`None` without a dense leg).
    pub segments: Option<usize>,
    /// Vectors of deleted or replaced documents still in segments (dropped by merges).
    pub deleted_vectors: usize,
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
    /// The record of the commit the sparse searcher is on.
    record: CommitRecord,
    dense: Option<DenseLeg>,
    /// How long writes wait for another writer ([`Collection::set_write_wait`]).
    wait: Wait,
    /// Problems met after a commit was already durable ([`Collection::take_warnings`]).
    warnings: Vec<String>,
}

/// The loaded dense leg: the segments of the commit the searcher is on (or why they could not
/// be read), the key -> id map of the live documents (built at the first dense search), and
/// the encoder once one is attached.
struct DenseLeg {
    encoder: Option<Arc<Encoder>>,
    /// The commit's segments, opened at their first use.
    segments: OnceLock<std::result::Result<Vec<Arc<Segment>>, String>>,
    /// Segments already open (or handed over by a writer), by file name.
    known: HashMap<String, Arc<Segment>>,
    /// Why the segments cannot be used, when the check at reload found a file missing or cut.
    damage: Option<String>,
    ids: OnceLock<Arc<HashMap<u64, Arc<str>>>>,
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    let file = fs::File::open(&tmp).map_err(|e| Error::io(&tmp, e))?;
    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<()> {
    let json = serde_json::to_vec_pretty(manifest).expect("manifest serialises");
    write_atomic(&dir.join(MANIFEST), &json)
}

fn read_manifest(dir: &Path) -> Result<Manifest> {
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
    Ok(manifest)
}

/// Maps tantivy's own writer-lock error (a writer of an older hybrid-search holds it) to
/// [`Error::Busy`].
fn sparse_writer_error(dir: &Path, e: hybrid_search_sparse::Error) -> Error {
    match e {
        hybrid_search_sparse::Error::Tantivy(tantivy_error)
            if tantivy_error.to_string().contains("LockBusy") =>
        {
            Error::Busy {
                collection: dir.to_path_buf(),
                lock: dir.join(SPARSE_DIR).join(".tantivy-writer.lock"),
            }
        }
        e => Error::Sparse(e),
    }
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
                dense_leg::new_index(&m)?; // the settings can make an index
                leg = Some(DenseLeg {
                    segments: OnceLock::new(),
                    known: HashMap::new(),
                    damage: None,
                    encoder: Some(encoder),
                    ids: OnceLock::new(),
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
        // The manifest is written last: a folder without one is not a collection yet.
        write_manifest(dir, &manifest)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
            sparse,
            record: CommitRecord::default(),
            dense: leg,
            wait: Wait::No,
            warnings: Vec::new(),
        })
    }

    /// Whether `dir` holds a collection (its manifest is written last, so a half-created folder
    /// is not one).
    pub fn exists(dir: &Path) -> bool {
        dir.join(MANIFEST).is_file()
    }

    /// Opens the collection in `dir` at its last commit.
    pub fn open(dir: &Path) -> Result<Self> {
        let manifest = read_manifest(dir)?;
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
            record: CommitRecord::default(),
            dense: None,
            wait: Wait::No,
            warnings: Vec::new(),
        };
        collection.reload_with(Vec::new())?;
        Ok(collection)
    }

    /// How long [`Collection::add`], [`Collection::delete`], [`Collection::writer`] and the
    /// other writes wait when another writer holds the collection: by default they fail at
    /// once with [`Error::Busy`].
    pub fn set_write_wait(&mut self, wait: Wait) {
        self.wait = wait;
    }

    /// Problems met after a commit was already durable (removing unreferenced files, a merge
    /// that failed and will be retried): the commit stands; these are worth a warning.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Sees the last commit: the sparse searcher and the commit record from one commit. The
    /// commit's vector segments are checked (present, whole: a footer and length check) but
    /// opened only when a dense search or `verify` needs them, so a writer never pays for
    /// opening them; segments already opened, and `fresh` ones a writer of this process hands
    /// over, are reused. A segment file that a writer in another process removed while this
    /// was reading the commit is retried at the newer commit.
    fn reload_with(&mut self, fresh: Vec<Arc<Segment>>) -> Result<()> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let payload = self.sparse.reload_consistent()?;
            let kind = self.manifest.dense.as_ref().map(|d| d.kind);
            let record =
                CommitRecord::parse(payload.as_deref(), &self.dir, kind, self.sparse.num_docs())?;
            let Some(manifest) = &self.manifest.dense else {
                self.record = record;
                return Ok(());
            };
            let mut known: HashMap<String, Arc<Segment>> = HashMap::new();
            if let Some(leg) = &self.dense {
                known.extend(leg.known.iter().map(|(f, s)| (f.clone(), s.clone())));
                if let Some(Ok(segments)) = leg.segments.get() {
                    known.extend(segments.iter().map(|s| (s.file.clone(), s.clone())));
                }
            }
            known.extend(fresh.iter().map(|s| (s.file.clone(), s.clone())));
            known.retain(|file, _| record.segments.iter().any(|s| &s.file == file));
            let mut damage = None;
            for s in record
                .segments
                .iter()
                .filter(|s| !known.contains_key(&s.file))
            {
                if let Err(e) = dense_leg::check_segment(&self.dir, manifest, &s.file) {
                    let missing = !self.dir.join(DENSE_DIR).join(&s.file).exists();
                    damage = Some((missing, e.to_string()));
                    break;
                }
            }
            // Damaged vectors do not stop the collection from opening: the sparse leg still
            // answers, and the damage is reported by dense searches, writers and `verify`.
            if let Some((true, _)) = damage
                && attempts < 20
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
            let encoder = self.dense.as_ref().and_then(|d| d.encoder.clone());
            self.record = record;
            self.dense = Some(DenseLeg {
                encoder,
                segments: OnceLock::new(),
                known,
                damage: damage.map(|(_, message)| message),
                ids: OnceLock::new(),
            });
            return Ok(());
        }
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
    /// The loaded segments, or why they cannot be used.
    fn segments(&self) -> Result<(&DenseLeg, &[Arc<Segment>])> {
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

    /// Refuses a write when the last commit's segments are missing or cut short.
    fn check_dense_writable(&self) -> Result<()> {
        match self.dense.as_ref().and_then(|leg| leg.damage.as_ref()) {
            Some(message) => Err(Error::DenseDamaged {
                collection: self.dir.clone(),
                message: message.clone(),
            }),
            None => Ok(()),
        }
    }

    /// The key -> id map of the live documents, read from the sparse leg once per commit seen.
    fn live_ids(&self, leg: &DenseLeg) -> Result<Arc<HashMap<u64, Arc<str>>>> {
        if let Some(ids) = leg.ids.get() {
            return Ok(ids.clone());
        }
        let ids: Arc<HashMap<u64, Arc<str>>> =
            Arc::new(self.sparse.live_keys()?.into_iter().collect());
        Ok(leg.ids.get_or_init(|| ids).clone())
    }

    /// The top `k` documents for a query vector as (external id, cosine similarity): each
    /// segment's top `k` among live documents, merged.
    pub fn dense_search_ids(&self, vector: &[f32], k: usize) -> Result<Vec<(Arc<str>, f32)>> {
        let (leg, segments) = self.segments()?;
        if let Some(m) = &self.manifest.dense {
            dense_leg::check_supplied("", vector, m.vectors.dim).map_err(|e| match e {
                Error::InvalidVector { message, .. } => {
                    Error::InvalidOption(format!("the query vector cannot be used: {message}"))
                }
                e => e,
            })?;
        }
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

    /// Sees the last commit (after a [`CollectionWriter::commit`], or another process's).
    pub fn reload(&mut self) -> Result<()> {
        self.reload_with(Vec::new())
    }

    /// A writer; one at a time per collection, across processes (the collection's write lock,
    /// waited for as [`Collection::set_write_wait`] says, else [`Error::Busy`]). Once the lock
    /// is held the collection is reloaded, so the writer starts from the last commit whoever
    /// made it. With a dense leg, the vectors must be readable, and adding documents without
    /// vectors needs the encoder attached (deleting does not).
    pub fn writer(&mut self) -> Result<CollectionWriter> {
        self.writer_inner(false)
    }

    /// A writer; with `rebuild`, the dense leg starts from no segments and every live document
    /// waits to be encoded again.
    fn writer_inner(&mut self, rebuild: bool) -> Result<CollectionWriter> {
        let lock = WriteLock::acquire(&self.dir, self.wait)?;
        // Another writer may have committed (or changed the manifest) since this was opened.
        let manifest = read_manifest(&self.dir)?;
        let encoder = self.dense.as_ref().and_then(|d| d.encoder.clone());
        if manifest != self.manifest {
            self.manifest = manifest;
        }
        self.reload()?;
        if let Some(leg) = &mut self.dense
            && leg.encoder.is_none()
        {
            leg.encoder = encoder;
        }
        if self.manifest.format_version < FORMAT_VERSION {
            // The commits this writer makes list segments: older builds must not read them.
            let mut upgraded = self.manifest.clone();
            upgraded.format_version = FORMAT_VERSION;
            write_manifest(&self.dir, &upgraded)?;
            self.manifest = upgraded;
        }
        let mut segments = HashMap::new();
        let dense = match &self.manifest.dense {
            Some(manifest) => {
                let leg = self.dense.as_ref().expect("loaded with the manifest");
                let mut writer = DenseWriter::new(&self.dir, manifest, leg.encoder.clone());
                if rebuild {
                    self.dense_leg()?;
                    let mut live = self.sparse.live_keys()?;
                    live.sort_unstable_by_key(|(key, _)| *key);
                    for (key, id) in live {
                        if let Some(doc) = self.sparse.get(&id)? {
                            writer.pending.push((
                                key,
                                hybrid_search_document::passage_text(&Document {
                                    id: doc.id,
                                    title: doc.title,
                                    text: doc.text,
                                    vector: None,
                                }),
                            ));
                        }
                    }
                } else {
                    self.check_dense_writable()?;
                    let leg = self.dense.as_ref().expect("loaded with the manifest");
                    segments = leg.known.clone();
                    if let Some(Ok(opened)) = leg.segments.get() {
                        segments.extend(opened.iter().map(|s| (s.file.clone(), s.clone())));
                    }
                }
                Some(writer)
            }
            None => None,
        };
        // With the collection's lock held, tantivy's own lock can be busy only for a moment:
        // the previous writer releases it just after (or, when its process exits, about when)
        // it releases the collection's. A writer of an older build holds it for good.
        let mut tries = 0;
        let sparse = loop {
            match self.sparse.writer(WRITER_HEAP) {
                Ok(writer) => break writer,
                Err(e) => match sparse_writer_error(&self.dir, e) {
                    Error::Busy { .. } if tries < 100 => {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(50));
                    }
                    e => return Err(e),
                },
            }
        };
        Ok(CollectionWriter {
            _lock: lock,
            dir: self.dir.clone(),
            sparse,
            next_key: self.record.next_key,
            base: self.record.clone(),
            rebuild,
            segments,
            dense,
            warnings: Vec::new(),
            fresh_ids: (self.sparse.num_docs() == 0).then(HashSet::new),
            poisoned: None,
        })
    }

    /// Rebuilds the dense leg's vectors from the stored documents (after the vector files were
    /// lost or damaged, see [`Error::DenseDamaged`]) and commits them as one new segment.
    /// Every document is encoded from its text: vectors that were supplied with documents are
    /// stored nowhere else, so they are replaced by the model's.
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
        self.commit_writer(writer, false)?;
        Ok(documents)
    }

    /// Commits `writer` (the durable point), hands its segments to this reader, merges
    /// segments when the merge policy asks for it, and waits for tantivy's merges. Anything
    /// that fails after the commit is durable becomes a warning ([`Collection::take_warnings`]).
    fn commit_writer(&mut self, mut writer: CollectionWriter, optimize: bool) -> Result<()> {
        writer.commit()?;
        let after = |this: &mut Self, writer: &mut CollectionWriter| -> Result<()> {
            this.reload_with(writer.segments.values().cloned().collect())?;
            if optimize {
                writer.optimize()?;
            }
            if writer.merge_segments(&this.sparse)? {
                this.reload_with(writer.segments.values().cloned().collect())?;
            }
            Ok(())
        };
        if let Err(e) = after(self, &mut writer) {
            self.warnings.push(format!(
                "the commit is durable, but what follows it failed: {e}"
            ));
        }
        self.warnings.append(&mut writer.warnings);
        if let Err(e) = writer.finish() {
            self.warnings.push(format!(
                "waiting for the BM25 index's background merges: {e}"
            ));
        }
        if let Err(e) = self.reload() {
            self.warnings
                .push(format!("reloading after the commit: {e}"));
        }
        Ok(())
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
        let _lock = WriteLock::acquire(&self.dir, self.wait)?;
        // Another writer may have changed the manifest (a format upgrade) since it was read.
        let mut manifest = read_manifest(&self.dir)?;
        manifest.search = Some(defaults);
        write_manifest(&self.dir, &manifest)?;
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
    /// Upserts `docs` in one commit, merges the load into one segment and reloads; `on_doc` runs
    /// after each upsert (a progress bar). On error nothing of `docs` is committed.
    pub fn bulk_load(&mut self, docs: &[Document], on_doc: impl FnMut()) -> Result<()> {
        self.bulk_load_with(docs, on_doc, None)
    }

    /// [`Collection::bulk_load`], with `on_encoded` told (inputs encoded, inputs queued so
    /// far) while the dense leg encodes the documents.
    pub fn bulk_load_with(
        &mut self,
        docs: &[Document],
        on_doc: impl FnMut(),
        on_encoded: Option<EncodeProgress>,
    ) -> Result<()> {
        self.upsert_stream(
            docs.iter()
                .map(|d| Ok::<_, Error>(std::borrow::Cow::Borrowed(d))),
            on_doc,
            on_encoded,
            true,
        )
    }

    /// Upserts `docs` (a document whose id exists is replaced) in one commit covering both
    /// legs, and reloads. Unlike [`Collection::bulk_load`] it leaves segment merging to the
    /// merge policies, so adding to a large collection does not rewrite it: the commit writes
    /// one new vector segment holding just these documents' vectors. On error, or if the
    /// process dies, nothing of `docs` is committed and the last commit stays whole.
    pub fn add(&mut self, docs: &[Document], on_encoded: Option<EncodeProgress>) -> Result<()> {
        self.upsert_stream(
            docs.iter()
                .map(|d| Ok::<_, Error>(std::borrow::Cow::Borrowed(d))),
            || {},
            on_encoded,
            false,
        )
    }

    /// Upserts the documents of a stream in one commit: they are staged in bounded batches
    /// (tantivy's indexing memory; [`dense_leg::STAGE_DOCUMENTS`] passages encoded at a time),
    /// so memory does not grow with the stream's text. The first error, from the stream (a bad
    /// line) or from a document (a bad vector), stops it and nothing is committed. `merge`
    /// also merges the BM25 index into one segment afterwards (a bulk load).
    pub fn upsert_stream<'a, E>(
        &mut self,
        docs: impl IntoIterator<Item = std::result::Result<std::borrow::Cow<'a, Document>, E>>,
        mut on_doc: impl FnMut(),
        on_encoded: Option<EncodeProgress>,
        merge: bool,
    ) -> std::result::Result<(), E>
    where
        E: From<Error>,
    {
        let mut writer = self.writer()?;
        if let Some(dense) = &mut writer.dense {
            dense.progress = on_encoded;
        }
        if merge {
            writer.sparse.without_background_merges();
        }
        for doc in docs {
            let doc = doc?;
            writer.upsert(&doc)?;
            on_doc();
        }
        self.commit_writer(writer, merge)?;
        Ok(())
    }

    /// Deletes the documents with these ids in one commit covering both legs, and reloads.
    /// Returns how many of them existed. Nothing is written to the dense leg: the vectors of
    /// deleted documents are skipped by searches and dropped by the next merge of their
    /// segment.
    pub fn delete(&mut self, ids: &[&str]) -> Result<usize> {
        let ids: std::collections::BTreeSet<&str> = ids.iter().copied().collect();
        let mut writer = self.writer()?;
        let mut found = 0;
        for id in &ids {
            if self.sparse.get(id)?.is_some() {
                found += 1;
            }
        }
        for id in ids {
            writer.delete(id)?;
        }
        self.commit_writer(writer, false)?;
        Ok(found)
    }

    /// Checks that the collection is whole and both legs hold the same documents: every live
    /// document readable, its id and internal key unique, the commit record ahead of every
    /// key, and (with a dense leg) every live document's vectors in exactly one segment.
    /// Problems are reported, not repaired; leftovers of interrupted commits and vectors of
    /// deleted documents awaiting a merge are notes.
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
        let mut ids_seen: HashMap<&str, u64> = HashMap::with_capacity(live.len());
        let mut keys_seen: HashMap<u64, &str> = HashMap::with_capacity(live.len());
        for (key, id) in &live {
            if let Some(other) = ids_seen.insert(id, *key) {
                report.problems.push(format!(
                    "document id {id:?} is live twice (keys {other} and {key})"
                ));
            }
            if let Some(other) = keys_seen.insert(*key, id) {
                report.problems.push(format!(
                    "internal key {key} is used by two live documents, {other:?} and {id:?}"
                ));
            }
        }
        let record = &self.record;
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
            report.segments = Some(record.segments.len());
            match self.segments() {
                Err(e) => report.problems.push(e.to_string()),
                Ok((_, segments)) => {
                    let mut holders: HashMap<u64, usize> = HashMap::with_capacity(live.len());
                    for segment in segments {
                        let keys = segment.index.keys();
                        let unheld: Vec<String> = keys
                            .iter()
                            .filter(|k| !segment.index.contains(**k))
                            .map(|k| k.to_string())
                            .collect();
                        if !unheld.is_empty() {
                            report.problems.push(format!(
                                "segment {} lists {} keys it holds no vector for: {}",
                                segment.file,
                                unheld.len(),
                                first_few(&unheld)
                            ));
                        }
                        for key in keys {
                            if keys_seen.contains_key(&key) {
                                *holders.entry(key).or_insert(0) += 1;
                            } else {
                                report.deleted_vectors += 1;
                            }
                        }
                    }
                    report.vectors = Some(holders.len());
                    let missing: Vec<String> = live
                        .iter()
                        .filter(|(key, _)| !holders.contains_key(key))
                        .map(|(_, id)| format!("{id:?}"))
                        .collect();
                    if !missing.is_empty() {
                        report.problems.push(format!(
                            "{} documents have no vector: {}",
                            missing.len(),
                            first_few(&missing)
                        ));
                    }
                    let doubled: Vec<String> = live
                        .iter()
                        .filter(|(key, _)| holders.get(key).is_some_and(|n| *n > 1))
                        .map(|(key, id)| format!("{id:?} (key {key})"))
                        .collect();
                    if !doubled.is_empty() {
                        report.problems.push(format!(
                            "{} documents have vectors in more than one segment: {}",
                            doubled.len(),
                            first_few(&doubled)
                        ));
                    }
                    if report.deleted_vectors > 0 {
                        report.notes.push(format!(
                            "{} keys of deleted or replaced documents still hold vectors; \
                             merges drop them",
                            report.deleted_vectors
                        ));
                    }
                }
            }
            let dense_dir = self.dir.join(DENSE_DIR);
            if let Ok(entries) = fs::read_dir(&dense_dir) {
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if !record.segments.iter().any(|s| s.file == name) {
                        report.notes.push(format!(
                            "{} is not part of the last commit (left by an interrupted commit \
                             or merge, or kept for readers of the previous commit; a later \
                             commit removes it)",
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
            vector: None,
        }))
    }
}

/// Adds and deletes documents; nothing is visible, and nothing committed is lost, until
/// [`CollectionWriter::commit`]. Dropping a writer without committing discards its changes.
/// The writer holds the collection's write lock until it is dropped.
pub struct CollectionWriter {
    dir: PathBuf,
    sparse: Bm25Writer,
    next_key: u64,
    /// The record of the last commit.
    base: CommitRecord,
    /// Whether the next commit replaces every segment (repair).
    rebuild: bool,
    /// Segments of the last commit that are open (the reader's, and those this writer made),
    /// by file name; the others are opened when a merge needs them.
    segments: HashMap<String, Arc<Segment>>,
    dense: Option<DenseWriter>,
    /// Problems after a durable commit.
    warnings: Vec<String>,
    /// The ids written so far, while the collection had no committed document when this
    /// writer started (until its first commit): such ids need no delete before their insert.
    fresh_ids: Option<HashSet<String>>,
    /// Set when an operation failed part way (an encoder or disk error): the staged changes
    /// may be incomplete, so every call fails until [`CollectionWriter::rollback`].
    poisoned: Option<String>,
    /// Declared last, so dropped last: tantivy's writer (and its lock) goes first.
    _lock: WriteLock,
}

impl CollectionWriter {
    /// Adds `doc`, replacing the document with the same id if there is one. A document with a
    /// `vector` has that vector stored (it must have the model's dimensions and finite values)
    /// instead of its text encoded.
    pub fn upsert(&mut self, doc: &Document) -> Result<()> {
        self.check_poisoned()?;
        let result = self.upsert_inner(doc);
        self.poison_on(&result);
        result
    }

    /// Fails when an earlier call left the staged changes incomplete.
    fn check_poisoned(&self) -> Result<()> {
        match &self.poisoned {
            Some(cause) => Err(Error::InvalidOption(format!(
                "this writer's changes are incomplete after an earlier error ({cause}); call \
                 rollback (or drop the writer) and write them again"
            ))),
            None => Ok(()),
        }
    }

    /// Marks the writer unusable after an error that may have left a change half staged
    /// (errors found before anything changes, a bad vector or a missing model, do not).
    fn poison_on<T>(&mut self, result: &Result<T>) {
        if let Err(e) = result
            && !matches!(e, Error::InvalidVector { .. } | Error::NoModel(..))
        {
            self.poisoned = Some(e.to_string());
        }
    }

    fn upsert_inner(&mut self, doc: &Document) -> Result<()> {
        let key = self.next_key;
        match &mut self.dense {
            Some(dense) => dense.upsert(doc, key)?,
            None if doc.vector.is_some() => {
                return Err(Error::InvalidVector {
                    id: doc.id.clone(),
                    message: "this collection has no dense leg (it was built without \
                              --model); leave the field out, or index into a collection built \
                              with a model"
                        .into(),
                });
            }
            None => {}
        }
        self.next_key += 1;
        let sparse_doc = SparseDoc {
            id: doc.id.clone(),
            key,
            title: doc.title.clone(),
            text: doc.text.clone(),
        };
        // Loading into an empty collection: an id not seen before needs no delete.
        let new_id = self
            .fresh_ids
            .as_mut()
            .is_some_and(|seen| seen.insert(doc.id.clone()));
        if new_id {
            self.sparse.insert(&sparse_doc)?;
        } else {
            self.sparse.upsert(&sparse_doc)?;
        }
        Ok(())
    }

    /// Deletes the document with external id `id` (no error if there is none).
    pub fn delete(&mut self, id: &str) -> Result<()> {
        self.check_poisoned()?;
        self.sparse.delete(id);
        let result = match &mut self.dense {
            Some(dense) => dense.forget_id(id),
            None => Ok(()),
        };
        self.poison_on(&result);
        result
    }

    fn dense_dir(&self) -> PathBuf {
        self.dir.join(DENSE_DIR)
    }

    /// Makes every change since the last commit durable and visible to [`Collection::reload`].
    ///
    /// The new documents' vectors are encoded and written first, as one new segment file; the
    /// sparse commit, whose record lists the live segments, then switches both legs at once.
    /// Files that neither this commit nor the one before it lists are removed afterwards
    /// (a failure there is kept as a warning: the commit stands).
    ///
    /// Merging vector segments is left to [`Collection::add`], [`Collection::delete`] and the
    /// other collection-level writes, which run the merge policy after their commit.
    pub fn commit(&mut self) -> Result<()> {
        self.check_poisoned()?;
        let result = self.commit_inner();
        if result.is_err() {
            self.poisoned = result.as_ref().err().map(ToString::to_string);
        }
        result
    }

    fn commit_inner(&mut self) -> Result<()> {
        let mut record = CommitRecord {
            next_key: self.next_key,
            dense_generation: None,
            segments: if self.rebuild {
                Vec::new()
            } else {
                self.base.segments.clone()
            },
            next_segment: self.base.next_segment,
        };
        let mut segments = if self.rebuild {
            HashMap::new()
        } else {
            self.segments.clone()
        };
        let mut written = None;
        if let Some(dense) = &mut self.dense
            && let Some(index) = dense.take_segment()?
        {
            let file = dense_leg::segment_file(dense.manifest.kind, record.next_segment);
            let path = self.dir.join(DENSE_DIR).join(&file);
            index.save(&path)?;
            failpoint::hit("after-vector-segment");
            record.next_segment += 1;
            record.segments.push(SegmentRecord {
                file: file.clone(),
                keys: index.len() as u64,
            });
            segments.insert(file.clone(), Arc::new(Segment { file, index }));
            written = Some(path);
        }
        if let Err(e) = self.sparse.commit(&record.payload()) {
            if let Some(path) = written {
                let _ = fs::remove_file(path);
            }
            return Err(e.into());
        }
        failpoint::hit("after-sparse-commit");
        self.rebuild = false;
        self.fresh_ids = None;
        segments.retain(|file, _| record.segments.iter().any(|s| &s.file == file));
        self.segments = segments;
        let previous = std::mem::replace(&mut self.base, record);
        self.clean_up(&previous);
        Ok(())
    }

    /// Removes files neither the last commit nor `previous` lists; problems become warnings.
    fn clean_up(&mut self, previous: &CommitRecord) {
        if self.dense.is_none() {
            return;
        }
        let keep: Vec<&SegmentRecord> = self
            .base
            .segments
            .iter()
            .chain(&previous.segments)
            .collect();
        self.warnings
            .extend(dense_leg::remove_unreferenced(&self.dir, &keep));
    }

    /// Merges vector segments when the merge policy asks for it
    /// ([`dense_leg::merge_candidates`]): the live vectors of the chosen segments (`sparse`,
    /// at the last commit, says which keys are live) go into one new segment, and a commit
    /// that changes nothing else switches to it. Crash-safe like a commit. Returns whether it
    /// merged.
    fn merge_segments(&mut self, sparse: &Bm25Index) -> Result<bool> {
        let Some(dense) = &self.dense else {
            return Ok(false);
        };
        let chosen = dense_leg::merge_candidates(&self.base.segments);
        if chosen.is_empty() {
            return Ok(false);
        }
        let mut merged = dense_leg::new_index(&dense.manifest)?;
        let mut items = Vec::new();
        let live: HashSet<u64> = sparse.live_keys()?.into_iter().map(|(k, _)| k).collect();
        for file in &chosen {
            let opened;
            let index = match self.segments.get(file) {
                Some(segment) => &segment.index,
                None => {
                    opened = dense_leg::open_segment(&self.dir, &dense.manifest, file, sparse)?;
                    &opened
                }
            };
            index.for_each_vector(&mut |key, vector| {
                if live.contains(&key) {
                    items.push((key, vector.to_vec()));
                }
            })?;
        }
        items.sort_by_key(|(key, _)| *key);
        merged.add_batch(&items)?;
        drop(items);
        let file = dense_leg::segment_file(dense.manifest.kind, self.base.next_segment);
        let path = self.dense_dir().join(&file);
        let mut record = self.base.clone();
        if !merged.is_empty() {
            merged.save(&path)?;
            failpoint::hit("mid-merge");
            record.next_segment += 1;
        }
        let position = record
            .segments
            .iter()
            .position(|s| chosen.contains(&s.file))
            .unwrap_or(record.segments.len());
        record.segments.retain(|s| !chosen.contains(&s.file));
        let mut segments = self.segments.clone();
        segments.retain(|file, _| !chosen.contains(file));
        if !merged.is_empty() {
            record.segments.insert(
                position,
                SegmentRecord {
                    file: file.clone(),
                    keys: merged.len() as u64,
                },
            );
            segments.insert(
                file.clone(),
                Arc::new(Segment {
                    file,
                    index: merged,
                }),
            );
        }
        if let Err(e) = self.sparse.commit(&record.payload()) {
            let _ = fs::remove_file(&path);
            return Err(e.into());
        }
        self.segments = segments;
        let previous = std::mem::replace(&mut self.base, record);
        self.clean_up(&previous);
        Ok(true)
    }

    /// Discards every change since the last commit.
    pub fn rollback(&mut self) -> Result<()> {
        self.sparse.rollback()?;
        self.poisoned = None;
        if let Some(dense) = &mut self.dense {
            dense.rollback();
        }
        self.next_key = self.base.next_key;
        Ok(())
    }

    /// Merges the committed documents into one BM25 segment: call after a bulk load for the
    /// fastest deep (k = 1000) searches. The merge replaces segments atomically; nothing is
    /// lost if it is interrupted.
    pub fn optimize(&mut self) -> Result<()> {
        self.sparse.merge_all()?;
        Ok(())
    }

    /// Waits for background merges, so the folder is compact when the process exits.
    pub fn finish(self) -> Result<()> {
        Ok(self.sparse.wait_merging_threads()?)
    }
}
