//! Document fields in the BM25 index and the filters over them.
//!
//! A field's type is fixed by its first value ([`FieldSchema`]); values are stored as given
//! (the document's fields are returned as they were sent) and indexed in one tantivy JSON
//! field, `fields`, under a path per field (`f0`, `f1`, ... in the order the fields were first
//! seen, so a field's name never has to be escaped): strings as raw terms (exact match),
//! integers and floats as numbers, booleans as booleans, dates as microseconds since the Unix
//! epoch (UTC), all of them fast (columnar) so ranges and `exists` read the columns.
//!
//! A [`Filter`] is the JSON form every front end takes (`{"field": "year", "gte": 2020}`,
//! `{"and": [...]}`, ...), compiled against the schema into a tantivy query that BM25 intersects
//! with its own and that yields the matching documents' keys for the dense leg.

use std::collections::HashMap;
use std::fmt;
use std::ops::Bound;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tantivy::Term;
use tantivy::query::{
    AllQuery, BooleanQuery, ConstScoreQuery, EmptyQuery, ExistsQuery, Occur, Query, RangeQuery,
    TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption, OwnedValue};
use tantivy::time::{Date, Month, OffsetDateTime, Time, UtcOffset};

pub use hybrid_search_document::Fields;

/// The most bytes one document's fields may take as JSON (64 KiB): fields are for filtering
/// and citing (a source, a date, tags), not for a second body text.
pub const MAX_FIELDS_BYTES: usize = 64 << 10;

/// The type of a field's values (`string`, `integer`, `float`, `bool`, `date` in JSON).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// Any JSON string that is not a date; matched exactly (`eq`, `in`).
    String,
    /// A JSON number without fraction or exponent, within `i64`.
    Integer,
    /// Any JSON number (an integer given to a float field is kept as a float).
    Float,
    /// `true` or `false`.
    Bool,
    /// An RFC 3339 date (`2024-03-01`, midnight UTC) or date-time
    /// (`2024-03-01T12:00:00+09:00`), compared as an instant with microsecond precision.
    Date,
}

impl FieldType {
    /// The lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Integer => "integer",
            FieldType::Float => "float",
            FieldType::Bool => "bool",
            FieldType::Date => "date",
        }
    }

    /// What a value of this type is, in a message ("integers", "dates (RFC 3339)").
    fn plural(self) -> &'static str {
        match self {
            FieldType::String => "strings",
            FieldType::Integer => "integers",
            FieldType::Float => "numbers",
            FieldType::Bool => "booleans",
            FieldType::Date => "dates (RFC 3339, such as 2024-03-01 or 2024-03-01T12:00:00Z)",
        }
    }

    /// The type a first value gives a field; `None` for a value no field can hold.
    fn of(value: &Value) -> Option<FieldType> {
        Some(match value {
            Value::String(s) if parse_date(s).is_some() => FieldType::Date,
            Value::String(_) => FieldType::String,
            Value::Number(n) if n.is_i64() => FieldType::Integer,
            Value::Number(_) => FieldType::Float,
            Value::Bool(_) => FieldType::Bool,
            Value::Null | Value::Array(_) | Value::Object(_) => return None,
        })
    }

    /// `value` as this type's indexed value, or why it cannot be one.
    fn convert(self, value: &Value) -> Result<OwnedValue, String> {
        let wrong = || {
            format!(
                "{} is {}; the field holds {}",
                quote(value),
                json_kind(value),
                self.plural()
            )
        };
        Ok(match (self, value) {
            (FieldType::String, Value::String(s)) => OwnedValue::Str(s.clone()),
            (FieldType::Integer, Value::Number(n)) => {
                OwnedValue::I64(n.as_i64().or_else(|| whole(n)).ok_or_else(|| {
                    format!(
                        "{n} is not an integer within ±9223372036854775807; the field holds \
                         integers (its first value was one)"
                    )
                })?)
            }
            (FieldType::Float, Value::Number(n)) => {
                OwnedValue::F64(n.as_f64().filter(|x| x.is_finite()).ok_or_else(wrong)?)
            }
            (FieldType::Bool, Value::Bool(b)) => OwnedValue::Bool(*b),
            (FieldType::Date, Value::String(s)) => {
                OwnedValue::I64(parse_date(s).ok_or_else(|| {
                    format!(
                        "{} is not an RFC 3339 date or date-time; the field holds {}",
                        quote(value),
                        self.plural()
                    )
                })?)
            }
            _ => return Err(wrong()),
        })
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FieldType {
    /// `value` (one value, not an array) in the one JSON form every backend can compare: a
    /// string as given, an integer as a JSON integer (`2020.0` -> `2020`), a float as a JSON
    /// number, a bool, a date as an RFC 3339 date-time in UTC with microseconds
    /// ([`format_date`]). What `qdrant sync` sends as payload.
    ///
    /// # Errors
    ///
    /// A message when `value` is not of this type (as a write would refuse it).
    pub fn canonical(self, value: &Value) -> Result<Value, String> {
        Ok(match (self, self.convert(value)?) {
            (FieldType::Date, OwnedValue::I64(micros)) => Value::String(format_date(micros)),
            (_, OwnedValue::Str(s)) => Value::String(s),
            (_, OwnedValue::I64(x)) => Value::from(x),
            (_, OwnedValue::F64(x)) => Value::from(x),
            (_, OwnedValue::Bool(b)) => Value::Bool(b),
            _ => unreachable!("convert gives strings, numbers and booleans"),
        })
    }
}

/// Microseconds since the Unix epoch as an RFC 3339 date-time in UTC with six fractional
/// digits (`2024-03-01T00:00:00.000000Z`); [`parse_date`] reads it back to the same instant.
pub fn format_date(micros: i64) -> String {
    let seconds = micros.div_euclid(1_000_000);
    let fraction = micros.rem_euclid(1_000_000);
    match OffsetDateTime::from_unix_timestamp(seconds) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{fraction:06}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        // Beyond the years the `time` crate holds (±9999): no RFC 3339 date can be that far.
        Err(_) => format!("{micros}"),
    }
}

/// A JSON number with no fraction within `i64` (`2020.0`), as an integer.
fn whole(n: &serde_json::Number) -> Option<i64> {
    let x = n.as_f64()?;
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    (x.fract() == 0.0 && x >= i64::MIN as f64 && x < i64::MAX as f64).then_some(x as i64)
}

/// An RFC 3339 date (midnight UTC) or date-time as microseconds since the Unix epoch.
pub fn parse_date(text: &str) -> Option<i64> {
    use tantivy::time::format_description::well_known::Rfc3339;
    let instant = match OffsetDateTime::parse(text, &Rfc3339) {
        Ok(t) => t,
        Err(_) => {
            // A full-date: exactly YYYY-MM-DD.
            let b = text.as_bytes();
            if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
                return None;
            }
            let digits = |r: std::ops::Range<usize>| -> Option<u32> {
                let part = &text[r];
                part.bytes()
                    .all(|c| c.is_ascii_digit())
                    .then(|| part.parse().ok())?
            };
            let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
            let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
            let date =
                Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?)
                    .ok()?;
            date.with_time(Time::MIDNIGHT).assume_offset(UtcOffset::UTC)
        }
    };
    i64::try_from(instant.unix_timestamp_nanos() / 1000).ok()
}

/// A field of a collection: its name and the type its first value gave it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldSpec {
    /// The name (a dotted path for nested objects: `metadata.year`).
    pub name: String,
    /// The type of its values.
    #[serde(rename = "type")]
    pub kind: FieldType,
}

/// The fields of a collection in the order they were first seen (a field's position names
/// its path in the index). Serialised as a list of [`FieldSpec`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(from = "Vec<FieldSpec>", into = "Vec<FieldSpec>")]
pub struct FieldSchema {
    specs: Vec<FieldSpec>,
    by_name: HashMap<String, usize>,
}

impl PartialEq for FieldSchema {
    fn eq(&self, other: &Self) -> bool {
        self.specs == other.specs
    }
}

impl From<Vec<FieldSpec>> for FieldSchema {
    fn from(specs: Vec<FieldSpec>) -> Self {
        let by_name = specs
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        Self { specs, by_name }
    }
}

impl From<FieldSchema> for Vec<FieldSpec> {
    fn from(schema: FieldSchema) -> Self {
        schema.specs
    }
}

/// A document's fields typed against a [`FieldSchema`], ready for the index: the value
/// indexed (one JSON object, a path per field) and the fields as given, stored.
#[derive(Debug, Clone)]
pub struct TypedFields {
    pub(crate) indexed: OwnedValue,
    pub(crate) stored: String,
}

/// Why a document's fields cannot be indexed: the field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's name (empty when the fields as a whole are refused).
    pub field: String,
    /// What is wrong and what would do.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "field {:?}: {}", self.field, self.message)
        }
    }
}

impl FieldSchema {
    /// The fields, in the order they were first seen.
    pub fn specs(&self) -> &[FieldSpec] {
        &self.specs
    }

    /// Whether no field is known.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// Forgets the fields after the first `len` (those a document that was not stored after
    /// all brought).
    pub fn truncate(&mut self, len: usize) {
        for spec in self.specs.drain(len.min(self.specs.len())..) {
            self.by_name.remove(&spec.name);
        }
    }

    /// The type of field `name`, if known.
    pub fn kind(&self, name: &str) -> Option<FieldType> {
        self.by_name.get(name).map(|&i| self.specs[i].kind)
    }

    /// The path of field `name` in the index's `fields` JSON field.
    fn path(&self, name: &str) -> Option<(String, FieldType)> {
        self.by_name
            .get(name)
            .map(|&i| (format!("f{i}"), self.specs[i].kind))
    }

    /// Types `fields` against this schema, adding the fields seen for the first time (typed
    /// by their first value) when every field of the document fits; a document that does not
    /// fit leaves the schema as it was. `None` for a document without fields.
    ///
    /// # Errors
    ///
    /// [`FieldError`] for a value of another type than its field's, a value no field can hold
    /// (an empty string name, an object in an array, `null` alone), a name used for the
    /// document itself (`id`), or fields over [`MAX_FIELDS_BYTES`] as JSON.
    pub fn typed(&mut self, fields: &Fields) -> Result<Option<TypedFields>, FieldError> {
        if fields.is_empty() {
            return Ok(None);
        }
        let stored = serde_json::to_string(fields).expect("JSON values serialise");
        if stored.len() > MAX_FIELDS_BYTES {
            return Err(FieldError {
                field: String::new(),
                message: format!(
                    "the document's fields take {} bytes as JSON, more than the {} allowed; \
                     keep long text in \"text\" and fields for filtering and citing",
                    stored.len(),
                    MAX_FIELDS_BYTES
                ),
            });
        }
        let mut added: Vec<FieldSpec> = Vec::new();
        let mut object = Vec::with_capacity(fields.len());
        for (name, value) in fields {
            let error = |message: String| FieldError {
                field: name.clone(),
                message,
            };
            if name.is_empty() || matches!(name.as_str(), "id" | "_id") {
                return Err(error(
                    "is not a field name (the id, title, text and vector are the document's \
                     own)"
                        .into(),
                ));
            }
            let values: Vec<&Value> = match value {
                Value::Array(items) => items.iter().filter(|v| !v.is_null()).collect(),
                Value::Null => continue,
                one => vec![one],
            };
            let Some(first) = values.first() else {
                continue;
            };
            let (index, kind) = match self.by_name.get(name) {
                Some(&i) => (i, self.specs[i].kind),
                None => match added.iter().position(|s| &s.name == name) {
                    Some(i) => (self.specs.len() + i, added[i].kind),
                    None => {
                        let kind = FieldType::of(first).ok_or_else(|| {
                            error(format!(
                                "{} is {}; a field holds strings, numbers, booleans, dates or \
                                 an array of one of these",
                                quote(first),
                                json_kind(first)
                            ))
                        })?;
                        added.push(FieldSpec {
                            name: name.clone(),
                            kind,
                        });
                        (self.specs.len() + added.len() - 1, kind)
                    }
                },
            };
            let converted: Vec<OwnedValue> = values
                .iter()
                .map(|v| kind.convert(v))
                .collect::<Result<_, _>>()
                .map_err(error)?;
            let indexed = match value {
                Value::Array(_) => OwnedValue::Array(converted),
                _ => converted.into_iter().next().expect("one value"),
            };
            object.push((format!("f{index}"), indexed));
        }
        for spec in added {
            self.by_name.insert(spec.name.clone(), self.specs.len());
            self.specs.push(spec);
        }
        Ok(Some(TypedFields {
            indexed: OwnedValue::Object(object),
            stored,
        }))
    }
}

/// A JSON value quoted for a message, cut at 60 characters.
fn quote(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(60) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text,
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(s) if parse_date(s).is_some() => "a date",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A filter over a collection's documents, in the one JSON form every front end takes:
///
/// - `{"field": "source", "eq": "pubmed"}`: the field equals the value (for an array field,
///   one element does);
/// - `{"field": "tags", "in": ["a", "b"]}`: equals one of the values;
/// - `{"field": "year", "gte": 2020, "lt": 2024}`: a range, with any of `gt`, `gte`, `lt`,
///   `lte` (numbers and dates);
/// - `{"field": "lang", "exists": true}`: has a value (`false`: has none);
/// - `{"and": [...]}`, `{"or": [...]}`, `{"not": {...}}`.
///
/// `"field": "id"` is the document id (`eq`, `in`, `exists`).
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Every filter holds.
    And(Vec<Filter>),
    /// At least one filter holds.
    Or(Vec<Filter>),
    /// The filter does not hold.
    Not(Box<Filter>),
    /// A condition on one field.
    Field {
        /// The field's name (`id`: the document id).
        field: String,
        /// What its value must be.
        condition: Condition,
    },
}

/// What a field's value must be.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Equal to the value.
    Eq(Value),
    /// Equal to one of the values.
    In(Vec<Value>),
    /// Within the bounds (numbers and dates).
    Range {
        /// `gt` (excluded) or `gte` (included).
        lower: Bound<Value>,
        /// `lt` (excluded) or `lte` (included).
        upper: Bound<Value>,
    },
    /// Has a value (`true`) or none (`false`).
    Exists(bool),
}

impl Filter {
    /// `{"field": field, "eq": value}`.
    pub fn eq(field: impl Into<String>, value: impl Into<Value>) -> Self {
        Filter::Field {
            field: field.into(),
            condition: Condition::Eq(value.into()),
        }
    }

    /// Parses the JSON form.
    ///
    /// # Errors
    ///
    /// A message naming where in the filter the problem is (`and[1]: ...`) and what forms
    /// are accepted.
    pub fn from_json(value: &Value) -> Result<Self, String> {
        parse_filter(value, "")
    }

    /// The JSON form.
    pub fn to_json(&self) -> Value {
        let list = |fs: &[Filter]| Value::Array(fs.iter().map(Filter::to_json).collect());
        match self {
            Filter::And(fs) => serde_json::json!({ "and": list(fs) }),
            Filter::Or(fs) => serde_json::json!({ "or": list(fs) }),
            Filter::Not(f) => serde_json::json!({ "not": f.to_json() }),
            Filter::Field { field, condition } => {
                let mut obj = serde_json::Map::new();
                obj.insert("field".into(), Value::String(field.clone()));
                match condition {
                    Condition::Eq(v) => {
                        obj.insert("eq".into(), v.clone());
                    }
                    Condition::In(vs) => {
                        obj.insert("in".into(), Value::Array(vs.clone()));
                    }
                    Condition::Exists(b) => {
                        obj.insert("exists".into(), Value::Bool(*b));
                    }
                    Condition::Range { lower, upper } => {
                        match lower {
                            Bound::Included(v) => obj.insert("gte".into(), v.clone()),
                            Bound::Excluded(v) => obj.insert("gt".into(), v.clone()),
                            Bound::Unbounded => None,
                        };
                        match upper {
                            Bound::Included(v) => obj.insert("lte".into(), v.clone()),
                            Bound::Excluded(v) => obj.insert("lt".into(), v.clone()),
                            Bound::Unbounded => None,
                        };
                    }
                }
                Value::Object(obj)
            }
        }
    }

    /// Whether a document with external id `id` and `fields` passes the filter: the same
    /// answer as the compiled query, without an index (tests compare the two; a caller may
    /// check documents it holds).
    pub fn matches(&self, id: &str, fields: &Fields) -> bool {
        match self {
            Filter::And(fs) => fs.iter().all(|f| f.matches(id, fields)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(id, fields)),
            Filter::Not(f) => !f.matches(id, fields),
            Filter::Field { field, condition } => {
                let values: Vec<&Value> = if field == "id" {
                    vec![]
                } else {
                    match fields.get(field) {
                        Some(Value::Array(items)) => {
                            items.iter().filter(|v| !v.is_null()).collect()
                        }
                        Some(Value::Null) | None => vec![],
                        Some(v) => vec![v],
                    }
                };
                let id_value = Value::String(id.to_string());
                let values = if field == "id" {
                    vec![&id_value]
                } else {
                    values
                };
                // An id is a string; a number names the id of its decimal digits.
                let same = |a: &Value, b: &Value| {
                    if field == "id" {
                        return match b {
                            Value::Number(n) => *a == Value::String(n.to_string()),
                            b => a == b,
                        };
                    }
                    match (comparable(a), comparable(b)) {
                        (Some(x), Some(y)) => x == y,
                        _ => a == b,
                    }
                };
                match condition {
                    Condition::Exists(want) => values.is_empty() != *want,
                    Condition::Eq(v) => values.iter().any(|x| same(x, v)),
                    Condition::In(vs) => values.iter().any(|x| vs.iter().any(|v| same(x, v))),
                    Condition::Range { lower, upper } => values.iter().any(|x| {
                        let Some(x) = comparable(x) else { return false };
                        let above = match lower {
                            Bound::Included(v) => comparable(v).is_some_and(|v| x >= v),
                            Bound::Excluded(v) => comparable(v).is_some_and(|v| x > v),
                            Bound::Unbounded => true,
                        };
                        let below = match upper {
                            Bound::Included(v) => comparable(v).is_some_and(|v| x <= v),
                            Bound::Excluded(v) => comparable(v).is_some_and(|v| x < v),
                            Bound::Unbounded => true,
                        };
                        above && below
                    }),
                }
            }
        }
    }

    /// The filter as a tantivy query on an index whose `fields` JSON field is `json` (`None`:
    /// an index made before fields existed, where only the id can be filtered) and whose id
    /// field is `id`. Every clause scores 0, so the query can be intersected with BM25's
    /// without changing a score.
    ///
    /// # Errors
    ///
    /// A message naming an unknown field (and listing the known ones), a value of another
    /// type than the field's, or a condition the field's type does not take.
    pub fn query(
        &self,
        schema: &FieldSchema,
        json: Option<Field>,
        id: Field,
    ) -> Result<Box<dyn Query>, String> {
        let inner = self.query_inner(schema, json, id)?;
        Ok(Box::new(ConstScoreQuery::new(inner, 0.0)))
    }

    fn query_inner(
        &self,
        schema: &FieldSchema,
        json: Option<Field>,
        id: Field,
    ) -> Result<Box<dyn Query>, String> {
        let all =
            |fs: &[Filter], occur: Occur| combine(fs, occur, |f| f.query_inner(schema, json, id));
        match self {
            Filter::And(fs) if fs.is_empty() => Ok(Box::new(AllQuery)),
            Filter::Or(fs) if fs.is_empty() => Ok(Box::new(EmptyQuery)),
            Filter::And(fs) => all(fs, Occur::Must),
            Filter::Or(fs) => all(fs, Occur::Should),
            Filter::Not(f) => Ok(negate(f.query_inner(schema, json, id)?)),
            Filter::Field { field, condition } if field == "id" => id_query(id, condition),
            Filter::Field { field, condition } => {
                let Some((path, kind)) = schema.path(field) else {
                    let known: Vec<String> = schema
                        .specs
                        .iter()
                        .map(|s| format!("{} ({})", s.name, s.kind))
                        .collect();
                    return Err(format!(
                        "unknown field {field:?}; {}",
                        if known.is_empty() {
                            "this collection's documents have no fields (and \"id\" is the \
                             document id)"
                                .to_string()
                        } else {
                            format!("its fields are: {}, and id", known.join(", "))
                        }
                    ));
                };
                let json = json.ok_or_else(|| {
                    format!("field {field:?}: this collection was made before documents had fields")
                })?;
                field_query(json, &path, field, kind, condition)
            }
        }
    }
}

/// A value's order for comparisons in [`Filter::matches`]: numbers as `f64`, dates as their
/// instant; `None` for anything else.
fn comparable(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        #[allow(clippy::cast_precision_loss)]
        Value::String(s) => parse_date(s).map(|micros| micros as f64),
        _ => None,
    }
}

/// One clause per item, each `occur` (`Must`: all of them hold; `Should`: one does).
fn combine<T>(
    items: &[T],
    occur: Occur,
    clause: impl Fn(&T) -> Result<Box<dyn Query>, String>,
) -> Result<Box<dyn Query>, String> {
    let clauses = items
        .iter()
        .map(|item| Ok((occur, clause(item)?)))
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Box::new(BooleanQuery::new(clauses)))
}

/// Every document `query` does not match.
fn negate(query: Box<dyn Query>) -> Box<dyn Query> {
    Box::new(BooleanQuery::new(vec![
        (Occur::Must, Box::new(AllQuery) as Box<dyn Query>),
        (Occur::MustNot, query),
    ]))
}

fn id_query(id: Field, condition: &Condition) -> Result<Box<dyn Query>, String> {
    let term = |v: &Value| match v {
        Value::String(s) => Ok(Term::from_field_text(id, s)),
        Value::Number(n) => Ok(Term::from_field_text(id, &n.to_string())),
        other => Err(format!(
            "field \"id\": {} is {}; ids are strings",
            quote(other),
            json_kind(other)
        )),
    };
    let one = |v: &Value| -> Result<Box<dyn Query>, String> {
        Ok(Box::new(TermQuery::new(term(v)?, IndexRecordOption::Basic)))
    };
    match condition {
        Condition::Eq(v) => one(v),
        Condition::In(vs) => combine(vs, Occur::Should, one),
        Condition::Exists(true) => Ok(Box::new(AllQuery)),
        Condition::Exists(false) => Ok(Box::new(EmptyQuery)),
        Condition::Range { .. } => Err(
            "field \"id\" takes eq, in and exists; ids are not ordered (filter a date or number \
             field instead)"
                .into(),
        ),
    }
}

fn field_query(
    json: Field,
    path: &str,
    name: &str,
    kind: FieldType,
    condition: &Condition,
) -> Result<Box<dyn Query>, String> {
    let value = |v: &Value| -> Result<OwnedValue, String> {
        kind.convert(v).map_err(|e| format!("field {name:?}: {e}"))
    };
    let term = |v: &OwnedValue| {
        let mut term = Term::from_field_json_path(json, path, false);
        match v {
            OwnedValue::Str(s) => term.append_type_and_str(s),
            OwnedValue::I64(x) => term.append_type_and_fast_value(*x),
            OwnedValue::F64(x) => term.append_type_and_fast_value(*x),
            OwnedValue::Bool(b) => term.append_type_and_fast_value(*b),
            _ => unreachable!("convert gives strings, numbers and booleans"),
        }
        term
    };
    // Strings, booleans, integers and dates (integers of microseconds) are matched on their
    // terms, one posting list each; floats on their column (tantivy indexes a whole float as
    // an integer term, and reconciles the column's numeric type with the bound's).
    let equal = |v: &Value| -> Result<Box<dyn Query>, String> {
        let v = value(v)?;
        Ok(match v {
            OwnedValue::F64(_) => Box::new(RangeQuery::new(
                Bound::Included(term(&v)),
                Bound::Included(term(&v)),
            )),
            _ => Box::new(TermQuery::new(term(&v), IndexRecordOption::Basic)),
        })
    };
    match condition {
        Condition::Eq(v) => equal(v),
        Condition::In(vs) => combine(vs, Occur::Should, equal),
        Condition::Exists(want) => {
            let exists: Box<dyn Query> =
                Box::new(ExistsQuery::new(format!("fields.{path}"), false));
            Ok(if *want { exists } else { negate(exists) })
        }
        Condition::Range { lower, upper } => {
            if !matches!(
                kind,
                FieldType::Integer | FieldType::Float | FieldType::Date
            ) {
                return Err(format!(
                    "field {name:?} holds {}; gt, gte, lt and lte apply to numbers and dates",
                    kind.plural()
                ));
            }
            // A fractional bound on an integer field (`gte 2019.5`) is a float bound.
            let bound_value = |v: &Value| -> Result<OwnedValue, String> {
                match (kind, v) {
                    (FieldType::Integer, Value::Number(n))
                        if n.as_i64().is_none() && whole(n).is_none() =>
                    {
                        n.as_f64()
                            .filter(|x| x.is_finite())
                            .map(OwnedValue::F64)
                            .ok_or_else(|| format!("field {name:?}: {n} is not a finite number"))
                    }
                    _ => Ok(range_value(kind, value(v)?)),
                }
            };
            let value_of = |b: &Bound<Value>| -> Result<Bound<OwnedValue>, String> {
                Ok(match b {
                    Bound::Included(v) => Bound::Included(bound_value(v)?),
                    Bound::Excluded(v) => Bound::Excluded(bound_value(v)?),
                    Bound::Unbounded => Bound::Unbounded,
                })
            };
            let (lower, upper) = (value_of(lower)?, value_of(upper)?);
            // Both bounds of one type: tantivy reads the column with the type of one bound and
            // panics on the other's (`gte 2009.5, lt 2020` on an integer field).
            let float = [&lower, &upper].iter().any(|b| {
                matches!(
                    b,
                    Bound::Included(OwnedValue::F64(_)) | Bound::Excluded(OwnedValue::F64(_))
                )
            });
            let bound = |b: Bound<OwnedValue>| -> Bound<Term> {
                let typed = |v: OwnedValue| match v {
                    #[allow(clippy::cast_precision_loss)]
                    OwnedValue::I64(x) if float => term(&OwnedValue::F64(x as f64)),
                    v => term(&v),
                };
                match b {
                    Bound::Included(v) => Bound::Included(typed(v)),
                    Bound::Excluded(v) => Bound::Excluded(typed(v)),
                    Bound::Unbounded => Bound::Unbounded,
                }
            };
            Ok(Box::new(RangeQuery::new(bound(lower), bound(upper))))
        }
    }
}

/// A float field's bound stays a float; others as converted.
fn range_value(kind: FieldType, v: OwnedValue) -> OwnedValue {
    match (kind, v) {
        #[allow(clippy::cast_precision_loss)]
        (FieldType::Float, OwnedValue::I64(x)) => OwnedValue::F64(x as f64),
        (_, v) => v,
    }
}

const FORMS: &str = "a filter is {\"field\": NAME, \"eq\": VALUE}, {\"field\": NAME, \"in\": \
                     [VALUES]}, {\"field\": NAME, \"gte\"/\"gt\"/\"lte\"/\"lt\": VALUE, ...}, \
                     {\"field\": NAME, \"exists\": true|false}, {\"and\": [FILTERS]}, {\"or\": \
                     [FILTERS]} or {\"not\": FILTER}";

fn parse_filter(value: &Value, at: &str) -> Result<Filter, String> {
    let here = |problem: String| {
        if at.is_empty() {
            problem
        } else {
            format!("{at}: {problem}")
        }
    };
    let Value::Object(obj) = value else {
        return Err(here(format!(
            "{} is not an object; {FORMS}",
            json_kind(value)
        )));
    };
    let list = |key: &str, v: &Value| -> Result<Vec<Filter>, String> {
        let items = match v {
            Value::Array(items) if !items.is_empty() => items,
            _ => {
                return Err(here(format!(
                    "\"{key}\" takes a non-empty array of filters"
                )));
            }
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| parse_filter(item, &format!("{at}{}{key}[{i}]", dot(at))))
            .collect()
    };
    let only = |key: &str| {
        if obj.len() == 1 {
            Ok(())
        } else {
            Err(here(format!(
                "\"{key}\" stands alone in its object; nest other conditions in \"and\""
            )))
        }
    };
    if let Some(v) = obj.get("and") {
        only("and")?;
        return Ok(Filter::And(list("and", v)?));
    }
    if let Some(v) = obj.get("or") {
        only("or")?;
        return Ok(Filter::Or(list("or", v)?));
    }
    if let Some(v) = obj.get("not") {
        only("not")?;
        return Ok(Filter::Not(Box::new(parse_filter(
            v,
            &format!("{at}{}not", dot(at)),
        )?)));
    }
    let field = match obj.get("field") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(other) => {
            return Err(here(format!(
                "\"field\" is {}; it names a field (a string)",
                json_kind(other)
            )));
        }
        None => {
            let keys: Vec<&String> = obj.keys().collect();
            return Err(here(format!(
                "no \"field\", \"and\", \"or\" or \"not\" (keys: {keys:?}); {FORMS}"
            )));
        }
    };
    let mut condition = None;
    let (mut lower, mut upper) = (Bound::Unbounded, Bound::Unbounded);
    let mut set = |c: Condition, key: &str| {
        if condition.replace(c).is_some() {
            Err(here(format!(
                "field {field:?}: \"{key}\" with another condition; give one of eq, in, exists \
                 or a range, and combine conditions with \"and\""
            )))
        } else {
            Ok(())
        }
    };
    for (key, v) in obj {
        let scalar = |v: &Value| -> Result<Value, String> {
            match v {
                Value::String(_) | Value::Number(_) | Value::Bool(_) => Ok(v.clone()),
                other => Err(here(format!(
                    "field {field:?}: \"{key}\" takes a string, number, boolean or date, not {}",
                    json_kind(other)
                ))),
            }
        };
        match key.as_str() {
            "field" => {}
            "eq" => set(Condition::Eq(scalar(v)?), key)?,
            "in" => {
                let Value::Array(items) = v else {
                    return Err(here(format!(
                        "field {field:?}: \"in\" takes an array of values"
                    )));
                };
                let items = items.iter().map(scalar).collect::<Result<Vec<_>, _>>()?;
                set(Condition::In(items), key)?;
            }
            "exists" => {
                let Value::Bool(b) = v else {
                    return Err(here(format!(
                        "field {field:?}: \"exists\" takes true or false"
                    )));
                };
                set(Condition::Exists(*b), key)?;
            }
            "gt" | "gte" | "lt" | "lte" => {
                let v = scalar(v)?;
                let (slot, other) = if key.starts_with('g') {
                    (&mut lower, if key == "gt" { "gte" } else { "gt" })
                } else {
                    (&mut upper, if key == "lt" { "lte" } else { "lt" })
                };
                if !matches!(slot, Bound::Unbounded) {
                    return Err(here(format!(
                        "field {field:?}: \"{key}\" and \"{other}\" together; give one of them"
                    )));
                }
                *slot = if key.ends_with('e') {
                    Bound::Included(v)
                } else {
                    Bound::Excluded(v)
                };
            }
            other => {
                return Err(here(format!(
                    "field {field:?}: unknown condition {other:?}; conditions are eq, in, gt, \
                     gte, lt, lte and exists"
                )));
            }
        }
    }
    let ranged = !matches!((&lower, &upper), (Bound::Unbounded, Bound::Unbounded));
    let condition = match (condition, ranged) {
        (Some(_), true) => {
            return Err(here(format!(
                "field {field:?}: a range with eq, in or exists; combine them with \"and\""
            )));
        }
        (Some(c), false) => c,
        (None, true) => Condition::Range { lower, upper },
        (None, false) => {
            return Err(here(format!(
                "field {field:?}: no condition; give eq, in, gt, gte, lt, lte or exists"
            )));
        }
    };
    Ok(Filter::Field { field, condition })
}

fn dot(at: &str) -> &'static str {
    if at.is_empty() { "" } else { "." }
}

impl Serialize for Filter {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Filter {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Filter::from_json(&value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn types_are_fixed_by_the_first_value() {
        let mut schema = FieldSchema::default();
        let fields = |v: Value| -> Fields { serde_json::from_value(v).unwrap() };
        schema
            .typed(&fields(
                json!({"year": 2020, "source": "pubmed", "at": "2024-03-01", "tags": ["a", "b"]}),
            ))
            .unwrap();
        assert_eq!(schema.kind("year"), Some(FieldType::Integer));
        assert_eq!(schema.kind("at"), Some(FieldType::Date));
        assert_eq!(schema.kind("tags"), Some(FieldType::String));
        let err = schema
            .typed(&fields(json!({"year": "2020", "new": 1})))
            .unwrap_err();
        assert_eq!(err.field, "year");
        assert!(err.message.contains("holds integers"), "{err}");
        // Nothing of a refused document is added.
        assert_eq!(schema.kind("new"), None);
        let err = schema
            .typed(&fields(json!({"at": "yesterday"})))
            .unwrap_err();
        assert!(err.message.contains("RFC 3339"), "{err}");
    }

    #[test]
    fn canonical_values_read_back_as_the_same_values() {
        for (text, micros) in [
            ("2024-03-01", 1_709_251_200_000_000),
            ("2024-03-01T12:00:00.5+09:00", 1_709_262_000_500_000),
            ("1969-12-31T23:59:59.999999Z", -1),
        ] {
            let at = parse_date(text).unwrap();
            assert_eq!(at, micros, "{text}");
            let canonical = FieldType::Date.canonical(&json!(text)).unwrap();
            assert_eq!(
                parse_date(canonical.as_str().unwrap()),
                Some(at),
                "{canonical}"
            );
        }
        assert_eq!(format_date(-1), "1969-12-31T23:59:59.999999Z");
        assert_eq!(
            FieldType::Integer.canonical(&json!(2020.0)).unwrap(),
            json!(2020)
        );
        assert_eq!(FieldType::Float.canonical(&json!(3)).unwrap(), json!(3.0));
        assert_eq!(
            FieldType::String.canonical(&json!("a.b")).unwrap(),
            json!("a.b")
        );
        assert!(FieldType::Bool.canonical(&json!("true")).is_err());
    }

    #[test]
    fn filters_parse_and_say_what_is_wrong() {
        let f = Filter::from_json(&json!({"and": [{"field": "year", "gte": 2020, "lt": 2024}, {"not": {"field": "tags", "in": ["x"]}}]})).unwrap();
        assert_eq!(Filter::from_json(&f.to_json()).unwrap(), f);
        let err = Filter::from_json(&json!({"and": [{"field": "a", "eq": 1}, {"field": "b"}]}))
            .unwrap_err();
        assert!(
            err.starts_with("and[1]: field \"b\": no condition"),
            "{err}"
        );
        let err = Filter::from_json(&json!({"field": "a", "eq": 1, "in": [1]})).unwrap_err();
        assert!(err.contains("with another condition"), "{err}");
        let err = Filter::from_json(&json!({"field": "a", "like": 1})).unwrap_err();
        assert!(err.contains("unknown condition \"like\""), "{err}");
        assert!(
            Filter::from_json(&json!([1]))
                .unwrap_err()
                .contains("not an object")
        );
    }

    #[test]
    fn dates_parse_as_instants() {
        assert_eq!(parse_date("1970-01-02"), Some(86_400_000_000));
        assert_eq!(parse_date("1970-01-01T09:00:00+09:00"), Some(0));
        assert_eq!(parse_date("2024-13-01"), None);
        assert_eq!(parse_date("20240101"), None);
    }
}
