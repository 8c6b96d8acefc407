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

/// The longest document id, in characters (Unicode scalar values, as JSON Schema's
/// `maxLength` counts them, so the OpenAPI description states the rule exactly; at most 2 KiB
/// of UTF-8): an id is a key that URLs, Qdrant payloads and BM25's id term carry whole.
/// Elasticsearch limits `_id` to 512 bytes.
pub const MAX_ID_CHARS: usize = 512;

/// Checks a document id against the one id rule of every front end (library, CLI, HTTP,
/// Python): not empty and not only white space (Unicode `White_Space`), at most
/// [`MAX_ID_CHARS`] characters, and no control characters (U+0000-U+001F, U+007F-U+009F: a
/// newline or a tab in an id cannot be written in a path, a log line or a terminal as it is).
///
/// # Errors
///
/// What is wrong, for a message that names the document: `"an id may not be empty"`, `"the id
/// is 70000 characters; ids are at most 512"`, `"the id holds a control character (U+000A at
/// byte 3)"`.
///
/// ```
/// use hybrid_search_document::check_id;
///
/// assert!(check_id("PMID:12345").is_ok());
/// assert!(check_id("  ").unwrap_err().contains("white space"));
/// assert!(check_id("a\nb").unwrap_err().contains("U+000A"));
/// assert!(check_id(&"x".repeat(513)).unwrap_err().contains("at most 512 characters"));
/// assert!(check_id(&"한".repeat(512)).is_ok());
/// ```
pub fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("an id may not be empty".into());
    }
    let chars = id.chars().count();
    if chars > MAX_ID_CHARS {
        return Err(format!(
            "the id is {chars} characters; ids are at most {MAX_ID_CHARS} characters"
        ));
    }
    if let Some((at, c)) = id.char_indices().find(|(_, c)| c.is_control()) {
        return Err(format!(
            "the id holds a control character (U+{:04X} at byte {at}); ids may not hold \
             control characters such as newlines or tabs",
            u32::from(c)
        ));
    }
    if id.chars().all(char::is_whitespace) {
        return Err("an id may not be only white space".into());
    }
    Ok(())
}

/// An id as a message shows it: whole when it is short, else its first 64 characters and its
/// length, so a 70,000-character id does not fill the screen.
pub fn show_id(id: &str) -> String {
    if id.chars().count() <= 80 {
        format!("{id:?}")
    } else {
        let head: String = id.chars().take(64).collect();
        format!("{head:?}... ({} characters)", id.chars().count())
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

/// Whether a passage (as [`passage_text`] gives it) has anything a dense encoder can read: a
/// letter or a digit of any script. A document without (an empty or blank text, only emoji,
/// only punctuation) gets no vector: an encoder maps such input to a vector near the centre
/// of its space, which is close to every query and would rank the document above real
/// matches. BM25 still finds it by whatever terms it has.
///
/// ```
/// use hybrid_search_document::has_text_to_encode;
///
/// assert!(has_text_to_encode("IL-6"));
/// assert!(has_text_to_encode("패혈증"));
/// assert!(!has_text_to_encode("  \u{1F600}\u{1F44D} !!"));
/// assert!(!has_text_to_encode(""));
/// ```
pub fn has_text_to_encode(passage: &str) -> bool {
    passage.chars().any(char::is_alphanumeric)
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
