//! The legs of a search, wherever they are answered: the collection's own indexes
//! ([`LocalLegs`]) or a backend that holds its documents as points (a Qdrant cluster,
//! `hybrid-search-qdrant`'s `QdrantLegs`). Every search goes through one [`Legs`]: the engine
//! analyses and encodes the query, asks the legs for their lists, fuses them (unless the
//! backend fused them itself and explained its fusion), reranks and fetches the hits.

use std::sync::{Arc, OnceLock};

use hybrid_search_fusion::{FusedHit, LegList};
use hybrid_search_sparse::{Filter, FilterQuery, QueryTerms};

use crate::collection::Snapshot;
use crate::error::{Error, Result};
use crate::manifest::HybridOptions;

/// Ranked lists of external ids with their scores, best first.
pub type IdList = Vec<(Arc<str>, f32)>;

/// What a search asks of its legs.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct LegQuery<'a> {
    /// The query text: BM25 analyses it (a backend weighs its terms with the snapshot's BM25
    /// statistics, [`Snapshot::query_sparse_vector`]).
    pub text: &'a str,
    /// The text already analysed for BM25, when the caller has it (a search analyses its
    /// query once, for the legs and the snippets); `None`: the sparse leg analyses `text`.
    pub terms: Option<&'a QueryTerms>,
    /// Whether the sparse leg is asked.
    pub sparse: bool,
    /// The query vector, when the dense leg is asked (its length checked already).
    pub dense: Option<&'a [f32]>,
    /// How deep each leg's list goes.
    pub depth: usize,
    /// In a hybrid search, the fused hits wanted: a backend that fuses the two lists itself
    /// returns its fusion of this many ([`LegLists::fused`]).
    pub fused: Option<usize>,
    /// The documents both legs are restricted to, before their top `depth` is taken.
    pub filter: Option<&'a LegFilter>,
}

/// A search's filter: as given (for a backend to translate) and compiled for the snapshot's
/// BM25 index, with the keys of the documents it matches (the dense leg's restriction)
/// found at their first use.
#[derive(Debug)]
pub struct LegFilter {
    /// The filter as the request gave it.
    pub filter: Filter,
    pub(crate) query: FilterQuery,
    keys: OnceLock<Arc<KeySet>>,
}

/// The internal keys of the documents a filter matches: as a bit set (the graph search's
/// predicate), and sorted (the exact search's list), sorted at its first use.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    keys: Vec<u64>,
    sorted: OnceLock<Vec<u64>>,
    bits: Vec<u64>,
}

impl KeySet {
    fn new(keys: Vec<u64>) -> Self {
        let words = keys.iter().max().map_or(0, |&k| (k / 64 + 1) as usize);
        let mut bits = vec![0u64; words];
        for &k in &keys {
            bits[(k / 64) as usize] |= 1 << (k % 64);
        }
        Self {
            keys,
            sorted: OnceLock::new(),
            bits,
        }
    }

    /// The keys, ascending.
    pub(crate) fn sorted(&self) -> &[u64] {
        self.sorted.get_or_init(|| {
            let mut keys = self.keys.clone();
            keys.sort_unstable();
            keys
        })
    }

    pub(crate) fn contains(&self, key: u64) -> bool {
        self.bits
            .get((key / 64) as usize)
            .is_some_and(|w| w & (1 << (key % 64)) != 0)
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

impl LegFilter {
    /// `filter` compiled for `snapshot` (a search compiles its request's filter once; a test
    /// of a backend compiles one to ask the local legs the same question).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] of the filter: an unknown field, a value of the wrong type.
    pub fn new(snapshot: &Snapshot, filter: &Filter) -> Result<Self> {
        let query = snapshot
            .sparse
            .filter_query(filter, snapshot.fields())
            .map_err(|e| Error::InvalidRequest {
                setting: crate::error::Setting::Filter,
                problem: e.to_string(),
            })?;
        Ok(Self {
            filter: filter.clone(),
            query,
            keys: OnceLock::new(),
        })
    }

    /// The keys of the documents the filter matches on `snapshot`, found once.
    pub(crate) fn keys(&self, snapshot: &Snapshot) -> Result<Arc<KeySet>> {
        if let Some(keys) = self.keys.get() {
            return Ok(keys.clone());
        }
        let _span = tracing::debug_span!("filter_keys").entered();
        let keys = Arc::new(KeySet::new(snapshot.sparse.matching_keys(&self.query)?));
        Ok(self.keys.get_or_init(|| keys).clone())
    }
}

impl<'a> LegQuery<'a> {
    /// The sparse leg alone, `depth` deep.
    pub fn sparse(text: &'a str, depth: usize) -> Self {
        Self {
            text,
            terms: None,
            sparse: true,
            dense: None,
            depth,
            fused: None,
            filter: None,
        }
    }

    /// The dense leg alone, `depth` deep.
    pub fn dense(text: &'a str, vector: &'a [f32], depth: usize) -> Self {
        Self {
            text,
            terms: None,
            sparse: false,
            dense: Some(vector),
            depth,
            fused: None,
            filter: None,
        }
    }

    /// Both legs `depth` deep (the dense one when `vector` is given), `k` fused hits wanted.
    pub fn hybrid(text: &'a str, vector: Option<&'a [f32]>, depth: usize, k: usize) -> Self {
        Self {
            text,
            terms: None,
            sparse: true,
            dense: vector,
            depth,
            fused: Some(k),
            filter: None,
        }
    }

    /// The same query restricted to the documents `filter` matches.
    pub fn with_filter(mut self, filter: Option<&'a LegFilter>) -> Self {
        self.filter = filter;
        self
    }

    /// The same query with its text already analysed for BM25.
    pub fn with_terms(mut self, terms: &'a QueryTerms) -> Self {
        self.terms = Some(terms);
        self
    }

    /// The query analysed for BM25: `terms` when given, else `text` analysed on `snapshot`.
    ///
    /// # Errors
    ///
    /// [`Error::Sparse`] when the query cannot be analysed.
    pub fn analysed(&self, snapshot: &Snapshot) -> Result<std::borrow::Cow<'a, QueryTerms>> {
        Ok(match self.terms {
            Some(terms) => std::borrow::Cow::Borrowed(terms),
            None => std::borrow::Cow::Owned(snapshot.sparse.query_terms(self.text)?),
        })
    }
}

/// What the legs answered.
#[derive(Debug)]
pub struct LegLists {
    /// The sparse leg's list (empty when not asked).
    pub sparse: IdList,
    /// The dense leg's list (empty when not asked), or why it could not answer: a hybrid
    /// search then falls back to the sparse leg and says why; a dense search fails.
    pub dense: Result<IdList>,
    /// The backend's own fusion of the two lists, when it fuses itself: its hits in its
    /// order and with its scores, each with the legs' shares explained.
    pub fused: Option<BackendFusion>,
}

/// A fusion the backend ran itself.
#[derive(Debug, Clone)]
pub struct BackendFusion {
    /// The fused hits, best first, each with what each leg gave it.
    pub hits: Vec<FusedHit<Arc<str>>>,
    /// The engine's fusion settings nearest to the backend's, reported with the results.
    pub fusion: HybridOptions,
}

/// Where the legs of a search are answered.
pub trait Legs: Send + Sync {
    /// What answers, for messages: `the collection's own indexes`, `Qdrant at URL,
    /// collection "NAME"`.
    fn describe(&self) -> String;

    /// The lists `query` asks for, on `snapshot` (the collection searched: its BM25
    /// statistics, its vectors' dimension).
    ///
    /// # Errors
    ///
    /// A leg that cannot answer at all ([`Error::Sparse`], [`Error::Remote`] when a backend
    /// cannot be reached or refuses the query); a dense leg that fails is reported in
    /// [`LegLists::dense`] instead.
    fn search(&self, snapshot: &Snapshot, query: &LegQuery<'_>) -> Result<LegLists>;
}

/// The collection's own legs: tantivy BM25 and the snapshot's vector segments.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalLegs;

impl Legs for LocalLegs {
    fn describe(&self) -> String {
        "the collection's own indexes".into()
    }

    fn search(&self, snapshot: &Snapshot, query: &LegQuery<'_>) -> Result<LegLists> {
        let sparse = if query.sparse {
            snapshot.search_ids(&*query.analysed(snapshot)?, query.depth, query.filter)?
        } else {
            Vec::new()
        };
        let dense = match query.dense {
            Some(v) => snapshot.dense_search_ids(v, query.depth, query.filter),
            None => Ok(Vec::new()),
        };
        Ok(LegLists {
            sparse,
            dense,
            fused: None,
        })
    }
}

/// The sparse leg's list for fusion: when BM25 returned fewer documents than `depth`, it
/// returned every document that matches the query, so every other one scored 0.
pub fn sparse_list(hits: &[(Arc<str>, f32)], depth: usize) -> LegList<'_, Arc<str>> {
    LegList {
        hits,
        absent: (hits.len() < depth).then_some(0.0),
    }
}

/// Whether an error of the dense leg leaves a hybrid search to BM25: not a query vector that
/// does not fit (the caller's mistake, refused as in the dense mode), and not a remote side
/// that fails.
pub(crate) fn degrades(err: &Error) -> bool {
    !matches!(err, Error::InvalidRequest { .. } | Error::Remote { .. })
}
