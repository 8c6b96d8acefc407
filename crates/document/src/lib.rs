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

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A document's fields: name (a dotted path for nested objects, `metadata.year`) -> value (a
/// string, number, bool, RFC 3339 date or date-time string, or an array of one of these).
pub type Fields = BTreeMap<String, serde_json::Value>;

/// One document of a corpus.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// Every other key of the document as it was given (JSONL keys besides the id, `title`,
    /// `text` and `vector`; BEIR's `metadata` object as `metadata.<key>`): stored, returned
    /// with hits when asked, and filterable. Empty for a document without fields.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub fields: Fields,
}

impl Document {
    /// A document with no vector and no fields.
    pub fn new(id: impl Into<String>, title: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            title: title.into(),
            text: text.into(),
            ..Self::default()
        }
    }
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

/// A JSON number (read as `f64`, as JSON numbers are) as the `f32` a vector stores, or why it
/// cannot be one: the message quotes the value as sent and says what is wrong (not finite, or
/// beyond `f32`'s range of ±3.4028235e38). Values closer to zero than `f32` can hold round to
/// the nearest `f32` (possibly 0), as any conversion to `f32` does.
///
/// # Errors
///
/// A message such as `"1e39 is beyond the range of a 32-bit float (±3.4028235e38)"`.
///
/// ```
/// use hybrid_search_document::vector_component;
///
/// assert_eq!(vector_component(0.25), Ok(0.25f32));
/// assert!(vector_component(1e39).unwrap_err().contains("beyond the range"));
/// ```
pub fn vector_component(value: f64) -> Result<f32, String> {
    if !value.is_finite() {
        return Err(format!("{} is not a finite number", show_number(value)));
    }
    if value.abs() > f64::from(f32::MAX) {
        return Err(format!(
            "{} is beyond the range of a 32-bit float (±{:e})",
            show_number(value),
            f32::MAX
        ));
    }
    // In range: the cast rounds to the nearest f32.
    #[allow(clippy::cast_possible_truncation)]
    Ok(value as f32)
}

/// JSON numbers (read as `f64`) as the `f32` vector they give, each checked by
/// [`vector_component`]. The one conversion of every front end: a document's `"vector"`, a
/// search's `vector`, the CLI's `--vector`.
///
/// # Errors
///
/// The first value that cannot be an `f32`, by position: `"value 1: 1e39 is beyond the range
/// of a 32-bit float (±3.4028235e38)"`.
pub fn vector_from_f64(values: &[f64]) -> Result<Vec<f32>, String> {
    values
        .iter()
        .enumerate()
        .map(|(at, &x)| vector_component(x).map_err(|why| format!("value {at}: {why}")))
        .collect()
}

/// A number as a person reads it in a message: plain decimals between 1e-4 and 1e15, the
/// shortest exponent form (`5.388624124391167e307`, `5e-324`) outside, so a value is quoted
/// with every digit it was sent with and never as hundreds of zeros.
pub fn show_number(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude == 0.0 || (1e-4..1e15).contains(&magnitude) || !value.is_finite() {
        format!("{value}")
    } else {
        format!("{value:e}")
    }
}
