//! The collection: a folder with a manifest and the two legs, opened at its last commit.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use hybrid_search_dense::Encoder;
use hybrid_search_document::Document;
use hybrid_search_sparse::{AnalyzerConfig, Bm25Index};

use crate::dense_leg::{self, DENSE_DIR, DenseManifest, DenseOptions, Segment};
use crate::error::{Error, Result};
use crate::lock::{Wait, WriteLock};
use crate::manifest::{
    CommitRecord, FORMAT_VERSION, MANIFEST, Manifest, SearchDefaults, read_manifest, write_manifest,
};

pub(crate) const SPARSE_DIR: &str = "sparse";

/// Indexing memory for tantivy's writer (split across its threads), for loads and writes of
/// unknown size.
pub(crate) const WRITER_HEAP: usize = 256 << 20;

/// Writes of at most this many documents ([`Collection::add`], [`Collection::delete`]) index
/// on one thread with [`SMALL_WRITER_HEAP`]: tantivy sizes its per-thread tables by the budget,
/// so a full-size writer for a handful of documents allocates (and, through glibc's per-thread
/// arenas, keeps) hundreds of MiB (`docs/benchmarks.md`, "One handle, snapshots").
pub(crate) const SMALL_WRITE_DOCS: usize = 10_000;

/// The indexing memory of a small write, one indexing thread (tantivy's minimum is 15 MB per
/// thread).
pub(crate) const SMALL_WRITER_HEAP: usize = 32 << 20;

/// A collection: a handle on a folder holding a manifest and the search legs.
///
/// The handle is cheap to keep and owns the collection's moving parts: the BM25 reader that
/// follows the commits, the write-lock settings and the warnings of its writes. Everything a
/// search reads lives in its current [`Snapshot`] (one commit, immutable, shared by `Arc`):
/// [`Collection::snapshot`] hands it out, and the handle dereferences to it, so
/// `collection.run(..)`, `collection.search(..)`, `collection.manifest()` and `collection.len()`
/// read the commit the handle is on. A write through the handle ([`Collection::add`],
/// [`Collection::delete`], ...) commits, takes the next snapshot and returns what it committed
/// ([`Committed`](crate::Committed)); snapshots handed out before stay on their commit.
pub struct Collection {
    /// The BM25 reader that moves from commit to commit; each snapshot pins its searcher.
    pub(crate) reader: Bm25Index,
    /// The commit searches read.
    pub(crate) current: Arc<Snapshot>,
    /// How long writes wait for another writer ([`Collection::set_write_wait`]).
    pub(crate) wait: Wait,
    /// Problems met after a commit was already durable, and an older analysis version found at
    /// open ([`Collection::take_warnings`]).
    pub(crate) warnings: Vec<String>,
}

/// Everything a search needs on one commit of a collection: the BM25 searcher of that
/// commit, its vector segments (opened at their first use), the key -> id map of its live
/// documents (built at the first dense search, or carried over from the snapshot before a
/// write and updated with what the write changed), the manifest, and the attached models.
/// Immutable once made; held by `Arc` ([`Collection::snapshot`]), so a search keeps one commit
/// however many writes land meanwhile, and the files it reads stay readable.
#[derive(Clone)]
pub struct Snapshot {
    pub(crate) dir: PathBuf,
    pub(crate) manifest: Manifest,
    /// BM25, pinned on this commit.
    pub(crate) sparse: Bm25Index,
    /// The engine's record of this commit (next key, the live vector segments).
    pub(crate) record: CommitRecord,
    pub(crate) dense: Option<DenseLeg>,
    /// Why the model could not be attached for searching, when it was not named
    /// ([`Collection::attach_model_for_search`]): hybrid searches fall back and say so.
    pub(crate) model_problem: Option<crate::search::Degraded>,
}

/// The key -> id map of a commit's live documents.
pub(crate) type KeyMap = HashMap<u64, Arc<str>>;

/// The loaded dense leg: the segments of the commit the searcher is on (or why they could not
/// be read), the key -> id map of the live documents (built at the first dense search), and
/// the encoder once one is attached.
#[derive(Clone)]
pub(crate) struct DenseLeg {
    pub(crate) encoder: Option<Arc<Encoder>>,
    /// The commit's segments, opened at their first use.
    pub(crate) segments: OnceLock<std::result::Result<Vec<Arc<Segment>>, String>>,
    /// Segments already open (or handed over by a writer), by file name.
    pub(crate) known: HashMap<String, Arc<Segment>>,
    /// Why the segments cannot be used, when the check at reload found a file missing or cut.
    pub(crate) damage: Option<String>,
    pub(crate) ids: OnceLock<Arc<KeyMap>>,
}

impl std::ops::Deref for Collection {
    type Target = Snapshot;

    /// The commit the handle is on.
    fn deref(&self) -> &Snapshot {
        &self.current
    }
}

impl DenseLeg {
    /// Every vector segment this leg holds open, by file name: those handed over or shared
    /// (`known`) and those its commit opened.
    pub(crate) fn open_segments(&self) -> HashMap<String, Arc<Segment>> {
        let mut open = self.known.clone();
        if let Some(Ok(opened)) = self.segments.get() {
            open.extend(opened.iter().map(|s| (s.file.clone(), s.clone())));
        }
        open
    }
}

impl Collection {
    /// Creates a new, empty collection in `dir` (created if missing; it must be empty).
    ///
    /// # Errors
    ///
    /// [`Error::NotEmpty`] when `dir` holds files or a collection; [`Error::Io`] or
    /// [`Error::Sparse`] when the folders or the index cannot be written.
    pub fn create(dir: &Path, analyzer: AnalyzerConfig) -> Result<Self> {
        Self::create_with(dir, analyzer, None)
    }

    /// Creates a new, empty collection in `dir` with a dense leg made by `encoder` when given.
    ///
    /// # Errors
    ///
    /// [`Error::NotEmpty`] when `dir` holds files or a collection; [`Error::Dense`] when the
    /// vector settings cannot make an index; [`Error::Io`] or [`Error::Sparse`] when the folders
    /// or the index cannot be written.
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
            dictionary: sparse
                .analyzer()
                .dictionary()
                .map(|d| d.fingerprint.clone()),
            analysis: hybrid_search_sparse::ANALYSIS_VERSION,
            dense: dense_manifest,
            search: None,
            fields: Default::default(),
        };
        // The manifest is written last: a folder without one is not a collection yet.
        write_manifest(dir, &manifest)?;
        Ok(Self {
            current: Arc::new(Snapshot {
                dir: dir.to_path_buf(),
                manifest,
                sparse: sparse.pin(),
                record: CommitRecord::default(),
                dense: leg,
                model_problem: None,
            }),
            reader: sparse,
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
    ///
    /// # Errors
    ///
    /// [`Error::NotACollection`] without a manifest; [`Error::Manifest`] for an unreadable
    /// manifest or an unsupported format version; [`Error::SparseDamaged`] when the BM25 index
    /// cannot be opened; [`Error::DictionaryMismatch`] when the Korean dictionary found is not
    /// the one recorded; [`Error::Commit`] for an unreadable commit record. Damaged vector
    /// segments do not fail it (dense searches report them).
    pub fn open(dir: &Path) -> Result<Self> {
        let _span = tracing::info_span!("open", collection = %dir.display()).entered();
        let manifest = read_manifest(dir)?;
        let sparse =
            Bm25Index::open(&dir.join(SPARSE_DIR), &manifest.analyzer).map_err(|e| match e {
                hybrid_search_sparse::Error::Tantivy(e) => Error::SparseDamaged {
                    collection: dir.to_path_buf(),
                    message: e.to_string(),
                },
                e => Error::Sparse(e),
            })?;
        // Analysed with ko-dic, which is not installed here: Korean queries would lose their
        // Korean terms, Korean documents could not be added.
        if let (Some(recorded), Some(why)) =
            (&manifest.dictionary, sparse.analyzer().missing_dictionary())
        {
            return Err(Error::Sparse(hybrid_search_sparse::Error::Dictionary(
                format!(
                    "{}: the collection was analysed with ko-dic {recorded}; {why}",
                    dir.display()
                ),
            )));
        }
        if let (Some(recorded), Some(found)) =
            (&manifest.dictionary, sparse.analyzer().dictionary())
            && *recorded != found.fingerprint
        {
            return Err(Error::DictionaryMismatch {
                collection: dir.to_path_buf(),
                recorded: recorded.clone(),
                path: found.path.clone(),
                found: found.fingerprint.clone(),
            });
        }
        let mut collection = Self {
            current: Arc::new(Snapshot {
                dir: dir.to_path_buf(),
                manifest,
                sparse: sparse.pin(),
                record: CommitRecord::default(),
                dense: None,
                model_problem: None,
            }),
            reader: sparse,
            wait: Wait::No,
            warnings: Vec::new(),
        };
        collection.reload_with(Vec::new(), None)?;
        if collection.manifest.analysis != hybrid_search_sparse::ANALYSIS_VERSION {
            let message = format!(
                "{}: its documents were analysed by analysis version {}, and this hybrid-search \
                 analyses queries by version {} (version 2 added Unicode normalisation, Korean \
                 terms from the input text, English hyphen and digit rules), so a query may miss \
                 terms the documents were indexed under: index the documents again into a new \
                 collection folder (`hybrid-search index --index NEW_DIR`)",
                dir.display(),
                collection.manifest.analysis,
                hybrid_search_sparse::ANALYSIS_VERSION
            );
            tracing::warn!("{message}");
            collection.warnings.push(message);
        }
        Ok(collection)
    }

    /// Deletes the collection: takes its write lock (waiting as [`Collection::set_write_wait`]
    /// says), so no writer of another process is part way through a commit, moves its folder
    /// to `trash` in one rename while holding it, so the collection is gone from its name at
    /// once and whole or not at all, then removes `trash`. `trash` must be on the same file
    /// system (a sibling of the folder); a crash during the removal leaves only `trash`. The
    /// handle must not be written through afterwards (its writes fail: the folder is gone);
    /// snapshots taken before keep answering from the files they hold open.
    ///
    /// # Errors
    ///
    /// [`Error::Busy`] when another writer holds the lock past the wait (the collection is
    /// left as it was); [`Error::Io`] naming the folder when the rename fails (left as it was)
    /// or `trash` when the removal fails (the collection is deleted; `trash` is left).
    pub fn remove_to(&mut self, trash: &Path) -> Result<()> {
        let dir = self.dir.clone();
        let lock = WriteLock::acquire(&dir, self.wait)?;
        fs::rename(&dir, trash).map_err(|e| Error::io(&dir, e))?;
        drop(lock);
        fs::remove_dir_all(trash).map_err(|e| Error::io(trash, e))
    }

    /// How long [`Collection::add`], [`Collection::delete`], [`Collection::writer`] and the
    /// other writes wait when another writer holds the collection: by default they fail at
    /// once with [`Error::Busy`].
    pub fn set_write_wait(&mut self, wait: Wait) {
        self.wait = wait;
    }

    /// Problems met after a commit was already durable (removing unreferenced files, a merge
    /// that failed and will be retried): the commit stands; these are worth a warning. Also
    /// that the collection was analysed by an older analysis version, found when it was opened.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Takes the snapshot of the last commit: the sparse searcher and the commit record from
    /// one commit. The commit's vector segments are checked (present, whole: a footer and
    /// length check) but opened only when a dense search or `verify` needs them, so a writer
    /// never pays for opening them; segments the current snapshot has open, and `fresh` ones a
    /// writer of this process hands over, are reused. The key -> id map is `ids` when a writer
    /// computed it for this commit, else the current snapshot's when the documents did not
    /// change, else built at its first use. A segment file that a writer in another process
    /// removed while this was reading the commit is retried at the newer commit.
    pub(crate) fn reload_with(
        &mut self,
        fresh: Vec<Arc<Segment>>,
        ids: Option<Arc<KeyMap>>,
    ) -> Result<()> {
        let _span = tracing::debug_span!("reload").entered();
        let dir = self.current.dir.clone();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let payload = self.reader.reload_consistent()?;
            let sparse = self.reader.pin();
            let manifest = &self.current.manifest;
            let kind = manifest.dense.as_ref().map(|d| d.kind);
            let record = CommitRecord::parse(payload.as_deref(), &dir, kind, sparse.num_docs())?;
            let Some(dense_manifest) = &manifest.dense else {
                self.current = Arc::new(Snapshot {
                    sparse,
                    record,
                    dense: None,
                    ..(*self.current).clone()
                });
                return Ok(());
            };
            let mut known = self
                .current
                .dense
                .as_ref()
                .map(DenseLeg::open_segments)
                .unwrap_or_default();
            known.extend(fresh.iter().map(|s| (s.file.clone(), s.clone())));
            known.retain(|file, _| record.segments.iter().any(|s| &s.file == file));
            let mut damage = None;
            for s in record
                .segments
                .iter()
                .filter(|s| !known.contains_key(&s.file))
            {
                if let Err(e) = dense_leg::check_segment(&dir, dense_manifest, &s.file) {
                    let missing = !dir.join(DENSE_DIR).join(&s.file).exists();
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
            let before = self.current.dense.as_ref();
            let same_documents = || sparse.commit_state() == self.current.sparse.commit_state();
            let map = OnceLock::new();
            match (ids.clone(), before.and_then(|d| d.ids.get())) {
                (Some(ids), _) => {
                    let _ = map.set(ids);
                }
                (None, Some(previous)) if same_documents() => {
                    let _ = map.set(previous.clone());
                }
                _ => {}
            }
            let leg = DenseLeg {
                encoder: before.and_then(|d| d.encoder.clone()),
                segments: OnceLock::new(),
                known,
                damage: damage.map(|(_, message)| message),
                ids: map,
            };
            self.current = Arc::new(Snapshot {
                sparse,
                record,
                dense: Some(leg),
                ..(*self.current).clone()
            });
            return Ok(());
        }
    }

    /// The commit this handle is on, to search on: it stays on that commit (and its files
    /// stay readable) however many writes land through this handle or others.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.clone()
    }

    /// The current snapshot, to change before any search holds it (a clone when one does).
    pub(crate) fn current_mut(&mut self) -> &mut Snapshot {
        Arc::make_mut(&mut self.current)
    }

    /// Attaches the model that makes query vectors (and vectors for new documents); it must be
    /// the model the collection's vectors were made with.
    ///
    /// # Errors
    ///
    /// [`Error::NoDenseLeg`] for a collection without a dense leg; [`Error::ModelMismatch`] when the
    /// encoder is not the model the vectors were made with (what differs is named).
    pub fn attach_encoder(&mut self, encoder: Arc<Encoder>) -> Result<()> {
        let Some(manifest) = &self.manifest.dense else {
            return Err(Error::NoDenseLeg(
                self.dir.clone(),
                "this collection was built without a dense leg, and one cannot be added to it; \
                 index the documents into a new collection built with a model"
                    .into(),
            ));
        };
        manifest.check(&encoder, &self.dir)?;
        if let Some(leg) = &mut self.current_mut().dense {
            leg.encoder = Some(encoder);
        }
        Ok(())
    }

    /// Opens the collection in `dir`, or creates it with `analyzer` if the folder has none.
    ///
    /// # Errors
    ///
    /// Those of [`Collection::open`] and [`Collection::create`].
    pub fn open_or_create(dir: &Path, analyzer: AnalyzerConfig) -> Result<Self> {
        if Self::exists(dir) {
            Self::open(dir)
        } else {
            Self::create(dir, analyzer)
        }
    }

    /// Sees the last commit (after a [`CollectionWriter::commit`](crate::CollectionWriter::commit), or another process's).
    ///
    /// # Errors
    ///
    /// [`Error::Sparse`] when the index cannot be reloaded; [`Error::Commit`] for an unreadable
    /// commit record.
    pub fn reload(&mut self) -> Result<()> {
        // Another handle or process may have recorded new fields (or search defaults).
        let manifest = read_manifest(&self.dir)?;
        if manifest != self.manifest {
            self.current_mut().manifest = manifest;
        }
        self.reload_with(Vec::new(), None)
    }

    /// Stores `defaults` in the manifest (written atomically): later searches that do not say
    /// otherwise use them.
    ///
    /// # Errors
    ///
    /// [`Error::Fusion`] for invalid settings; [`Error::Busy`] when another writer holds the
    /// collection (see [`Collection::set_write_wait`]); [`Error::Io`] when the manifest cannot be
    /// written.
    pub fn set_search_defaults(&mut self, defaults: SearchDefaults) -> Result<()> {
        defaults.hybrid.fusion.validate()?;
        let _lock = WriteLock::acquire(&self.dir, self.wait)?;
        // Another writer may have changed the manifest (a format upgrade) since it was read.
        let mut manifest = read_manifest(&self.dir)?;
        manifest.search = Some(defaults);
        write_manifest(&self.dir, &manifest)?;
        self.current_mut().manifest = manifest;
        Ok(())
    }
}

impl Snapshot {
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

    /// Number of live documents at this commit.
    pub fn len(&self) -> u64 {
        self.sparse.num_docs()
    }

    /// Whether the collection holds no documents.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Opens the vector segments of this commit and builds its key -> id map now, instead of
    /// at the first dense search: the first search after a write does not pay for it. Does
    /// nothing without a dense leg; damaged segments are left to searches to report.
    ///
    /// # Errors
    ///
    /// [`Error::Sparse`] when the live documents cannot be read.
    pub fn warm(&self) -> Result<()> {
        if let Ok((leg, _)) = self.segments() {
            self.live_ids(leg)?;
        }
        Ok(())
    }

    /// The stored document with external id `id`.
    ///
    /// # Errors
    ///
    /// [`Error::Sparse`] when the stored document cannot be read.
    pub fn get(&self, id: &str) -> Result<Option<Document>> {
        Ok(self.sparse.get(id)?.map(|d| Document {
            id: d.id,
            title: d.title,
            text: d.text,
            vector: None,
            fields: d.fields,
        }))
    }

    /// The documents' fields and their types ([`Manifest::fields`]).
    pub fn fields(&self) -> &hybrid_search_sparse::FieldSchema {
        &self.manifest.fields
    }
}
