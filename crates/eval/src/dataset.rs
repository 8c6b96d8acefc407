//! Dataset types, format detection and the JSONL record readers.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::lines::for_each_line;
use crate::{beir, squad};

pub use hybrid_search_document::Document;

/// One query (question) of a test collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    /// The query id, unique within its collection.
    pub id: String,
    /// The query text.
    pub text: String,
}

/// Relevance judgments: query id -> (doc id -> relevance grade).
///
/// Grades are integers; a grade of 0 (or below) means judged non-relevant, and only grades
/// above 0 count as relevant in the metrics.
pub type Qrels = HashMap<String, HashMap<String, i32>>;

/// A test collection: corpus, queries and relevance judgments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    /// The documents, in file order.
    pub corpus: Vec<Document>,
    /// The queries to evaluate, in file order.
    pub queries: Vec<Query>,
    /// The judgments of those queries.
    pub qrels: Qrels,
}

/// The on-disk layouts this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatasetFormat {
    /// A BEIR folder: `corpus.jsonl`, `queries.jsonl` and `qrels/<split>.tsv`.
    Beir,
    /// A SQuAD 1.1-format JSON file (such as KorQuAD), read in place as a retrieval set.
    Squad,
    /// A JSONL corpus file of `{"_id" or "id", "title", "text"}` records, with no queries.
    Jsonl,
}

/// What a corpus JSONL line must hold (used in error messages).
pub(crate) const CORPUS_EXPECTED: &str =
    r#"one object per line with "_id" or "id", "title", "text" and optionally "vector": [numbers]"#;
/// What a queries JSONL line must hold (used in error messages).
pub(crate) const QUERIES_EXPECTED: &str = r#"one object per line with "_id" or "id", "text""#;

/// Detects the layout of the dataset at `path`.
///
/// A folder containing `corpus.jsonl` is [`DatasetFormat::Beir`]; a file ending `.json` is
/// [`DatasetFormat::Squad`]; a file ending `.jsonl` is [`DatasetFormat::Jsonl`]; either name
/// may end in `.gz` as well (a gzip file is read as the text it holds, whatever its name). Anything
/// else (including a path that does not exist) is an [`Error::UnknownFormat`] naming the path
/// and listing the three accepted layouts.
///
/// # Errors
///
/// [`Error::UnknownFormat`] naming the path and the accepted layouts.
pub fn detect_format(path: &Path) -> Result<DatasetFormat> {
    let unknown = |reason| Error::UnknownFormat {
        path: path.to_path_buf(),
        reason,
    };
    if path.is_dir() {
        if path.join("corpus.jsonl").is_file() {
            return Ok(DatasetFormat::Beir);
        }
        return Err(unknown("a folder without corpus.jsonl"));
    }
    if !path.exists() {
        return Err(unknown("does not exist"));
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    if name.ends_with(".json") {
        Ok(DatasetFormat::Squad)
    } else if name.ends_with(".jsonl") {
        Ok(DatasetFormat::Jsonl)
    } else {
        Err(unknown(
            "a file whose name ends neither .json nor .jsonl (nor .json.gz, .jsonl.gz)",
        ))
    }
}

/// Reads only the documents of the dataset at `path` (the fast path used for indexing).
///
/// The layout is found with [`detect_format`]. For SQuAD files the corpus is the set of
/// unique paragraph contexts that have questions (see [`load_dataset`]).
///
/// # Errors
///
/// Every reading error names the file and the line: [`Error::Io`], [`Error::JsonLine`],
/// [`Error::Record`], [`Error::DuplicateId`], [`Error::Squad`], [`Error::UnknownFormat`].
pub fn read_corpus(path: &Path) -> Result<Vec<Document>> {
    match detect_format(path)? {
        DatasetFormat::Beir => read_jsonl_corpus(&path.join("corpus.jsonl")),
        DatasetFormat::Jsonl => read_jsonl_corpus(path),
        DatasetFormat::Squad => Ok(squad::read_squad(path)?.corpus),
    }
}

/// Reads the corpus, queries and qrels of the dataset at `path` for `split`.
///
/// - BEIR: judgments from `qrels/<split>.tsv`; the queries are those of `queries.jsonl` that
///   have judgments in that split, in `queries.jsonl` order. A missing split file is an error
///   listing the splits that exist, and a judged query absent from `queries.jsonl` is an error.
/// - SQuAD/KorQuAD: `split` is ignored. The corpus is the unique paragraph contexts (exact
///   text; the first occurrence wins and gives the title and the id
///   `"{article_index}-{paragraph_index}"`, both 0-based), minus contexts with no questions;
///   the queries are all questions in file order; each question's qrels is its (deduplicated)
///   paragraph with grade 1.
/// - JSONL: an error, as a plain corpus has no queries.
///
/// # Errors
///
/// Every reading error names the file and the line: [`Error::Io`], [`Error::JsonLine`],
/// [`Error::Record`], [`Error::DuplicateId`], [`Error::Qrels`], [`Error::MissingSplit`],
/// [`Error::Squad`], [`Error::UnknownFormat`], and [`Error::NoQueries`] for a plain JSONL corpus.
pub fn load_dataset(path: &Path, split: &str) -> Result<Dataset> {
    match detect_format(path)? {
        DatasetFormat::Beir => beir::load_beir(path, split),
        DatasetFormat::Squad => squad::read_squad(path),
        DatasetFormat::Jsonl => Err(Error::NoQueries {
            path: path.to_path_buf(),
        }),
    }
}

/// Reads a JSONL corpus (`corpus.jsonl` of a BEIR folder or a plain `.jsonl` file).
///
/// Blank lines are skipped; ids must be unique.
pub(crate) fn read_jsonl_corpus(path: &Path) -> Result<Vec<Document>> {
    let mut docs = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for_each_line(path, |line_no, line| {
        if let Some(doc) = parse_document(path, line_no, line, Some(&mut seen))? {
            docs.push(doc);
        }
        Ok(())
    })?;
    Ok(docs)
}

/// One corpus line as a document (`None` for a blank line); `seen` holds the ids so far, when
/// ids must be unique.
fn parse_document(
    path: &Path,
    line_no: usize,
    line: &str,
    seen: Option<&mut HashMap<String, usize>>,
) -> Result<Option<Document>> {
    let Some(obj) = parse_object(path, line_no, line, CORPUS_EXPECTED)? else {
        return Ok(None);
    };
    let rec = RecordCtx {
        path,
        line: line_no,
        expected: CORPUS_EXPECTED,
    };
    let id = rec.id(&obj)?;
    let title = rec.optional_string(&obj, "title")?;
    let text = rec.required_string(&obj, "text")?;
    let vector = rec.optional_vector(&obj, "vector")?;
    let fields = rec.fields(obj)?;
    if let Some(seen) = seen {
        check_unique(seen, path, &id, line_no)?;
    }
    Ok(Some(Document {
        id,
        title,
        text,
        vector,
        fields,
    }))
}

/// The documents of a request body (or any text) named `source` in errors: a JSON array of
/// document objects, or JSONL (one object per line, blank lines skipped). Each document is
/// checked as a corpus line is (`id`, `text`, optional `title` and `vector`), and every error
/// names `source` and the line the offending document starts on (and, in an array, its
/// position: `request body (document 3) line 1: ...`). Documents come back in order, an id
/// given twice as often as it was given: unlike a corpus file, a batch of upserts may repeat an
/// id, and the caller decides (the HTTP API keeps the last, as two requests would).
///
/// # Errors
///
/// [`Error::JsonLine`] for text that is not JSON, [`Error::Record`] for a document with a
/// missing or mistyped field.
pub fn parse_documents(source: &str, body: &str) -> Result<Vec<Document>> {
    let mut docs = Vec::new();
    if !body.trim_start().starts_with('[') {
        for (i, line) in body.lines().enumerate() {
            if let Some(doc) = parse_document(Path::new(source), i + 1, line, None)? {
                docs.push(doc);
            }
        }
        return Ok(docs);
    }
    let items: Vec<&serde_json::value::RawValue> =
        serde_json::from_str(body).map_err(|e| Error::JsonLine {
            path: source.into(),
            expected: "a JSON array of document objects",
            line: e.line(),
            source: e,
        })?;
    let (mut line, mut scanned) = (1, 0);
    for (i, item) in items.iter().enumerate() {
        // The raw value is a slice of `body`: where it starts gives its line, counted on from
        // the previous document's start.
        let offset = item.get().as_ptr() as usize - body.as_ptr() as usize;
        line += body.as_bytes()[scanned..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        scanned = offset;
        let label = format!("{source} (document {})", i + 1);
        if let Some(doc) = parse_document(Path::new(&label), line, item.get(), None)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// The documents of a dataset, read one at a time ([`stream_corpus`]).
pub struct DocumentStream {
    inner: StreamInner,
    line: usize,
}

enum StreamInner {
    Jsonl {
        path: std::path::PathBuf,
        lines: crate::lines::Lines,
        seen: HashMap<String, usize>,
    },
    Loaded(std::vec::IntoIter<Document>),
}

impl DocumentStream {
    /// The line of the document yielded last (0 before the first, and for SQuAD files, which
    /// are read whole).
    pub fn line(&self) -> usize {
        self.line
    }
}

impl Iterator for DocumentStream {
    type Item = Result<Document>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            StreamInner::Loaded(docs) => docs.next().map(Ok),
            StreamInner::Jsonl { path, lines, seen } => loop {
                let (line_no, line) = match lines.next_line() {
                    Ok(Some(next)) => next,
                    Ok(None) => return None,
                    Err(e) => return Some(Err(e)),
                };
                self.line = line_no;
                match parse_document(path, line_no, line, Some(seen)) {
                    Ok(Some(doc)) => return Some(Ok(doc)),
                    Ok(None) => continue,
                    Err(e) => return Some(Err(e)),
                }
            },
        }
    }
}

/// The documents of the dataset at `path` as a stream: BEIR `corpus.jsonl` and JSONL files are
/// read a line at a time (memory holds one line and the ids seen so far, for the uniqueness
/// check), so a corpus of any size can be indexed; a SQuAD file is one JSON document and is
/// read whole. Every error names the file and line, as [`read_corpus`] does.
///
/// # Errors
///
/// [`Error::UnknownFormat`] or [`Error::Io`] at once; record errors (naming file and line) come
/// from the stream as it is read.
pub fn stream_corpus(path: &Path) -> Result<DocumentStream> {
    let inner = match detect_format(path)? {
        DatasetFormat::Beir => {
            let file = path.join("corpus.jsonl");
            StreamInner::Jsonl {
                lines: crate::lines::Lines::open(&file)?,
                path: file,
                seen: HashMap::new(),
            }
        }
        DatasetFormat::Jsonl => StreamInner::Jsonl {
            lines: crate::lines::Lines::open(path)?,
            path: path.to_path_buf(),
            seen: HashMap::new(),
        },
        DatasetFormat::Squad => StreamInner::Loaded(squad::read_squad(path)?.corpus.into_iter()),
    };
    Ok(DocumentStream { inner, line: 0 })
}

/// Reads a BEIR `queries.jsonl` (blank lines skipped, ids unique), in file order.
pub(crate) fn read_jsonl_queries(path: &Path) -> Result<Vec<Query>> {
    let mut queries = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for_each_line(path, |line_no, line| {
        let Some(obj) = parse_object(path, line_no, line, QUERIES_EXPECTED)? else {
            return Ok(());
        };
        let rec = RecordCtx {
            path,
            line: line_no,
            expected: QUERIES_EXPECTED,
        };
        let id = rec.id(&obj)?;
        let text = rec.required_string(&obj, "text")?;
        check_unique(&mut seen, path, &id, line_no)?;
        queries.push(Query { id, text });
        Ok(())
    })?;
    Ok(queries)
}

fn check_unique(
    seen: &mut HashMap<String, usize>,
    path: &Path,
    id: &str,
    line: usize,
) -> Result<()> {
    if let Some(&first_line) = seen.get(id) {
        return Err(Error::DuplicateId {
            path: path.to_path_buf(),
            id: id.to_string(),
            first_line,
            line,
        });
    }
    seen.insert(id.to_string(), line);
    Ok(())
}

/// Parses one JSONL line into an object; `None` for a blank line.
fn parse_object(
    path: &Path,
    line: usize,
    text: &str,
    expected: &'static str,
) -> Result<Option<Map<String, Value>>> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let value: Value = serde_json::from_str(text).map_err(|source| Error::JsonLine {
        path: path.to_path_buf(),
        line,
        expected,
        source,
    })?;
    match value {
        Value::Object(obj) => Ok(Some(obj)),
        other => Err(Error::Record {
            path: path.to_path_buf(),
            line,
            problem: format!("a JSON {} instead of an object", json_kind(&other)),
            expected,
        }),
    }
}

/// The location and expectation of one record, for field extraction with good errors.
struct RecordCtx<'a> {
    path: &'a Path,
    line: usize,
    expected: &'static str,
}

impl RecordCtx<'_> {
    fn error(&self, problem: String) -> Error {
        Error::Record {
            path: self.path.to_path_buf(),
            line: self.line,
            problem,
            expected: self.expected,
        }
    }

    /// The id from `"_id"` (preferred) or `"id"`: a string, or a number as its decimal string.
    fn id(&self, obj: &Map<String, Value>) -> Result<String> {
        let (key, value) = match (obj.get("_id"), obj.get("id")) {
            (Some(v), _) => ("_id", v),
            (None, Some(v)) => ("id", v),
            (None, None) => {
                return Err(self.error("missing id (no \"_id\" or \"id\" field)".into()));
            }
        };
        let id = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => {
                return Err(self.error(format!(
                    "field \"{key}\" is a JSON {}, not a string or number",
                    json_kind(other)
                )));
            }
        };
        hybrid_search_document::check_id(&id).map_err(|why| {
            self.error(format!(
                "field \"{key}\" ({}): {why}",
                hybrid_search_document::show_id(&id)
            ))
        })?;
        Ok(id)
    }

    fn required_string(&self, obj: &Map<String, Value>, key: &str) -> Result<String> {
        match obj.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(self.error(format!(
                "field \"{key}\" is a JSON {}, not a string",
                json_kind(other)
            ))),
            None => Err(self.error(format!("missing field \"{key}\""))),
        }
    }

    /// An optional array of numbers (absent or `null` gives `None`); every value must be a
    /// number within `f32`'s range ([`hybrid_search_document::vector_from_f64`]).
    fn optional_vector(&self, obj: &Map<String, Value>, key: &str) -> Result<Option<Vec<f32>>> {
        let values = match obj.get(key) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Array(values)) => values,
            Some(other) => {
                return Err(self.error(format!(
                    "field \"{key}\" is a JSON {}, not an array of numbers",
                    json_kind(other)
                )));
            }
        };
        let mut numbers = Vec::with_capacity(values.len());
        for (i, value) in values.iter().enumerate() {
            let Some(x) = value.as_f64() else {
                return Err(self.error(format!(
                    "field \"{key}\" value {i} is a JSON {}, not a number",
                    json_kind(value)
                )));
            };
            numbers.push(x);
        }
        let vector = hybrid_search_document::vector_from_f64(&numbers)
            .map_err(|e| self.error(format!("field \"{key}\" {e}")))?;
        if vector.is_empty() {
            return Err(self.error(format!("field \"{key}\" is an empty array")));
        }
        Ok(Some(vector))
    }

    /// The document's fields: every key but the id (`_id`, `id`), `title`, `text` and
    /// `vector`, with nested objects flattened into dotted names (`{"metadata": {"year": 2020}}`
    /// gives `metadata.year`). `null` values are left out; an array must hold scalars.
    fn fields(&self, obj: Map<String, Value>) -> Result<hybrid_search_document::Fields> {
        let mut fields = hybrid_search_document::Fields::new();
        for (key, value) in obj {
            match (key.as_str(), value) {
                ("_id" | "id" | "title" | "text" | "vector", _) => {}
                // A document as the engine returns it (`GET .../documents/{id}`, a hit) holds
                // its fields in one `fields` object: they are its fields, not `fields.<name>`.
                ("fields", Value::Object(inner)) => {
                    for (key, value) in inner {
                        self.flatten_into(&mut fields, key, value)?;
                    }
                }
                (_, value) => self.flatten_into(&mut fields, key, value)?,
            }
        }
        Ok(fields)
    }

    fn flatten_into(
        &self,
        fields: &mut hybrid_search_document::Fields,
        name: String,
        value: Value,
    ) -> Result<()> {
        match value {
            Value::Null => {}
            Value::Object(inner) => {
                for (key, value) in inner {
                    self.flatten_into(fields, format!("{name}.{key}"), value)?;
                }
            }
            Value::Array(items) => {
                // As Elasticsearch flattens arrays of objects: `{"authors": [{"name": "a"},
                // {"name": "b"}]}` gives `authors.name: ["a", "b"]`; nested arrays are joined.
                let mut flat = hybrid_search_document::Fields::new();
                for item in items {
                    append_item(&mut flat, &name, item);
                }
                for (key, values) in flat {
                    self.insert_once(fields, key, values)?;
                }
            }
            scalar => self.insert_once(fields, name, scalar)?,
        }
        Ok(())
    }

    /// Adds field `name`, refusing a name given twice (`"a.b"` beside `"a": {"b": ...}`).
    fn insert_once(
        &self,
        fields: &mut hybrid_search_document::Fields,
        name: String,
        value: Value,
    ) -> Result<()> {
        if fields.contains_key(&name) {
            return Err(self.error(format!(
                "field \"{name}\" is given twice (as a dotted name and inside an object); give \
                 it once"
            )));
        }
        fields.insert(name, value);
        Ok(())
    }

    /// An optional string field: absent or `null` gives "".
    fn optional_string(&self, obj: &Map<String, Value>, key: &str) -> Result<String> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(self.error(format!(
                "field \"{key}\" is a JSON {}, not a string",
                json_kind(other)
            ))),
        }
    }
}

/// Adds an array element under `name` to `flat` (each name's values as an array): scalars as
/// they are, an object's keys as `name.key`, a nested array's elements in turn; nulls left out.
fn append_item(flat: &mut hybrid_search_document::Fields, name: &str, item: Value) {
    match item {
        Value::Null => {}
        Value::Array(items) => {
            for item in items {
                append_item(flat, name, item);
            }
        }
        Value::Object(inner) => {
            for (key, value) in inner {
                append_item(flat, &format!("{name}.{key}"), value);
            }
        }
        scalar => match flat
            .entry(name.to_string())
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            Value::Array(values) => values.push(scalar),
            _ => unreachable!("only arrays are inserted"),
        },
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
