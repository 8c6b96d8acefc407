//! Text analysis (Korean, English, mixed) and the BM25 index of hybrid-search.
//!
//! Three analyzers: `ko` (lindera with ko-dic, part-of-speech filtering on the leftmost tag,
//! decompounding), `en` (domain terms such as `IL-6` kept whole with their parts, stop words,
//! Snowball stemming) and `auto` (Hangul runs to `ko`, the rest to `en`). The BM25 index is
//! tantivy's, with a Hangul character-bigram field beside the analysed field. Every analyzer
//! first [normalises](normalize) its input (NFC Hangul, NFKC elsewhere, invisible characters
//! removed) and reports offsets into the text as given.
//!
//! # Example
//!
//! ```
//! use hybrid_search_sparse::{Analyzer, AnalyzerConfig, AnalyzerKind};
//!
//! let analyzer = Analyzer::new(&AnalyzerConfig::for_kind(AnalyzerKind::En)).unwrap();
//! let terms: Vec<String> =
//!     analyzer.analyze("IL-6 levels in COVID-19").unwrap().into_iter().map(|t| t.term).collect();
//! assert_eq!(terms, ["il-6", "il", "level", "covid-19", "covid", "19"]);
//! ```

mod analysis;
mod bm25_vectors;
mod english;
mod error;
pub mod fields;
mod index;
mod korean;
pub mod normalize;

pub use analysis::{
    ANALYSIS_VERSION, AnalyzedToken, Analyzer, AnalyzerConfig, AnalyzerKind, HsTokenizer,
    hangul_bigrams, is_hangul,
};
pub use bm25_vectors::{
    BIGRAM_TAG, BM25_B, BM25_K1, BODY_TAG, Bm25Stats, CollisionReport, DocumentVector,
    SparseVector, term_id,
};
pub use english::{ENGLISH_STOP_WORDS, LUCENE_STOP_WORDS, StopWords};
pub use error::{Error, Result};
pub use fields::{
    Condition, FieldError, FieldSchema, FieldSpec, FieldType, Fields, Filter, MAX_FIELDS_BYTES,
    TypedFields, format_date, parse_date,
};
pub use index::{Bm25Index, Bm25Writer, FilterQuery, QueryTerms, SparseDoc, SparseHit};
pub use korean::{
    DecompoundMode, DictionaryInfo, FINGERPRINT_FILE, HOME_VAR, NORI_STOP_TAGS, data_home,
    ko_dic_fingerprint, load_ko_dic, locate_ko_dic, model_roots,
};
