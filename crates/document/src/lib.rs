//! The document of hybrid-search: what a collection stores, what the dataset readers yield and
//! what training examples are built from. It lives in its own crate so that the engine, the
//! readers (`hybrid-search-eval`) and the trainers (`hybrid-search-train`) share one type
//! without depending on each other for it.
//!
//! # Example
//!
//! ```
//! use hybrid_search_document::{Document, passage_text};
//!
//! let doc: Document = serde_json::from_str(r#"{"id": "d1", "title": "IL-6", "text": "A cytokine."}"#).unwrap();
//! assert_eq!(passage_text(&doc), "IL-6 A cytokine.");
//! assert!(doc.vector.is_none());
//! ```

use serde::{Deserialize, Serialize};

/// One document of a corpus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// The document id, unique within its corpus.
    pub id: String,
    /// The title (empty when the source has none).
    pub title: String,
    /// The body text.
    pub text: String,
    /// The document's embedding when the user supplies it (JSONL field `"vector"`, an array of
    /// numbers): stored as the document's one vector instead of encoding the text. Its length
    /// is checked against the collection's model when it is added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
}

/// The text a passage encoder sees for a document: `title + " " + text` (each trimmed; just
/// the one that is not empty when the other is), as BEIR's dense baselines and MTEB encode
/// corpora. Training examples and the reranker use the same text.
pub fn passage_text(doc: &Document) -> String {
    match (doc.title.trim(), doc.text.trim()) {
        ("", text) => text.to_string(),
        (title, "") => title.to_string(),
        (title, text) => format!("{title} {text}"),
    }
}
