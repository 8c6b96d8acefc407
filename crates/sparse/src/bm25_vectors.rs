//! BM25 as sparse vectors: one vector per document and one per query whose dot product is the
//! engine's BM25 score, so a vector database that scores sparse vectors by dot product (Qdrant)
//! ranks exactly as the engine does.
//!
//! tantivy scores a term `t` of a query in a document `d` as (`src/query/bm25.rs`, Robertson
//! and Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond", 2009):
//!
//! ```text
//! idf(t) * (k1 + 1) * tf / (tf + k1 * (1 - b + b * dl / avgdl)),   k1 = 1.2, b = 0.75
//! idf(t) = ln(1 + (N - n(t) + 0.5) / (n(t) + 0.5))
//! ```
//!
//! with `dl` the document's field length as tantivy stores it (a one-byte code,
//! `FieldNormReader::id_to_fieldnorm`), `avgdl` the field's tokens over `N`, `N` the documents of
//! every segment (deleted ones included, as tantivy counts them) and `n(t)` the documents
//! holding `t`. The product splits in two: the document's vector carries `(k1 + 1) * tf / (tf +
//! k1 * (1 - b + b * dl / avgdl))` and the query's carries `idf(t)` (times the bigram field's
//! weight for bigram terms, and once per occurrence of a bigram, as the engine's query counts
//! them). The document's side depends on `avgdl`, so adding or deleting documents changes every
//! document's vector a little; the query's side depends on `N` and `n(t)`.
//!
//! Term ids are MurmurHash3 (x86, 32 bits, seed 0) of a field tag byte followed by the term's
//! UTF-8 bytes: the hashing trick of Weinberger et al. (2009), as Spark's `HashingTF` and
//! scikit-learn's `HashingVectorizer` use it. Two terms can share an id; see
//! [`Bm25Index::term_id_collisions`].

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use tantivy::fieldnorm::FieldNormReader;
use tantivy::postings::Postings;
use tantivy::query::Bm25StatisticsProvider;
use tantivy::schema::{Field, IndexRecordOption, Value};
use tantivy::{DocId, DocSet, Searcher, SegmentReader, TERMINATED, TantivyDocument, Term};

use crate::analysis::hangul_bigrams;
use crate::error::{Error, Result};
use crate::index::{Bm25Index, QueryTerms};

/// tantivy's `k1` (`src/query/bm25.rs`).
pub const BM25_K1: f32 = 1.2;
/// tantivy's `b` (`src/query/bm25.rs`).
pub const BM25_B: f32 = 0.75;

/// The tag byte hashed before a term of the analysed field (`body`).
pub const BODY_TAG: u8 = b'b';
/// The tag byte hashed before a term of the Hangul bigram field (`body_ng`).
pub const BIGRAM_TAG: u8 = b'n';

/// The sparse-vector index of `term` in the field tagged `tag`: MurmurHash3_x86_32 with seed 0
/// of `[tag] ++ term.as_bytes()`. In Python: `mmh3.hash(bytes([tag]) + term.encode(),
/// signed=False)`.
pub fn term_id(tag: u8, term: &[u8]) -> u32 {
    let mut key = Vec::with_capacity(term.len() + 1);
    key.push(tag);
    key.extend_from_slice(term);
    murmurhash32::murmurhash3_with_seed::<0>(&key)
}

/// A sparse vector: `indices` strictly increasing, one value each.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SparseVector {
    /// Term ids ([`term_id`]), strictly increasing.
    pub indices: Vec<u32>,
    /// The weight of each id.
    pub values: Vec<f32>,
}

impl SparseVector {
    /// Builds a vector from (id, weight) pairs: sorted by id, the weights of a repeated id
    /// added up. Returns the vector and how many pairs fell on an id already taken.
    pub fn from_pairs(mut pairs: Vec<(u32, f32)>) -> (Self, u32) {
        pairs.sort_unstable_by_key(|p| p.0);
        let mut out = SparseVector::default();
        let mut merged = 0;
        for (id, w) in pairs {
            if out.indices.last() == Some(&id) {
                *out.values.last_mut().expect("a value per index") += w;
                merged += 1;
            } else {
                out.indices.push(id);
                out.values.push(w);
            }
        }
        (out, merged)
    }

    /// The dot product with `other` (both sorted by index).
    pub fn dot(&self, other: &SparseVector) -> f32 {
        let (mut i, mut j, mut sum) = (0, 0, 0.0f32);
        while i < self.indices.len() && j < other.indices.len() {
            match self.indices[i].cmp(&other.indices[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    sum += self.values[i] * other.values[j];
                    i += 1;
                    j += 1;
                }
            }
        }
        sum
    }

    /// Number of non-zero entries.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the vector has no entry.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

/// The corpus statistics the document vectors were computed with (one commit of the index).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bm25Stats {
    /// `N`: documents in every segment, deleted ones included (tantivy's count).
    pub docs: u64,
    /// Live documents.
    pub live_docs: u64,
    /// `avgdl` of the analysed field.
    pub avg_len: f32,
    /// `avgdl` of the bigram field.
    pub avg_len_bigrams: f32,
    /// The bigram field's weight in queries (0: not queried).
    pub ngram_weight: f32,
}

/// One live document with its BM25 vector.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentVector {
    /// The external id.
    pub id: Arc<str>,
    /// The engine's internal key.
    pub key: u64,
    /// Title.
    pub title: String,
    /// Text.
    pub text: String,
    /// The document's side of BM25, both fields.
    pub vector: SparseVector,
    /// The document's fields as they were given (empty without fields).
    pub fields: crate::fields::Fields,
    /// Terms of this document whose id another of its terms already had (their weights were
    /// added up, so a query holding one of them scores it a little differently from tantivy).
    pub merged_terms: u32,
}

/// How often [`term_id`] maps two distinct terms of the index to one id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CollisionReport {
    /// Distinct (field, term) pairs in the index.
    pub terms: u64,
    /// Distinct ids they hash to.
    pub ids: u64,
    /// Terms whose id an earlier term (in dictionary order) already had: `terms - ids`.
    pub colliding_terms: u64,
}

/// Documents whose postings are gathered in one pass over the term dictionaries.
const DOCS_PER_PASS: u32 = 32_768;

/// The BM25 fields as (field, tag).
fn tagged_fields(index: &Bm25Index) -> [(Field, u8); 2] {
    [
        (index.fields.body, BODY_TAG),
        (index.fields.body_ng, BIGRAM_TAG),
    ]
}

/// An I/O error of tantivy's files, as tantivy reports it.
fn io_error(e: std::io::Error) -> Error {
    Error::Tantivy(e.into())
}

/// `avgdl` of `field` as tantivy computes it.
fn average_len(searcher: &Searcher, field: Field) -> Result<f32> {
    let tokens = searcher.total_num_tokens(field)?;
    let docs = Bm25StatisticsProvider::total_num_docs(searcher)?;
    Ok(if docs == 0 {
        0.0
    } else {
        tokens as f32 / docs as f32
    })
}

/// tantivy's inverse document frequency (`src/query/bm25.rs`, `idf`).
fn idf(doc_freq: u64, docs: u64) -> f32 {
    let x = ((docs - doc_freq.min(docs)) as f32 + 0.5) / (doc_freq as f32 + 0.5);
    (1.0 + x).ln()
}

/// The document side of BM25 for every field-norm code, as tantivy caches it
/// (`compute_tf_cache`): `k1 * (1 - b + b * dl / avgdl)`.
fn length_norms(avg_len: f32) -> [f32; 256] {
    let mut cache = [0.0f32; 256];
    for (code, norm) in cache.iter_mut().enumerate() {
        let len = FieldNormReader::id_to_fieldnorm(code as u8) as f32;
        *norm = BM25_K1 * (1.0 - BM25_B + BM25_B * len / avg_len);
    }
    cache
}

impl Bm25Index {
    /// The statistics BM25 uses at the searcher's commit.
    ///
    /// # Errors
    ///
    /// [`Error::Tantivy`] when a segment's statistics cannot be read.
    pub fn bm25_stats(&self) -> Result<Bm25Stats> {
        self.stats_of(&self.searcher())
    }

    /// The statistics BM25 uses on `searcher`'s commit.
    fn stats_of(&self, searcher: &Searcher) -> Result<Bm25Stats> {
        Ok(Bm25Stats {
            docs: Bm25StatisticsProvider::total_num_docs(searcher)?,
            live_docs: searcher.num_docs(),
            avg_len: average_len(searcher, self.fields.body)?,
            avg_len_bigrams: average_len(searcher, self.fields.body_ng)?,
            ngram_weight: self.ngram_weight,
        })
    }

    /// The query's side of BM25 for `text`: `idf` of each analysed term (each once, as
    /// [`Bm25Index::query`] counts them) and `ngram_weight * idf` of each Hangul bigram (once
    /// per occurrence). Terms no document holds are left out (they score nothing in tantivy,
    /// and an id they share with another term would). Its dot product with a
    /// [`DocumentVector`]'s vector is the document's BM25 score for `text`.
    ///
    /// # Errors
    ///
    /// Analysis errors of the query; [`Error::Tantivy`] when a document frequency cannot be
    /// read.
    pub fn query_vector(&self, text: &str) -> Result<SparseVector> {
        self.query_vector_of(&self.query_terms(text)?)
    }

    /// [`Bm25Index::query_vector`] of a query already analysed ([`Bm25Index::query_terms`]).
    ///
    /// # Errors
    ///
    /// [`Error::Tantivy`] when a document frequency cannot be read.
    pub fn query_vector_of(&self, query: &QueryTerms) -> Result<SparseVector> {
        let searcher = self.searcher();
        let docs = Bm25StatisticsProvider::total_num_docs(&searcher)?;
        let QueryTerms { terms, bigrams, .. } = query;
        let mut pairs = Vec::with_capacity(terms.len() + bigrams.len());
        let mut add = |field: Field, tag: u8, term: &str, weight: f32| -> Result<()> {
            let n = searcher.doc_freq(&Term::from_field_text(field, term))?;
            if n > 0 {
                pairs.push((term_id(tag, term.as_bytes()), weight * idf(n, docs)));
            }
            Ok(())
        };
        for (i, term) in terms.iter().enumerate() {
            add(self.fields.body, BODY_TAG, term, query.weight(i))?;
        }
        for term in bigrams {
            add(self.fields.body_ng, BIGRAM_TAG, term, self.ngram_weight)?;
        }
        Ok(SparseVector::from_pairs(pairs).0)
    }

    /// The terms [`Bm25Index::query`] builds clauses from: the query's analysed terms
    /// ([`Analyzer::analyze_query`](crate::Analyzer::analyze_query), each once) and, when the
    /// bigram field is queried, its Hangul bigrams (each occurrence). A search analyses its
    /// query once with this and hands the terms to each step that needs them.
    ///
    /// # Errors
    ///
    /// [`Error::Lindera`] when Korean segmentation fails.
    pub fn query_terms(&self, text: &str) -> Result<QueryTerms> {
        let mut seen = std::collections::HashSet::new();
        let terms = self
            .analyzer
            .analyze_query(text)?
            .into_iter()
            .map(|t| t.term)
            .filter(|t| seen.insert(t.clone()))
            .collect();
        let bigrams = if self.ngram_weight > 0.0 {
            hangul_bigrams(text).into_iter().map(|t| t.term).collect()
        } else {
            Vec::new()
        };
        Ok(QueryTerms {
            terms,
            bigrams,
            weights: Vec::new(),
        })
    }

    /// Calls `f` with the live documents and their BM25 vectors, `batch` at a time, in index
    /// order, all from one commit (the one this handle's searcher is on). Term frequencies and
    /// field lengths are read from the index itself (postings and field norms), not from a
    /// second analysis, so the vectors hold exactly what tantivy scores.
    ///
    /// # Errors
    ///
    /// [`Error::Tantivy`] when the index cannot be read, and whatever `f` returns.
    pub fn for_each_document_vector<E: From<Error>>(
        &self,
        batch: usize,
        f: &mut dyn FnMut(Vec<DocumentVector>) -> std::result::Result<(), E>,
    ) -> std::result::Result<Bm25Stats, E> {
        let searcher = self.searcher();
        // The statistics of the same commit the postings are read from.
        let stats = self.stats_of(&searcher)?;
        let fields = tagged_fields(self);
        let norms = [
            length_norms(stats.avg_len),
            length_norms(stats.avg_len_bigrams),
        ];
        let columns = self.segment_columns(&searcher)?;
        let mut out = Vec::with_capacity(batch.max(1));
        for (segment, cols) in searcher.segment_readers().iter().zip(&columns) {
            let store = segment.get_store_reader(64).map_err(io_error)?;
            let mut start = 0;
            while start < segment.max_doc() {
                let end = start.saturating_add(DOCS_PER_PASS).min(segment.max_doc());
                let mut pairs = gather_pairs(segment, &fields, &norms, start, end)?;
                for doc in start..end {
                    if !segment
                        .alive_bitset()
                        .is_none_or(|alive| alive.is_alive(doc))
                    {
                        continue;
                    }
                    let stored: TantivyDocument = store.get(doc).map_err(Error::from)?;
                    let text = |field: Field| {
                        stored
                            .get_first(field)
                            .and_then(|v| v.as_str())
                            .unwrap_or_default()
                            .to_string()
                    };
                    let (vector, merged_terms) = SparseVector::from_pairs(std::mem::take(
                        &mut pairs[(doc - start) as usize],
                    ));
                    let id = cols.id(doc);
                    let fields = self.stored_fields(&stored, &id)?;
                    out.push(DocumentVector {
                        id,
                        key: cols.key(doc),
                        title: text(self.fields.title),
                        text: text(self.fields.text),
                        vector,
                        fields,
                        merged_terms,
                    });
                    if out.len() >= batch.max(1) {
                        f(std::mem::take(&mut out))?;
                    }
                }
                start = end;
            }
        }
        if !out.is_empty() {
            f(out)?;
        }
        Ok(stats)
    }

    /// Counts the distinct terms of both fields and the distinct ids [`term_id`] gives them.
    ///
    /// # Errors
    ///
    /// [`Error::Tantivy`] when a term dictionary cannot be read.
    pub fn term_id_collisions(&self) -> Result<CollisionReport> {
        let searcher = self.searcher();
        let mut ids: HashMap<u32, Vec<u8>> = HashMap::new();
        let mut terms = std::collections::HashSet::new();
        for segment in searcher.segment_readers() {
            for (field, tag) in tagged_fields(self) {
                let inverted = segment.inverted_index(field)?;
                let mut stream = inverted.terms().stream().map_err(io_error)?;
                while stream.advance() {
                    let mut key = vec![tag];
                    key.extend_from_slice(stream.key());
                    if terms.insert(key.clone()) {
                        ids.entry(term_id(tag, stream.key())).or_insert(key);
                    }
                }
            }
        }
        Ok(CollisionReport {
            terms: terms.len() as u64,
            ids: ids.len() as u64,
            colliding_terms: (terms.len() - ids.len()) as u64,
        })
    }
}

/// The (term id, document weight) pairs of documents `start..end` of `segment`, by document
/// (index `doc - start`): one pass over each field's term dictionary, each postings list read
/// from `start`.
fn gather_pairs(
    segment: &SegmentReader,
    fields: &[(Field, u8); 2],
    norms: &[[f32; 256]; 2],
    start: DocId,
    end: DocId,
) -> Result<Vec<Vec<(u32, f32)>>> {
    let mut pairs: Vec<Vec<(u32, f32)>> = vec![Vec::new(); (end - start) as usize];
    for ((field, tag), norm) in fields.iter().zip(norms) {
        let inverted = segment.inverted_index(*field)?;
        let lengths = segment.get_fieldnorms_reader(*field)?;
        let mut stream = inverted.terms().stream().map_err(io_error)?;
        while stream.advance() {
            let mut postings = inverted
                .read_postings_from_terminfo(stream.value(), IndexRecordOption::WithFreqs)
                .map_err(io_error)?;
            let mut doc = if postings.doc() >= start {
                postings.doc()
            } else {
                postings.seek(start)
            };
            if doc == TERMINATED || doc >= end {
                continue;
            }
            let id = term_id(*tag, stream.key());
            while doc != TERMINATED && doc < end {
                let tf = postings.term_freq() as f32;
                let cached = norm[lengths.fieldnorm_id(doc) as usize];
                // tantivy: weight * tf / (tf + cache), weight = idf * (1 + k1).
                let weight = (1.0 + BM25_K1) * (tf / (tf + cached));
                pairs[(doc - start) as usize].push((id, weight));
                doc = postings.advance();
            }
        }
    }
    Ok(pairs)
}
