//! The engine's error type.

use std::path::PathBuf;

/// What can go wrong with a collection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The sparse leg (analysis or the BM25 index) failed.
    #[error(transparent)]
    Sparse(#[from] hybrid_search_sparse::Error),
    /// The dense leg (encoder or vector index) failed.
    #[error(transparent)]
    Dense(#[from] hybrid_search_dense::Error),
    /// A model does not match the one the collection's vectors were made with.
    #[error("{collection}: model {model}: {message}")]
    ModelMismatch {
        /// The collection folder.
        collection: PathBuf,
        /// The model directory given.
        model: PathBuf,
        /// What differs and what to do.
        message: String,
    },
    /// The Korean dictionary found is not the one the collection's documents were analysed
    /// with: queries would be segmented differently from the documents.
    #[error(
        "{collection}: the collection was analysed with ko-dic {recorded}, but the dictionary \
         found at {} is {found}. Point HYBRID_SEARCH_KO_DIC (or HYBRID_SEARCH_HOME) at the \
         dictionary the collection was built with, or index the documents again into a new \
         collection folder (`hybrid-search index --index NEW_DIR`)",
        path.display()
    )]
    DictionaryMismatch {
        /// The collection folder.
        collection: PathBuf,
        /// The fingerprint in the manifest.
        recorded: String,
        /// The dictionary folder found.
        path: PathBuf,
        /// Its fingerprint.
        found: String,
    },
    /// A remote backend of the legs (a Qdrant cluster) cannot be reached, refuses a request,
    /// or does not hold what the collection does.
    #[error("{backend}: {message}")]
    Remote {
        /// Where: the URL and collection.
        backend: String,
        /// What went wrong and what to do.
        message: String,
    },
    /// A dense search or write needs the collection's model and none is attached (or it was
    /// not found). Each front end says how to name the model (the CLI's `--model DIR`, the
    /// library's `Collection::attach_model`, the server's models folder).
    #[error("{0}: {1}")]
    NoModel(PathBuf, String),
    /// The collection was built without a dense leg, so nothing dense can be done with it (a
    /// vector search, a model, stored vectors); one cannot be added: a collection built with
    /// a model can.
    #[error("{0}: {1}")]
    NoDenseLeg(PathBuf, String),
    /// The dense leg's vector file cannot be read (missing, truncated, damaged). The sparse leg
    /// still answers; `Collection::repair_dense` rebuilds the vectors from the stored documents.
    #[error(
        "{collection}: the dense leg cannot be read: {message}. Sparse search still works; \
         rebuild the vectors from the stored documents with `hybrid-search repair --index {}`",
        collection.display()
    )]
    DenseDamaged {
        /// The collection folder.
        collection: PathBuf,
        /// The underlying error.
        message: String,
    },
    /// The sparse leg, which stores the documents, cannot be opened (a missing, truncated or
    /// damaged index file).
    #[error(
        "{collection}: the BM25 index (sparse/) cannot be read: {message}. The documents are \
         stored there: restore the collection folder from a backup, or rebuild it from the \
         source data with `hybrid-search index`"
    )]
    SparseDamaged {
        /// The collection folder.
        collection: PathBuf,
        /// The underlying error.
        message: String,
    },
    /// Another writer (in this or another process) holds the collection's write lock. The
    /// message names no front end's option: the CLI adds its `--wait`, the server its retry.
    #[error(
        "{collection}: another process is writing to this collection (it holds {lock}); wait \
         for it to finish"
    )]
    Busy {
        /// The collection folder.
        collection: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// A vector supplied with a document (or a query) cannot be used.
    #[error("document {id:?}: its \"vector\" cannot be used: {message}")]
    InvalidVector {
        /// The document id (empty for a query vector).
        id: String,
        /// What is wrong.
        message: String,
    },
    /// A vector supplied with a document has values that cannot be used: a value that is not
    /// finite, every value 0, or (under the inner product) a length whose products overflow.
    #[error("document {id:?}: its \"vector\" cannot be used: {message}")]
    InvalidVectorValues {
        /// The document id.
        id: String,
        /// What is wrong.
        message: String,
    },
    /// A document's id breaks the id rule ([`hybrid_search_document::check_id`]: not empty or
    /// blank, at most 512 characters, no control characters).
    #[error("document {id}: {message}")]
    InvalidId {
        /// The id as a message shows it ([`hybrid_search_document::show_id`]: quoted, cut to
        /// its first 64 characters when long).
        id: String,
        /// What is wrong.
        message: String,
    },
    /// A document's fields cannot be stored: a value of another type than its field's, a
    /// value no field can hold, fields too large, or a collection made before fields existed.
    #[error("document {id:?}: {message}")]
    InvalidField {
        /// The document id.
        id: String,
        /// The field (empty when the fields as a whole are refused).
        field: String,
        /// What is wrong and what would do, naming the field.
        message: String,
    },
    /// Fusion settings or inputs are invalid.
    #[error("fusion: {0}")]
    Fusion(#[from] hybrid_search_fusion::FusionError),
    /// A search option is out of its range (the message names it and the range).
    #[error("{0}")]
    InvalidOption(String),
    /// A setting of a search request is not valid. The message is neutral: each front end
    /// names the setting its own way ([`Setting`]: the CLI's `--alpha`, the HTTP body's
    /// `fusion.alpha`) before `problem`.
    #[error("{}: {problem}", setting.name())]
    InvalidRequest {
        /// The setting.
        setting: Setting,
        /// What is wrong with it and what would do, naming no front end's option.
        problem: String,
    },
    /// Reading a dataset failed.
    #[error(transparent)]
    Dataset(#[from] hybrid_search_eval::Error),
    /// Reading or writing a collection file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The folder is not a hybrid-search collection.
    #[error(
        "{0}: not a hybrid-search collection (no manifest.json); create it with `hybrid-search index`"
    )]
    NotACollection(PathBuf),
    /// The folder already holds something that is not a collection.
    #[error(
        "{0}: exists and is not an empty folder or a hybrid-search collection; choose another folder"
    )]
    NotEmpty(PathBuf),
    /// The manifest cannot be read or was written by an unknown format version.
    #[error("{path}: {message}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// The sparse index's last commit does not carry the engine's commit record.
    #[error("{path}: {message}")]
    Commit {
        /// The collection folder.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// What kind of failure this is, for a front end to map to an exit code or an HTTP status
    /// with an exhaustive match ([`ErrorKind`] is closed, unlike this enum). The match below
    /// has no catch-all: a new variant must be given its kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Sparse(e) if e.is_lock_busy() => ErrorKind::Busy,
            Error::Sparse(hybrid_search_sparse::Error::Config(_)) => ErrorKind::InvalidInput,
            // The Korean dictionary missing (Korean text for `auto` without it) or not loadable:
            // the request needs what this installation does not have, as a missing model.
            Error::Sparse(hybrid_search_sparse::Error::Dictionary(_)) => ErrorKind::Conflict,
            Error::Sparse(_) | Error::Dense(_) => ErrorKind::Internal,
            Error::ModelMismatch { .. }
            | Error::DictionaryMismatch { .. }
            | Error::NoModel(..)
            | Error::NoDenseLeg(..)
            | Error::InvalidVector { .. }
            | Error::InvalidField { .. }
            | Error::NotEmpty(_) => ErrorKind::Conflict,
            Error::Remote { .. } => ErrorKind::Remote,
            Error::Busy { .. } => ErrorKind::Busy,
            Error::Fusion(_)
            | Error::InvalidOption(_)
            | Error::InvalidRequest { .. }
            | Error::InvalidId { .. }
            | Error::InvalidVectorValues { .. }
            | Error::Dataset(_) => ErrorKind::InvalidInput,
            Error::NotACollection(_) => ErrorKind::NotFound,
            Error::DenseDamaged { .. }
            | Error::SparseDamaged { .. }
            | Error::Io { .. }
            | Error::Manifest { .. }
            | Error::Commit { .. } => ErrorKind::Internal,
        }
    }
}

/// The kind of an [`Error`] ([`Error::kind`]): what a front end needs to pick an exit code or
/// an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input or request is not valid as given: a setting out of range, a malformed
    /// dataset line, fusion settings that do not fit (HTTP 400).
    InvalidInput,
    /// The collection named does not exist (HTTP 404).
    NotFound,
    /// The request conflicts with the collection as it is: its model or dictionary, its
    /// vectors' dimension, no model to encode with, a folder in the way (HTTP 409).
    Conflict,
    /// Another writer holds the collection's write lock (HTTP 409 `busy`; the CLI offers
    /// `--wait`).
    Busy,
    /// A remote backend of the legs (a Qdrant cluster) failed (HTTP 502).
    Remote,
    /// Stored data is damaged or unreadable, a model failed, or the machine did (an I/O
    /// error): nothing the request can change (HTTP 500).
    Internal,
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A setting of a search request, as [`Error::InvalidRequest`] names it. Not
/// `#[non_exhaustive]`: each front end maps every setting to its own spelling with an
/// exhaustive match, so a new setting cannot go unnamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// The query text.
    Query,
    /// Results wanted.
    K,
    /// The query vector.
    Vector,
    /// Which leg(s) answer.
    Mode,
    /// The fusion method.
    Method,
    /// The convex combination's dense weight.
    Alpha,
    /// The RRF rank constant.
    RrfK,
    /// The convex combination's normalisation.
    Norm,
    /// Candidates taken from each leg.
    Depth,
    /// A separate query encoder.
    QueryModel,
    /// Hits the cross-encoder reorders.
    RerankDepth,
    /// The cross-encoder's weight against the first stage.
    RerankWeight,
    /// The filter on the documents' fields.
    Filter,
    /// The fields returned with each hit.
    Fields,
    /// Hits skipped before the first one returned.
    Offset,
    /// Pseudo-relevance feedback.
    Prf,
}

impl Setting {
    /// The setting's neutral name (`alpha`, `rrf_k`, ...), used by the engine's own messages.
    pub const fn name(self) -> &'static str {
        match self {
            Setting::Query => "query",
            Setting::K => "k",
            Setting::Vector => "vector",
            Setting::Mode => "mode",
            Setting::Method => "fusion method",
            Setting::Alpha => "alpha",
            Setting::RrfK => "rrf_k",
            Setting::Norm => "norm",
            Setting::Depth => "depth",
            Setting::QueryModel => "query model",
            Setting::RerankDepth => "rerank depth",
            Setting::RerankWeight => "rerank weight",
            Setting::Filter => "filter",
            Setting::Fields => "fields",
            Setting::Offset => "offset",
            Setting::Prf => "prf",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_what_the_caller_can_do() {
        let busy = Error::Busy {
            collection: "c".into(),
            lock: "c/write.lock".into(),
        };
        assert_eq!(busy.kind(), ErrorKind::Busy);
        let bad = Error::InvalidRequest {
            setting: Setting::Alpha,
            problem: "must be between 0 and 1, got 2".into(),
        };
        assert_eq!(bad.kind(), ErrorKind::InvalidInput);
        assert_eq!(bad.to_string(), "alpha: must be between 0 and 1, got 2");
        assert_eq!(
            Error::NotACollection("c".into()).kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            Error::NoModel("c".into(), "no model".into()).kind(),
            ErrorKind::Conflict
        );
        let damaged = Error::Manifest {
            path: "c/manifest.json".into(),
            message: "unknown format".into(),
        };
        assert_eq!(damaged.kind(), ErrorKind::Internal);
    }
}
