//! The BM25 index on tantivy.
//!
//! Fields: `id` (the external string id), `key` (the engine's internal u64 key), `title` and `text`
//! (stored for display), `body` (title and text analysed with the collection's analyzer) and
//! `body_ng` (Hangul character bigrams of the same text). A query is analysed with the same
//! analyzer into one BM25 term clause per query term (repeated terms count again, as in Lucene and
//! Anserini), plus the bigram clauses weighted by `ngram_weight`. Queries are never parsed as
//! query syntax, so `IL-6`, `(` or `:` in a user's query cannot fail.
//!
//! Documents' fields ([`crate::fields`]) are stored as given in `fields_src` and indexed for
//! filtering in the JSON field `fields`; an index made before fields existed has neither and
//! filters only by id.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use tantivy::collector::{Collector, SegmentCollector, TopDocs};
use tantivy::columnar::Column;
use tantivy::index::SegmentId;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, JsonObjectOptions, STORED, STRING, Schema,
    TextFieldIndexing, TextOptions, Value,
};
use tantivy::{
    DocAddress, DocId, Index, IndexReader, IndexWriter, ReloadPolicy, Score, Searcher,
    SegmentOrdinal, SegmentReader, TantivyDocument, Term,
};

use crate::analysis::{Analyzer, AnalyzerConfig, HsTokenizer};
use crate::error::{Error, Result};
use crate::fields::{FieldSchema, Fields as DocFields, Filter, TypedFields};

const MAIN_TOKENIZER: &str = "hs_main";
const BIGRAM_TOKENIZER: &str = "hs_bigram";

/// The schema's fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields {
    pub(crate) id: Field,
    pub(crate) key: Field,
    pub(crate) title: Field,
    pub(crate) text: Field,
    pub(crate) body: Field,
    pub(crate) body_ng: Field,
    /// The fields indexed for filtering (absent in an index made before fields existed).
    pub(crate) json: Option<Field>,
    /// The fields as given, stored.
    pub(crate) fields_src: Option<Field>,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let indexed = |tokenizer: &str| {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(tokenizer)
                .set_index_option(IndexRecordOption::WithFreqs),
        )
    };
    let fields = Fields {
        id: b.add_text_field("id", STRING | STORED | FAST),
        key: b.add_u64_field("key", INDEXED | STORED | FAST),
        title: b.add_text_field("title", STORED),
        text: b.add_text_field("text", STORED),
        body: b.add_text_field("body", indexed(MAIN_TOKENIZER)),
        body_ng: b.add_text_field("body_ng", indexed(BIGRAM_TOKENIZER)),
        json: Some(
            b.add_json_field(
                "fields",
                JsonObjectOptions::default()
                    .set_indexing_options(
                        TextFieldIndexing::default()
                            .set_tokenizer("raw")
                            .set_index_option(IndexRecordOption::Basic),
                    )
                    .set_fast("raw"),
            ),
        ),
        fields_src: Some(b.add_text_field("fields_src", STORED)),
    };
    (b.build(), fields)
}

fn fields_of(schema: &Schema) -> Result<Fields> {
    let f = |name: &str| {
        schema.get_field(name).map_err(|_| {
            Error::Config(format!(
                "the sparse index has no field {name:?}: not a hybrid-search index"
            ))
        })
    };
    Ok(Fields {
        id: f("id")?,
        key: f("key")?,
        title: f("title")?,
        text: f("text")?,
        body: f("body")?,
        body_ng: f("body_ng")?,
        json: schema.get_field("fields").ok(),
        fields_src: schema.get_field("fields_src").ok(),
    })
}

/// A document as the sparse leg stores it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SparseDoc {
    /// The external id.
    pub id: String,
    /// The engine's internal key.
    pub key: u64,
    /// Title (may be empty).
    pub title: String,
    /// Text.
    pub text: String,
    /// The fields as given (read back by [`Bm25Index::get`]; a write takes them typed, see
    /// [`Bm25Writer::insert`]).
    pub fields: DocFields,
}

/// One BM25 hit.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseHit {
    /// The engine's internal key.
    pub key: u64,
    /// The external id.
    pub id: Arc<str>,
    /// The BM25 score.
    pub score: f32,
}

/// From this depth on, [`DeepTopK`] replaces tantivy's pruning top-k collector.
const DEEP_K: usize = 100;

/// Top-k for deep result lists (k = 1000 in evaluation): scores every matching document with the
/// plain union scorer and selects the k best. When k is a sizeable share of the matches,
/// block-WAND's pruning barely skips anything and its bookkeeping costs more than it saves
/// (measured on SciFact, `docs/benchmarks.md`). Ties break by document address.
struct DeepTopK {
    k: usize,
}

/// Keeps the `k` best (score, address) pairs, sorted best first.
fn select_top(mut hits: Vec<(f32, DocAddress)>, k: usize) -> Vec<(f32, DocAddress)> {
    let better = |a: &(f32, DocAddress), b: &(f32, DocAddress)| {
        b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1))
    };
    if hits.len() > k {
        hits.select_nth_unstable_by(k, better);
        hits.truncate(k);
    }
    hits.sort_unstable_by(better);
    hits
}

impl Collector for DeepTopK {
    type Fruit = Vec<(f32, DocAddress)>;
    type Child = DeepTopKSegment;

    fn for_segment(
        &self,
        segment_ord: SegmentOrdinal,
        _: &SegmentReader,
    ) -> tantivy::Result<Self::Child> {
        Ok(DeepTopKSegment {
            k: self.k,
            segment_ord,
            hits: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        true
    }

    fn merge_fruits(&self, fruits: Vec<Self::Fruit>) -> tantivy::Result<Self::Fruit> {
        Ok(select_top(fruits.into_iter().flatten().collect(), self.k))
    }
}

/// One segment's share of [`DeepTopK`].
struct DeepTopKSegment {
    k: usize,
    segment_ord: SegmentOrdinal,
    hits: Vec<(f32, DocAddress)>,
}

impl SegmentCollector for DeepTopKSegment {
    type Fruit = Vec<(f32, DocAddress)>;

    fn collect(&mut self, doc: DocId, score: Score) {
        self.hits
            .push((score, DocAddress::new(self.segment_ord, doc)));
    }

    fn harvest(self) -> Self::Fruit {
        select_top(self.hits, self.k)
    }
}

/// The fast-field columns of one segment that map a hit to its key and external id.
pub(crate) struct SegmentColumns {
    keys: Column<u64>,
    ords: Option<Column<u64>>,
    /// External ids by term ordinal of the `id` column.
    ids: Vec<Arc<str>>,
}

impl SegmentColumns {
    fn open(segment: &SegmentReader) -> Result<Self> {
        let fast = segment.fast_fields();
        let mut ids = Vec::new();
        let mut ords = None;
        if let Some(column) = fast.str("id")? {
            ids.reserve(column.num_terms());
            let mut stream = column
                .dictionary()
                .stream()
                .map_err(|e| Error::io(Path::new("id column"), e))?;
            while stream.advance() {
                ids.push(Arc::from(String::from_utf8_lossy(stream.key())));
            }
            ords = Some(column.ords().clone());
        }
        Ok(Self {
            keys: fast.u64("key")?,
            ords,
            ids,
        })
    }

    pub(crate) fn key(&self, doc: DocId) -> u64 {
        self.keys.first(doc).unwrap_or_default()
    }

    pub(crate) fn id(&self, doc: DocId) -> Arc<str> {
        self.ords
            .as_ref()
            .and_then(|o| o.first(doc))
            .and_then(|ord| self.ids.get(ord as usize))
            .cloned()
            .unwrap_or_else(|| Arc::from(""))
    }
}

/// A query analysed for BM25 ([`Bm25Index::query_terms`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryTerms {
    /// The analysed terms, each once, in query order.
    pub terms: Vec<String>,
    /// The Hangul bigrams (each occurrence), when the bigram field is queried.
    pub bigrams: Vec<String>,
    /// Each term's weight in the query, by position in `terms`: the term's BM25 score is
    /// multiplied by it. Empty (a query as analysed): every term weighs 1. Pseudo-relevance
    /// feedback (RM3) sets them for the original and the expansion terms.
    pub weights: Vec<f32>,
}

impl QueryTerms {
    /// The weight of `terms[i]`: `weights[i]`, or 1 when no weights are set.
    pub fn weight(&self, i: usize) -> f32 {
        self.weights.get(i).copied().unwrap_or(1.0)
    }
}

/// A BM25 index in a folder. A clone shares the reader (reloading one reloads both; see
/// [`Bm25Index::reopen`] for a handle with its own and [`Bm25Index::pin`] for one fixed on a
/// commit).
#[derive(Clone)]
pub struct Bm25Index {
    index: Index,
    /// Per segment, the fast-field columns that turn a hit into (key, id), opened once and
    /// shared by every handle [`Bm25Index::pin`] made.
    segments: Arc<RwLock<HashMap<SegmentId, Arc<SegmentColumns>>>>,
    pub(crate) reader: IndexReader,
    /// The searcher of one commit, for a handle made by [`Bm25Index::pin`]: it answers from
    /// that commit whatever the reader moves to.
    pinned: Option<Searcher>,
    pub(crate) fields: Fields,
    pub(crate) analyzer: Arc<Analyzer>,
    pub(crate) ngram_weight: f32,
}

/// A reader of `index` that moves to a newer commit only when told to (`reload`), so one
/// handle sees one commit.
fn manual_reader(index: &Index) -> Result<IndexReader> {
    Ok(index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()?)
}

impl Bm25Index {
    /// Creates an empty index in `dir` (which must exist and be empty).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] or [`Error::Tantivy`] when the index cannot be created;
    /// [`Error::Dictionary`] when a Korean analyzer cannot find ko-dic.
    pub fn create(dir: &Path, config: &AnalyzerConfig) -> Result<Self> {
        let (schema, _) = schema();
        let index = Index::create_in_dir(dir, schema)?;
        Self::with_index(index, config)
    }

    /// Opens the index in `dir` with the analyzer it was built with.
    ///
    /// # Errors
    ///
    /// [`Error::Tantivy`] when the index is missing or damaged; [`Error::Dictionary`] when a
    /// Korean analyzer cannot find ko-dic.
    pub fn open(dir: &Path, config: &AnalyzerConfig) -> Result<Self> {
        let index = Index::open_in_dir(dir)?;
        Self::with_index(index, config)
    }

    fn with_index(index: Index, config: &AnalyzerConfig) -> Result<Self> {
        let fields = fields_of(&index.schema())?;
        let analyzer = Arc::new(Analyzer::new(config)?);
        index
            .tokenizers()
            .register(MAIN_TOKENIZER, HsTokenizer::main(analyzer.clone()));
        index
            .tokenizers()
            .register(BIGRAM_TOKENIZER, HsTokenizer::bigrams());
        let reader = manual_reader(&index)?;
        Ok(Self {
            index,
            segments: Arc::default(),
            reader,
            pinned: None,
            fields,
            analyzer,
            ngram_weight: config.ngram_weight,
        })
    }

    /// A second handle on this index with its own searcher, at the index's last commit: it
    /// shares the analyzer and the columns already opened, and reloading one handle does not
    /// move the other.
    ///
    /// # Errors
    ///
    /// [`Error::Tantivy`] when the reader cannot be opened.
    pub fn reopen(&self) -> Result<Self> {
        let reader = manual_reader(&self.index)?;
        let columns = self
            .segments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Ok(Self {
            index: self.index.clone(),
            segments: Arc::new(RwLock::new(columns)),
            reader,
            pinned: None,
            fields: self.fields,
            analyzer: self.analyzer.clone(),
            ngram_weight: self.ngram_weight,
        })
    }

    /// A handle that answers from the commit this one is on now, however often this one is
    /// reloaded later: it holds that commit's searcher (tantivy's `Searcher`, shared by `Arc`,
    /// so no file is read) and shares the analyzer and the columns cache. Pinning a pinned
    /// handle gives the same commit.
    pub fn pin(&self) -> Self {
        Self {
            index: self.index.clone(),
            segments: self.segments.clone(),
            reader: self.reader.clone(),
            pinned: Some(self.searcher()),
            fields: self.fields,
            analyzer: self.analyzer.clone(),
            ngram_weight: self.ngram_weight,
        }
    }

    /// The searcher of the commit this handle answers from: the pinned one, else the
    /// reader's.
    pub(crate) fn searcher(&self) -> Searcher {
        match &self.pinned {
            Some(searcher) => searcher.clone(),
            None => self.reader.searcher(),
        }
    }

    /// Which commit the handle is on, as its segments and their deletions: equal values
    /// mean the same documents.
    pub fn commit_state(&self) -> Vec<(String, u32)> {
        let mut state: Vec<(String, u32)> = self
            .searcher()
            .segment_readers()
            .iter()
            .filter(|s| s.num_docs() > 0)
            .map(|s| (s.segment_id().uuid_string(), s.num_deleted_docs()))
            .collect();
        state.sort();
        state
    }

    /// Whether a live document has external id `id` (one term lookup; no stored document is
    /// read).
    ///
    /// # Errors
    ///
    /// [`Error::Tantivy`] when the lookup fails.
    pub fn contains(&self, id: &str) -> Result<bool> {
        let query = TermQuery::new(
            Term::from_field_text(self.fields.id, id),
            IndexRecordOption::Basic,
        );
        Ok(self.searcher().search(&query, &tantivy::collector::Count)? > 0)
    }

    /// The analyzer that documents and queries go through.
    pub fn analyzer(&self) -> &Analyzer {
        &self.analyzer
    }

    /// A writer with `heap_bytes` of indexing memory.
    ///
    /// # Errors
    ///
    /// [`Error::Tantivy`] when the index cannot be opened for writing (tantivy's own lock held, a
    /// damaged index).
    pub fn writer(&self, heap_bytes: usize) -> Result<Bm25Writer> {
        self.writer_with_threads(None, heap_bytes)
    }

    /// A writer with `heap_bytes` of indexing memory split over `threads` indexing threads
    /// (`None`: tantivy's choice, one per CPU up to 8). tantivy needs at least 15 MB per
    /// thread.
    ///
    /// # Errors
    ///
    /// Those of [`Bm25Index::writer`], and [`Error::Tantivy`] for less than 15 MB per thread.
    pub fn writer_with_threads(
        &self,
        threads: Option<usize>,
        heap_bytes: usize,
    ) -> Result<Bm25Writer> {
        let writer = match threads {
            Some(n) => self.index.writer_with_num_threads(n, heap_bytes)?,
            None => self.index.writer(heap_bytes)?,
        };
        // A writer killed before its commit leaves files no commit lists (a `.del` file named
        // after the segment and the next opstamp, say), and the next writer, counting from the
        // same commit, would create the same names and fail. tantivy registers a file as managed
        // before writing it, so its garbage collection removes them; it runs after every
        // commit anyway, here once more before the first change.
        writer.garbage_collect_files().wait()?;
        Ok(Bm25Writer {
            writer,
            index: self.index.clone(),
            fields: self.fields,
            analyzer: self.analyzer.clone(),
        })
    }

    /// Sees the last commit.
    ///
    /// # Errors
    ///
    /// [`Error::Tantivy`] when the reader cannot be reloaded.
    pub fn reload(&self) -> Result<()> {
        Ok(self.reader.reload()?)
    }

    /// Moves the searcher to the last commit and returns that commit's payload, read from the
    /// same commit the searcher is on: another process may commit between reading
    /// `meta.json` and opening its segments, so the two are compared (segment ids and
    /// deletions) and read again until they agree. A segment file removed by another process
    /// while it was being opened is retried the same way.
    ///
    /// # Errors
    ///
    /// [`Error::Tantivy`] when the reader cannot be reloaded or `meta.json` cannot be read.
    pub fn reload_consistent(&self) -> Result<Option<String>> {
        let mut last_error = None;
        for attempt in 0..50u64 {
            if attempt > 0 {
                std::thread::sleep(std::time::Duration::from_millis(attempt.min(10) * 5));
            }
            let metas = match self.index.load_metas() {
                Ok(metas) => metas,
                Err(e) => {
                    last_error = Some(e);
                    continue;
                }
            };
            if let Err(e) = self.reader.reload() {
                last_error = Some(e);
                continue;
            }
            let searcher = self.reader.searcher();
            let mut on: Vec<(SegmentId, u32)> = searcher
                .segment_readers()
                .iter()
                .filter(|s| s.num_docs() > 0)
                .map(|s| (s.segment_id(), s.num_deleted_docs()))
                .collect();
            let mut committed: Vec<(SegmentId, u32)> = metas
                .segments
                .iter()
                .filter(|m| m.num_docs() > 0)
                .map(|m| (m.id(), m.num_deleted_docs()))
                .collect();
            on.sort();
            committed.sort();
            if on == committed {
                return Ok(metas.payload);
            }
        }
        Err(match last_error {
            Some(e) => e.into(),
            None => Error::Config(
                "the index kept changing while it was being opened (50 tries); try again".into(),
            ),
        })
    }

    /// The commit payload of the last commit, if any.
    ///
    /// # Errors
    ///
    /// [`Error::Tantivy`] when `meta.json` cannot be read.
    pub fn commit_payload(&self) -> Result<Option<String>> {
        Ok(self.index.load_metas()?.payload)
    }

    /// Number of live documents.
    pub fn num_docs(&self) -> u64 {
        self.searcher().num_docs()
    }

    /// Builds the BM25 query for a user's text; `None` when no term survives analysis.
    ///
    /// # Errors
    ///
    /// Analysis errors of the query text.
    pub fn query(&self, text: &str) -> Result<Option<Box<dyn Query>>> {
        Ok(self.query_of(&self.query_terms(text)?))
    }

    /// The BM25 query of terms already analysed; `None` when there are none.
    fn query_of(&self, query: &QueryTerms) -> Option<Box<dyn Query>> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        // Each term once: a word repeated in a question (`flow` three times in a Cranfield
        // query) does not weigh three times.
        let QueryTerms { terms, bigrams, .. } = query;
        for (i, t) in terms.iter().enumerate() {
            let term = Term::from_field_text(self.fields.body, t);
            let q: Box<dyn Query> = Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs));
            let weight = query.weight(i);
            let q = if weight == 1.0 {
                q
            } else {
                Box::new(BoostQuery::new(q, weight))
            };
            clauses.push((Occur::Should, q));
        }
        for t in bigrams {
            let term = Term::from_field_text(self.fields.body_ng, t);
            let q = TermQuery::new(term, IndexRecordOption::WithFreqs);
            clauses.push((
                Occur::Should,
                Box::new(BoostQuery::new(Box::new(q), self.ngram_weight)),
            ));
        }
        (!clauses.is_empty()).then(|| Box::new(BooleanQuery::new(clauses)) as Box<dyn Query>)
    }

    /// The top `k` documents for `text` by BM25.
    ///
    /// # Errors
    ///
    /// [`Error::Tantivy`] when the search fails; analysis errors of the query.
    pub fn search(&self, text: &str, k: usize) -> Result<Vec<SparseHit>> {
        self.search_terms(&self.query_terms(text)?, k)
    }

    /// The top `k` documents by BM25 for a query already analysed
    /// ([`Bm25Index::query_terms`]).
    ///
    /// # Errors
    ///
    /// [`Error::Tantivy`] when the search fails.
    pub fn search_terms(&self, query: &QueryTerms, k: usize) -> Result<Vec<SparseHit>> {
        self.search_terms_filtered(query, k, None)
    }

    /// [`Bm25Index::search_terms`] among the documents `filter` (from
    /// [`Bm25Index::filter_query`]) matches: the filter is intersected with the BM25 query
    /// before the top `k` are taken, so up to `k` matching documents come back, with the scores
    /// they have unfiltered.
    ///
    /// # Errors
    ///
    /// [`Error::Tantivy`] when the search fails.
    pub fn search_terms_filtered(
        &self,
        query: &QueryTerms,
        k: usize,
        filter: Option<&FilterQuery>,
    ) -> Result<Vec<SparseHit>> {
        let Some(query) = self.query_of(query) else {
            return Ok(Vec::new());
        };
        let query: Box<dyn Query> = match filter {
            Some(filter) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, query),
                (Occur::Must, filter.0.box_clone()),
            ])),
            None => query,
        };
        let searcher = self.searcher();
        let top = if k >= DEEP_K {
            searcher.search(&query, &DeepTopK { k })?
        } else {
            searcher.search(&query, &TopDocs::with_limit(k.max(1)).order_by_score())?
        };
        let columns = self.segment_columns(&searcher)?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let segment = &columns[address.segment_ord as usize];
            hits.push(SparseHit {
                key: segment.key(address.doc_id),
                id: segment.id(address.doc_id),
                score,
            });
        }
        hits.truncate(k);
        Ok(hits)
    }

    /// Each segment's columns, in segment order: opened on a segment's first search and cached
    /// until a merge removes the segment.
    pub(crate) fn segment_columns(&self, searcher: &Searcher) -> Result<Vec<Arc<SegmentColumns>>> {
        let segments = searcher.segment_readers();
        {
            let cache = self.segments.read().unwrap_or_else(|e| e.into_inner());
            let cached: Option<Vec<_>> = segments
                .iter()
                .map(|s| cache.get(&s.segment_id()).cloned())
                .collect();
            if let Some(columns) = cached {
                return Ok(columns);
            }
        }
        let mut cache = self.segments.write().unwrap_or_else(|e| e.into_inner());
        cache.retain(|id, _| segments.iter().any(|s| s.segment_id() == *id));
        segments
            .iter()
            .map(|segment| match cache.get(&segment.segment_id()) {
                Some(columns) => Ok(columns.clone()),
                None => {
                    let columns = Arc::new(SegmentColumns::open(segment)?);
                    cache.insert(segment.segment_id(), columns.clone());
                    Ok(columns)
                }
            })
            .collect()
    }

    /// Every live document as (internal key, external id), in index order.
    ///
    /// # Errors
    ///
    /// [`Error::Tantivy`] when a segment's fast fields cannot be read.
    pub fn live_keys(&self) -> Result<Vec<(u64, Arc<str>)>> {
        let searcher = self.searcher();
        let columns = self.segment_columns(&searcher)?;
        let mut out = Vec::with_capacity(searcher.num_docs() as usize);
        for (segment, cols) in searcher.segment_readers().iter().zip(&columns) {
            out.extend(
                segment
                    .doc_ids_alive()
                    .map(|doc| (cols.key(doc), cols.id(doc))),
            );
        }
        Ok(out)
    }

    /// The stored document with external id `id`.
    ///
    /// # Errors
    ///
    /// [`Error::Tantivy`] when the stored document cannot be read.
    pub fn get(&self, id: &str) -> Result<Option<SparseDoc>> {
        let searcher = self.searcher();
        let query = TermQuery::new(
            Term::from_field_text(self.fields.id, id),
            IndexRecordOption::Basic,
        );
        let top = searcher.search(&query, &TopDocs::with_limit(1).order_by_score())?;
        let Some((_, address)) = top.first() else {
            return Ok(None);
        };
        let doc: TantivyDocument = searcher.doc(*address)?;
        let text = |f: Field| {
            doc.get_first(f)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        Ok(Some(SparseDoc {
            id: text(self.fields.id),
            key: doc
                .get_first(self.fields.key)
                .and_then(|v| v.as_u64())
                .unwrap_or_default(),
            title: text(self.fields.title),
            text: text(self.fields.text),
            fields: self.stored_fields(&doc, id)?,
        }))
    }

    /// The fields of stored document `doc` (external id `id`) as they were given; empty for a
    /// document without fields and in an index made before fields existed.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the stored JSON cannot be read.
    pub(crate) fn stored_fields(&self, doc: &TantivyDocument, id: &str) -> Result<DocFields> {
        match self
            .fields
            .fields_src
            .and_then(|f| doc.get_first(f))
            .and_then(|v| v.as_str())
        {
            Some(json) => serde_json::from_str(json).map_err(|e| {
                Error::Config(format!("the stored fields of {id:?} are unreadable: {e}"))
            }),
            None => Ok(DocFields::new()),
        }
    }

    /// Whether documents of this index can have fields (an index made before fields existed
    /// cannot).
    pub fn has_fields(&self) -> bool {
        self.fields.json.is_some()
    }

    /// `filter` as a query on this index, its fields typed by `schema`: every clause scores 0.
    ///
    /// # Errors
    ///
    /// [`Error::Filter`] naming an unknown field, a value of the wrong type or a condition the
    /// field does not take.
    pub fn filter_query(&self, filter: &Filter, schema: &FieldSchema) -> Result<FilterQuery> {
        Ok(FilterQuery(
            filter
                .query(schema, self.fields.json, self.fields.id)
                .map_err(Error::Filter)?,
        ))
    }

    /// The live documents `filter` (from [`Bm25Index::filter_query`]) matches, as (internal
    /// key, external id), in index order.
    ///
    /// # Errors
    ///
    /// [`Error::Tantivy`] when the search fails.
    pub fn matching(&self, filter: &FilterQuery) -> Result<Vec<(u64, Arc<str>)>> {
        self.each_match(filter, |segment, doc| (segment.key(doc), segment.id(doc)))
    }

    /// The internal keys of the live documents `filter` matches, in index order (no id is
    /// read).
    ///
    /// # Errors
    ///
    /// [`Error::Tantivy`] when the search fails.
    pub fn matching_keys(&self, filter: &FilterQuery) -> Result<Vec<u64>> {
        self.each_match(filter, |segment, doc| segment.key(doc))
    }

    /// `read` of every live document `filter` matches (its segment's columns and its id in the
    /// segment), in index order.
    fn each_match<T>(
        &self,
        filter: &FilterQuery,
        read: impl Fn(&SegmentColumns, DocId) -> T,
    ) -> Result<Vec<T>> {
        let searcher = self.searcher();
        let addresses = searcher.search(&*filter.0, &Addresses)?;
        let columns = self.segment_columns(&searcher)?;
        Ok(addresses
            .into_iter()
            .map(|a| read(&columns[a.segment_ord as usize], a.doc_id))
            .collect())
    }
}

/// A [`Filter`] compiled for one index ([`Bm25Index::filter_query`]): a query whose clauses
/// all score 0.
#[derive(Debug)]
pub struct FilterQuery(Box<dyn Query>);

impl Clone for FilterQuery {
    fn clone(&self) -> Self {
        Self(self.0.box_clone())
    }
}

/// Collects the address of every matching document, without scoring.
struct Addresses;

impl Collector for Addresses {
    type Fruit = Vec<DocAddress>;
    type Child = AddressesSegment;

    fn for_segment(
        &self,
        segment_ord: SegmentOrdinal,
        _: &SegmentReader,
    ) -> tantivy::Result<Self::Child> {
        Ok(AddressesSegment {
            segment_ord,
            docs: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Self::Fruit>) -> tantivy::Result<Self::Fruit> {
        Ok(fruits.into_iter().flatten().collect())
    }
}

/// One segment's share of [`Addresses`].
struct AddressesSegment {
    segment_ord: SegmentOrdinal,
    docs: Vec<DocAddress>,
}

impl SegmentCollector for AddressesSegment {
    type Fruit = Vec<DocAddress>;

    fn collect(&mut self, doc: DocId, _: Score) {
        self.docs.push(DocAddress::new(self.segment_ord, doc));
    }

    fn harvest(self) -> Self::Fruit {
        self.docs
    }
}

/// Documents from which [`Bm25Writer::merge_all`] ends in two segments merged in parallel.
pub const PARALLEL_MERGE_DOCS: u64 = 200_000;

/// Adds and deletes documents; nothing is visible until [`Bm25Writer::commit`].
pub struct Bm25Writer {
    writer: IndexWriter,
    index: Index,
    fields: Fields,
    analyzer: Arc<Analyzer>,
}

impl Bm25Writer {
    /// Adds a document, replacing any committed or pending document with the same id.
    ///
    /// # Errors
    ///
    /// Analysis errors of the document's text; [`Error::Tantivy`] when it cannot be staged.
    pub fn upsert(&mut self, doc: &SparseDoc, fields: Option<&TypedFields>) -> Result<()> {
        self.delete(&doc.id);
        self.insert(doc, fields)
    }

    /// Adds a document without deleting others of the same id first: only for an id known to
    /// be new (no committed and no pending document has it), where [`Bm25Writer::upsert`]'s
    /// delete would be wasted work (each one is looked up in every segment at commit).
    ///
    /// # Errors
    ///
    /// Analysis errors of the document's text ([`Error::Dictionary`] for Korean text and the
    /// `auto` analyzer without ko-dic, naming the document); [`Error::Tantivy`] when it cannot
    /// be staged.
    pub fn insert(&mut self, doc: &SparseDoc, fields: Option<&TypedFields>) -> Result<()> {
        // Checked here: inside tantivy's tokenizer an analysis error has nowhere to go.
        for text in [&doc.title, &doc.text] {
            self.analyzer.check(text).map_err(|e| match e {
                Error::Dictionary(m) => Error::Dictionary(format!("document {:?}: {m}", doc.id)),
                e => e,
            })?;
        }
        let f = self.fields;
        let mut d = TantivyDocument::default();
        if let Some(typed) = fields {
            let (Some(json), Some(src)) = (f.json, f.fields_src) else {
                return Err(Error::Config(format!(
                    "document {:?} has fields, and this index was made before documents had \
                     fields; build the collection again to add fields",
                    doc.id
                )));
            };
            d.add_field_value(json, &typed.indexed);
            d.add_text(src, &typed.stored);
        }
        d.add_text(f.id, &doc.id);
        d.add_u64(f.key, doc.key);
        d.add_text(f.title, &doc.title);
        d.add_text(f.text, &doc.text);
        let body = if doc.title.is_empty() {
            doc.text.clone()
        } else {
            format!("{}\n{}", doc.title, doc.text)
        };
        d.add_text(f.body_ng, &body);
        d.add_text(f.body, body);
        self.writer.add_document(d)?;
        Ok(())
    }

    /// Deletes the document with external id `id`.
    pub fn delete(&mut self, id: &str) {
        self.writer
            .delete_term(Term::from_field_text(self.fields.id, id));
    }

    /// Commits everything added so far, with a payload stored in the commit's metadata.
    ///
    /// # Errors
    ///
    /// [`Error::Tantivy`] when the commit cannot be written (the last commit stays as it was).
    pub fn commit(&mut self, payload: &str) -> Result<()> {
        let mut prepared = self.writer.prepare_commit()?;
        prepared.set_payload(payload);
        prepared.commit()?;
        Ok(())
    }

    /// Turns tantivy's background merges off for this writer: for a bulk load that merges
    /// everything into one segment at its end ([`Bm25Writer::merge_all`]), merges along the way
    /// are wasted work.
    pub fn without_background_merges(&mut self) {
        self.writer
            .set_merge_policy(Box::new(tantivy::indexer::NoMergePolicy));
    }

    /// Drops everything added since the last commit.
    ///
    /// # Errors
    ///
    /// [`Error::Tantivy`] when the writer cannot be reset.
    pub fn rollback(&mut self) -> Result<()> {
        self.writer.rollback()?;
        Ok(())
    }

    /// Merges every committed segment into one (after a bulk load: one segment answers a deep
    /// top-k without merging per-segment results). Returns the number of segments merged.
    ///
    /// # Errors
    ///
    /// [`Error::Tantivy`] when a merge fails (the commits stand).
    pub fn merge_all(&mut self) -> Result<usize> {
        let ids = self.index.searchable_segment_ids()?;
        let docs: u64 = self
            .index
            .searchable_segment_metas()?
            .iter()
            .map(|m| u64::from(m.num_docs()))
            .sum();
        if ids.len() > 2 && docs >= PARALLEL_MERGE_DOCS {
            // A large load ends in two segments merged side by side, one per core, instead of
            // one merge on one core (a merge is single-threaded): half the wall time, and a
            // deep top-k over two segments costs about what it costs over one.
            let (a, b) = ids.split_at(ids.len() / 2);
            let (first, second) = (self.writer.merge(a), self.writer.merge(b));
            first.wait()?;
            second.wait()?;
        } else if ids.len() > 1 {
            self.writer.merge(&ids).wait()?;
        }
        Ok(ids.len())
    }

    /// Waits for merges to finish.
    ///
    /// # Errors
    ///
    /// [`Error::Tantivy`] when a background merge failed (the commits stand).
    pub fn wait_merging_threads(self) -> Result<()> {
        self.writer.wait_merging_threads()?;
        Ok(())
    }
}
