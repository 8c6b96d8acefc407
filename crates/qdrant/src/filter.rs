//! The engine's filters ([`Filter`]) as Qdrant's, and the payload that lets Qdrant apply them.
//!
//! `sync` sends a document's fields as one payload object, [`FIELDS_KEY`], keyed by the
//! field's name (dotted names stay whole: `"metadata.year"`), each value in its canonical form
//! ([`hybrid_search::sparse::FieldType::canonical`]: dates as RFC 3339 date-times in UTC), and
//! creates a payload index per field of the type its values have. A filter then becomes a
//! Qdrant filter on the keys `fields."<name>"` (a quoted key, so a dot in a name is not a
//! path step) that selects the same documents as the engine's own:
//!
//! | engine | Qdrant |
//! |---|---|
//! | `and`, `or`, `not` | `must`, `should`, `must_not` (an empty `or` selects nothing) |
//! | `eq` on a string, integer or bool | `match: {value}` (an array matches on any element) |
//! | `in` on strings or integers | `match: {any}` |
//! | `eq` / `in` on a float or date | `range` / `datetime_range` with `gte = lte` (per value) |
//! | `gt`, `gte`, `lt`, `lte` | `range` (numbers, as `f64`) or `datetime_range` (dates) |
//! | `exists: false` / `true` | `is_empty` / `must_not: [is_empty]` (missing, null and `[]` are empty) |
//! | `"field": "id"` | `has_id` of the documents' point ids ([`point_id`]) |
//!
//! The filter is given to every leg and to both prefetches of a fusion Qdrant runs, so each
//! leg's top `k` is taken among the matching points, as in the engine.

use std::ops::Bound;

use qdrant_client::qdrant;
use serde_json::{Value, json};
use uuid::Uuid;

use hybrid_search::sparse::{
    Condition, FieldSchema, FieldType, Fields, Filter, format_date, parse_date,
};

use crate::points::point_id;

/// The payload key of the object holding a point's fields.
pub const FIELDS_KEY: &str = "fields";

/// The payload key of field `name`: `fields."<name>"`.
///
/// # Errors
///
/// A message when the name holds a double quote or a backslash, which Qdrant's key syntax
/// cannot quote (such a field is sent but cannot be filtered through Qdrant).
pub fn payload_key(name: &str) -> Result<String, String> {
    if name.contains(['"', '\\']) {
        return Err(format!(
            "field {name:?}: a name with a double quote or a backslash cannot be a Qdrant payload \
             key; filter it in the engine collection itself (search without --qdrant)"
        ));
    }
    Ok(format!("{FIELDS_KEY}.\"{name}\""))
}

/// The payload index type Qdrant keeps for a field of type `kind`.
pub fn index_type(kind: FieldType) -> qdrant::FieldType {
    match kind {
        FieldType::String => qdrant::FieldType::Keyword,
        FieldType::Integer => qdrant::FieldType::Integer,
        FieldType::Float => qdrant::FieldType::Float,
        FieldType::Bool => qdrant::FieldType::Bool,
        FieldType::Date => qdrant::FieldType::Datetime,
    }
}

/// A document's fields as the [`FIELDS_KEY`] payload object: each value (or each element of
/// an array, `null`s left out) in its canonical form for the field's type in `schema`; a
/// field `schema` does not know, or a `null`, is left out.
pub fn payload_fields(fields: &Fields, schema: &FieldSchema) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    for (name, value) in fields {
        let Some(kind) = schema.kind(name) else {
            continue;
        };
        // The collection accepted these values for this type, so none fails here.
        let canonical = |v: &Value| kind.canonical(v).ok();
        let value = match value {
            Value::Null => continue,
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .filter(|v| !v.is_null())
                    .filter_map(canonical)
                    .collect(),
            ),
            one => match canonical(one) {
                Some(v) => v,
                None => continue,
            },
        };
        out.insert(name.clone(), value);
    }
    out
}

/// One value a `match` compares with.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// A string (keyword).
    Keyword(String),
    /// An integer.
    Integer(i64),
    /// A bool.
    Bool(bool),
}

/// The values a `match: {any}` compares with.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyOf {
    /// Strings.
    Keywords(Vec<String>),
    /// Integers.
    Integers(Vec<i64>),
}

/// Bounds of a `range`: numbers (`f64`) or instants (microseconds since the Unix epoch).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds<T> {
    /// Greater than.
    pub gt: Option<T>,
    /// Greater than or equal.
    pub gte: Option<T>,
    /// Less than.
    pub lt: Option<T>,
    /// Less than or equal.
    pub lte: Option<T>,
}

/// One condition of a [`QdrantFilter`].
#[derive(Debug, Clone, PartialEq)]
pub enum QdrantCondition {
    /// The key's value, or an element of it, equals the value.
    Match {
        /// The payload key.
        key: String,
        /// The value.
        value: Scalar,
    },
    /// The key's value, or an element of it, equals one of the values.
    MatchAny {
        /// The payload key.
        key: String,
        /// The values.
        any: AnyOf,
    },
    /// A number within the bounds.
    Range {
        /// The payload key.
        key: String,
        /// The bounds.
        bounds: Bounds<f64>,
    },
    /// A date within the bounds.
    DatetimeRange {
        /// The payload key.
        key: String,
        /// The bounds, in microseconds since the Unix epoch.
        bounds: Bounds<i64>,
    },
    /// The key is missing, `null` or `[]`.
    IsEmpty {
        /// The payload key.
        key: String,
    },
    /// The point is one of these (none: no point is).
    HasId(Vec<Uuid>),
    /// A filter nested as one condition.
    Filter(QdrantFilter),
}

/// A Qdrant filter: every `must` condition holds, at least one `should` condition does (when
/// there are any), no `must_not` condition does.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QdrantFilter {
    /// Conditions that all hold.
    pub must: Vec<QdrantCondition>,
    /// Conditions of which one holds.
    pub should: Vec<QdrantCondition>,
    /// Conditions none of which holds.
    pub must_not: Vec<QdrantCondition>,
}

/// A filter that selects no point.
fn nothing() -> QdrantCondition {
    QdrantCondition::HasId(Vec::new())
}

/// A filter that selects every point.
fn everything() -> QdrantCondition {
    QdrantCondition::Filter(QdrantFilter {
        must_not: vec![nothing()],
        ..QdrantFilter::default()
    })
}

impl QdrantFilter {
    /// `filter` as the Qdrant filter that selects the same documents, the fields typed by
    /// `schema` (the engine collection's).
    ///
    /// # Errors
    ///
    /// A message naming an unknown field, a value of another type than its field's, a range
    /// on a field that is not a number or a date, or a name Qdrant cannot address
    /// ([`payload_key`]). The engine checks filters before its legs run, so through a search
    /// only the last can happen.
    pub fn translate(filter: &Filter, schema: &FieldSchema) -> Result<Self, String> {
        Ok(match filter {
            Filter::And(fs) => QdrantFilter {
                must: conditions(fs, schema)?,
                ..Self::default()
            },
            Filter::Or(fs) if fs.is_empty() => QdrantFilter {
                must: vec![nothing()],
                ..Self::default()
            },
            Filter::Or(fs) => QdrantFilter {
                should: conditions(fs, schema)?,
                ..Self::default()
            },
            Filter::Not(f) => QdrantFilter {
                must_not: vec![condition(f, schema)?],
                ..Self::default()
            },
            Filter::Field { .. } => QdrantFilter {
                must: vec![condition(filter, schema)?],
                ..Self::default()
            },
        })
    }

    /// The filter in Qdrant's JSON form (REST API, `qdrant-client` for Python), dates as RFC
    /// 3339 date-times in UTC.
    pub fn to_json(&self) -> Value {
        let mut out = serde_json::Map::new();
        for (name, list) in [
            ("must", &self.must),
            ("should", &self.should),
            ("must_not", &self.must_not),
        ] {
            if !list.is_empty() {
                out.insert(
                    name.into(),
                    Value::Array(list.iter().map(QdrantCondition::to_json).collect()),
                );
            }
        }
        Value::Object(out)
    }

    /// The filter as `qdrant-client`'s gRPC message.
    pub fn to_grpc(&self) -> qdrant::Filter {
        let list = |l: &[QdrantCondition]| l.iter().map(QdrantCondition::to_grpc).collect();
        qdrant::Filter {
            must: list(&self.must),
            should: list(&self.should),
            must_not: list(&self.must_not),
            min_should: None,
        }
    }
}

fn conditions(fs: &[Filter], schema: &FieldSchema) -> Result<Vec<QdrantCondition>, String> {
    fs.iter().map(|f| condition(f, schema)).collect()
}

/// `filter` as one condition: a field's condition as itself, anything else nested.
fn condition(filter: &Filter, schema: &FieldSchema) -> Result<QdrantCondition, String> {
    let Filter::Field { field, condition } = filter else {
        return Ok(QdrantCondition::Filter(QdrantFilter::translate(
            filter, schema,
        )?));
    };
    if field == "id" {
        return id_condition(condition);
    }
    let kind = schema
        .kind(field)
        .ok_or_else(|| format!("unknown field {field:?}"))?;
    let key = payload_key(field)?;
    let value = |v: &Value| {
        kind.canonical(v)
            .map_err(|e| format!("field {field:?}: {e}"))
    };
    let number = |v: &Value| {
        v.as_f64().ok_or_else(|| {
            format!("field {field:?}: {v} is not a number; the field holds {kind} values")
        })
    };
    let instant = |v: &Value| {
        v.as_str()
            .and_then(parse_date)
            .ok_or_else(|| format!("field {field:?}: {v} is not an RFC 3339 date or date-time"))
    };
    let equal = |v: &Value| -> Result<QdrantCondition, String> {
        let key = key.clone();
        Ok(match (kind, value(v)?) {
            (FieldType::Float, v) => {
                let x = number(&v)?;
                QdrantCondition::Range {
                    key,
                    bounds: Bounds {
                        gt: None,
                        gte: Some(x),
                        lt: None,
                        lte: Some(x),
                    },
                }
            }
            (FieldType::Date, v) => {
                let at = instant(&v)?;
                QdrantCondition::DatetimeRange {
                    key,
                    bounds: Bounds {
                        gt: None,
                        gte: Some(at),
                        lt: None,
                        lte: Some(at),
                    },
                }
            }
            (_, Value::String(s)) => QdrantCondition::Match {
                key,
                value: Scalar::Keyword(s),
            },
            (_, Value::Bool(b)) => QdrantCondition::Match {
                key,
                value: Scalar::Bool(b),
            },
            (_, v) => QdrantCondition::Match {
                key,
                value: Scalar::Integer(
                    v.as_i64()
                        .ok_or_else(|| format!("field {field:?}: {v} is not an integer"))?,
                ),
            },
        })
    };
    Ok(match condition {
        Condition::Eq(v) => equal(v)?,
        Condition::In(vs) if vs.is_empty() => nothing(),
        Condition::In(vs) => {
            let values = vs.iter().map(value).collect::<Result<Vec<_>, _>>()?;
            match kind {
                FieldType::String => QdrantCondition::MatchAny {
                    key,
                    any: AnyOf::Keywords(
                        values
                            .into_iter()
                            .map(|v| v.as_str().unwrap_or_default().to_string())
                            .collect(),
                    ),
                },
                FieldType::Integer => QdrantCondition::MatchAny {
                    key,
                    any: AnyOf::Integers(
                        values
                            .iter()
                            .map(|v| v.as_i64().unwrap_or_default())
                            .collect(),
                    ),
                },
                _ => QdrantCondition::Filter(QdrantFilter {
                    should: vs.iter().map(equal).collect::<Result<_, _>>()?,
                    ..QdrantFilter::default()
                }),
            }
        }
        Condition::Exists(false) => QdrantCondition::IsEmpty { key },
        Condition::Exists(true) => QdrantCondition::Filter(QdrantFilter {
            must_not: vec![QdrantCondition::IsEmpty { key }],
            ..QdrantFilter::default()
        }),
        Condition::Range { lower, upper } => match kind {
            FieldType::Float => QdrantCondition::Range {
                key,
                bounds: bounds_of(lower, upper, number)?,
            },
            // A fractional bound on an integer field, rounded to the integer bound that keeps
            // the same integers (`gte 2019.5` is `gte 2020`): Qdrant's integer index has
            // truncated fractional bounds in some versions.
            FieldType::Integer => {
                let b = bounds_of(lower, upper, number)?;
                QdrantCondition::Range {
                    key,
                    bounds: Bounds {
                        gt: b.gt.map(f64::floor),
                        gte: b.gte.map(f64::ceil),
                        lt: b.lt.map(f64::ceil),
                        lte: b.lte.map(f64::floor),
                    },
                }
            }
            FieldType::Date => QdrantCondition::DatetimeRange {
                key,
                bounds: bounds_of(lower, upper, instant)?,
            },
            _ => {
                return Err(format!(
                    "field {field:?} holds {kind} values; gt, gte, lt and lte apply to numbers \
                     and dates"
                ));
            }
        },
    })
}

/// `gt`/`gte` from `lower`, `lt`/`lte` from `upper`, each value converted by `to`.
fn bounds_of<T>(
    lower: &Bound<Value>,
    upper: &Bound<Value>,
    to: impl Fn(&Value) -> Result<T, String>,
) -> Result<Bounds<T>, String> {
    let mut b = Bounds {
        gt: None,
        gte: None,
        lt: None,
        lte: None,
    };
    match lower {
        Bound::Included(v) => b.gte = Some(to(v)?),
        Bound::Excluded(v) => b.gt = Some(to(v)?),
        Bound::Unbounded => {}
    }
    match upper {
        Bound::Included(v) => b.lte = Some(to(v)?),
        Bound::Excluded(v) => b.lt = Some(to(v)?),
        Bound::Unbounded => {}
    }
    Ok(b)
}

/// A condition on the document id, as the points' ids.
fn id_condition(condition: &Condition) -> Result<QdrantCondition, String> {
    let id = |v: &Value| match v {
        Value::String(s) => Ok(point_id(s)),
        Value::Number(n) => Ok(point_id(&n.to_string())),
        other => Err(format!(
            "field \"id\": {other} is not an id; ids are strings"
        )),
    };
    Ok(match condition {
        Condition::Eq(v) => QdrantCondition::HasId(vec![id(v)?]),
        Condition::In(vs) => QdrantCondition::HasId(vs.iter().map(id).collect::<Result<_, _>>()?),
        Condition::Exists(true) => everything(),
        Condition::Exists(false) => nothing(),
        Condition::Range { .. } => {
            return Err("field \"id\" takes eq, in and exists; ids are not ordered".into());
        }
    })
}

impl QdrantCondition {
    fn to_json(&self) -> Value {
        let bounds_json = |b: &Bounds<Value>| {
            let mut m = serde_json::Map::new();
            for (name, v) in [
                ("gt", &b.gt),
                ("gte", &b.gte),
                ("lt", &b.lt),
                ("lte", &b.lte),
            ] {
                if let Some(v) = v {
                    m.insert(name.into(), v.clone());
                }
            }
            Value::Object(m)
        };
        let map = |b: &Bounds<f64>| Bounds {
            gt: b.gt.map(Value::from),
            gte: b.gte.map(Value::from),
            lt: b.lt.map(Value::from),
            lte: b.lte.map(Value::from),
        };
        let date = |x: Option<i64>| x.map(|m| Value::String(format_date(m)));
        match self {
            QdrantCondition::Match { key, value } => {
                let v = match value {
                    Scalar::Keyword(s) => json!(s),
                    Scalar::Integer(x) => json!(x),
                    Scalar::Bool(b) => json!(b),
                };
                json!({"key": key, "match": {"value": v}})
            }
            QdrantCondition::MatchAny { key, any } => {
                let any = match any {
                    AnyOf::Keywords(v) => json!(v),
                    AnyOf::Integers(v) => json!(v),
                };
                json!({"key": key, "match": {"any": any}})
            }
            QdrantCondition::Range { key, bounds } => {
                json!({"key": key, "range": bounds_json(&map(bounds))})
            }
            QdrantCondition::DatetimeRange { key, bounds } => {
                let b = Bounds {
                    gt: date(bounds.gt),
                    gte: date(bounds.gte),
                    lt: date(bounds.lt),
                    lte: date(bounds.lte),
                };
                json!({"key": key, "range": bounds_json(&b)})
            }
            QdrantCondition::IsEmpty { key } => json!({"is_empty": {"key": key}}),
            QdrantCondition::HasId(ids) => {
                json!({"has_id": ids.iter().map(Uuid::to_string).collect::<Vec<_>>()})
            }
            QdrantCondition::Filter(f) => f.to_json(),
        }
    }

    fn to_grpc(&self) -> qdrant::Condition {
        let timestamp = |x: Option<i64>| {
            x.map(|micros| prost_types::Timestamp {
                seconds: micros.div_euclid(1_000_000),
                // Below 1e9, so within i32.
                #[allow(clippy::cast_possible_truncation)]
                nanos: (micros.rem_euclid(1_000_000) * 1000) as i32,
            })
        };
        match self {
            QdrantCondition::Match { key, value } => qdrant::Condition::matches(
                key.clone(),
                match value {
                    Scalar::Keyword(s) => qdrant::r#match::MatchValue::from(s.clone()),
                    Scalar::Integer(x) => qdrant::r#match::MatchValue::from(*x),
                    Scalar::Bool(b) => qdrant::r#match::MatchValue::from(*b),
                },
            ),
            QdrantCondition::MatchAny { key, any } => qdrant::Condition::matches(
                key.clone(),
                match any {
                    AnyOf::Keywords(v) => qdrant::r#match::MatchValue::from(v.clone()),
                    AnyOf::Integers(v) => qdrant::r#match::MatchValue::from(v.clone()),
                },
            ),
            QdrantCondition::Range { key, bounds } => qdrant::Condition::range(
                key.clone(),
                qdrant::Range {
                    gt: bounds.gt,
                    gte: bounds.gte,
                    lt: bounds.lt,
                    lte: bounds.lte,
                },
            ),
            QdrantCondition::DatetimeRange { key, bounds } => qdrant::Condition::datetime_range(
                key.clone(),
                qdrant::DatetimeRange {
                    gt: timestamp(bounds.gt),
                    gte: timestamp(bounds.gte),
                    lt: timestamp(bounds.lt),
                    lte: timestamp(bounds.lte),
                },
            ),
            QdrantCondition::IsEmpty { key } => qdrant::Condition::is_empty(key.clone()),
            QdrantCondition::HasId(ids) => qdrant::Condition::has_id(
                ids.iter().map(|id| qdrant::PointId::from(id.to_string())),
            ),
            QdrantCondition::Filter(f) => qdrant::Condition::from(f.to_grpc()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hybrid_search::sparse::FieldSpec;

    fn schema() -> FieldSchema {
        let spec = |name: &str, kind| FieldSpec {
            name: name.into(),
            kind,
        };
        FieldSchema::from(vec![
            spec("source", FieldType::String),
            spec("metadata.year", FieldType::Integer),
            spec("score", FieldType::Float),
            spec("open", FieldType::Bool),
            spec("at", FieldType::Date),
        ])
    }

    fn translate(filter: Value) -> Value {
        QdrantFilter::translate(&Filter::from_json(&filter).unwrap(), &schema())
            .unwrap()
            .to_json()
    }

    #[test]
    fn each_condition_becomes_qdrants() {
        assert_eq!(
            translate(json!({"field": "source", "eq": "pubmed"})),
            json!({"must": [{"key": "fields.\"source\"", "match": {"value": "pubmed"}}]})
        );
        assert_eq!(
            translate(json!({"field": "metadata.year", "in": [2020, 2021.0]})),
            json!({"must": [{"key": "fields.\"metadata.year\"", "match": {"any": [2020, 2021]}}]})
        );
        assert_eq!(
            translate(json!({"field": "metadata.year", "gte": 2019.5, "lt": 2024})),
            json!({"must": [{"key": "fields.\"metadata.year\"", "range": {"gte": 2020.0, "lt": 2024.0}}]})
        );
        assert_eq!(
            translate(json!({"field": "metadata.year", "gt": 2019.5, "lte": 2021.7})),
            json!({"must": [{"key": "fields.\"metadata.year\"", "range": {"gt": 2019.0, "lte": 2021.0}}]})
        );
        assert_eq!(
            translate(json!({"field": "score", "eq": 0.5})),
            json!({"must": [{"key": "fields.\"score\"", "range": {"gte": 0.5, "lte": 0.5}}]})
        );
        assert_eq!(
            translate(json!({"field": "at", "gt": "2024-03-01T09:00:00+09:00"})),
            json!({"must": [{"key": "fields.\"at\"", "range": {"gt": "2024-03-01T00:00:00.000000Z"}}]})
        );
        assert_eq!(
            translate(json!({"not": {"field": "open", "exists": true}})),
            json!({"must_not": [{"must_not": [{"is_empty": {"key": "fields.\"open\""}}]}]})
        );
        assert_eq!(
            translate(json!({"or": [{"field": "id", "eq": "d1"}, {"field": "open", "eq": false}]})),
            json!({"should": [
                {"has_id": [point_id("d1").to_string()]},
                {"key": "fields.\"open\"", "match": {"value": false}}
            ]})
        );
        // An empty `or` (the library's type allows one) selects nothing; an empty `and`,
        // everything.
        let empty = |f: Filter| QdrantFilter::translate(&f, &schema()).unwrap().to_json();
        assert_eq!(empty(Filter::Or(vec![])), json!({"must": [{"has_id": []}]}));
        assert_eq!(empty(Filter::And(vec![])), json!({}));
        assert_eq!(
            translate(json!({"field": "id", "exists": true})),
            json!({"must": [{"must_not": [{"has_id": []}]}]})
        );
    }

    #[test]
    fn the_grpc_message_has_the_same_shape() {
        use qdrant::condition::ConditionOneOf;
        let f = QdrantFilter::translate(
            &Filter::from_json(&json!({"and": [
                {"field": "source", "in": ["a", "b"]},
                {"not": {"field": "at", "lte": "1969-12-31T23:59:59.999999Z"}}
            ]}))
            .unwrap(),
            &schema(),
        )
        .unwrap()
        .to_grpc();
        assert_eq!(f.must.len(), 2);
        assert!(f.should.is_empty() && f.must_not.is_empty());
        let Some(ConditionOneOf::Field(any)) = &f.must[0].condition_one_of else {
            panic!("{:?}", f.must[0]);
        };
        assert_eq!(any.key, "fields.\"source\"");
        let Some(ConditionOneOf::Filter(not)) = &f.must[1].condition_one_of else {
            panic!("{:?}", f.must[1]);
        };
        let Some(ConditionOneOf::Field(range)) = &not.must_not[0].condition_one_of else {
            panic!("{not:?}");
        };
        let lte = range.datetime_range.unwrap().lte.unwrap();
        assert_eq!((lte.seconds, lte.nanos), (-1, 999_999_000));
    }

    #[test]
    fn payload_values_are_canonical_and_names_that_cannot_be_keys_are_refused() {
        let fields: Fields = serde_json::from_value(json!({
            "at": "2024-03-01", "metadata.year": 2020.0, "score": 1,
            "source": ["a", null, "b"], "gone": null, "unknown": 3
        }))
        .unwrap();
        assert_eq!(
            Value::Object(payload_fields(&fields, &schema())),
            json!({"at": "2024-03-01T00:00:00.000000Z", "metadata.year": 2020, "score": 1.0,
                   "source": ["a", "b"]})
        );
        assert!(
            payload_key("say \"hi\"")
                .unwrap_err()
                .contains("double quote")
        );
        let err = QdrantFilter::translate(&Filter::eq("nope", 1), &schema()).unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
    }
}
