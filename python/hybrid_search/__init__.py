"""hybrid-search in-process: BM25 with Korean and domain-term English analysis, dense encoders,
fusion and filters over a collection on disk.

    import hybrid_search as hs

    c = hs.Collection.create("data/notes")                # analyzer "auto"
    c.add([{"id": "d1", "title": "IL-6", "text": "IL-6 in sepsis", "source": "pubmed"}])
    hits = c.search("sepsis", k=5, filter={"field": "source", "eq": "pubmed"})

Every call into the engine releases the GIL: Python threads search in parallel, and a long
`add` does not stop other threads. A `Collection` may be shared between threads; searches see
one whole commit each, also while another thread adds.

Errors are exceptions of one hierarchy: `HybridSearchError`, and below it `InvalidRequest` (a
request, document or setting that is not valid), `NotFoundError` (a collection or model that
is not there; `ModelNotFound` is the same class), `ConflictError` (the collection's model or
Korean dictionary, missing or another one; a vector's length; a field's type), `BusyError`
(another writer holds the collection). The message says what is wrong and what to do.
"""

from __future__ import annotations

import json
import sys
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from . import _native
from ._native import (
    BusyError,
    ConflictError,
    HybridSearchError,
    InvalidRequest,
    NotFoundError,
)

__version__ = _native.__version__

ModelNotFound = NotFoundError

__all__ = [
    "Collection",
    "ensure_korean_dictionary",
    "Encoder",
    "Reranker",
    "Hit",
    "LegScore",
    "SearchResults",
    "HybridSearchError",
    "InvalidRequest",
    "NotFoundError",
    "ModelNotFound",
    "ConflictError",
    "BusyError",
]

Filter = Mapping[str, Any]
"""A filter in the engine's JSON form: ``{"field": "year", "gte": 2020}``,
``{"field": "source", "eq": "pubmed"}``, ``{"field": "tags", "in": ["a", "b"]}``,
``{"field": "lang", "exists": True}``, ``{"and": [...]}``, ``{"or": [...]}``, ``{"not": {...}}``;
``"field": "id"`` is the document id."""


def ensure_korean_dictionary(quiet: bool = False) -> Optional[str]:
    """Makes sure the Korean dictionary (ko-dic) is there, and returns its folder (None when
    it cannot be had). When the engine finds none and PyPI's ``python-mecab-ko-dic`` (a
    dependency of this package) is installed, builds it once from that package into the data
    folder (``$HYBRID_SEARCH_HOME/models/ko-dic``, default
    ``~/.local/share/hybrid-search/models/ko-dic``; about 15 s and 82 MB). `Collection.create`
    and `Collection.open` call it, so Korean text needs no manual step; English text never
    needs the dictionary."""
    found = _native.ko_dic_path()
    if found is not None:
        return str(found)
    try:
        import mecab_ko_dic
    except ImportError:
        return None
    target = _native.ko_dic_home()
    if target is None:
        return None
    if not quiet:
        print(f"hybrid_search: building the Korean dictionary once into {target} "
              "(from python-mecab-ko-dic)", file=sys.stderr)
    _native.build_ko_dic(str(mecab_ko_dic.dictionary_path), str(target))
    return str(_native.ko_dic_path() or "") or None


def _try_korean_dictionary() -> None:
    """`ensure_korean_dictionary`, a failure (a read-only or full data folder) a warning: English
    text still works, and Korean text then fails saying where ko-dic was looked for."""
    try:
        ensure_korean_dictionary()
    except (HybridSearchError, OSError) as e:
        warnings.warn(f"hybrid_search: could not build the Korean dictionary: {e}")


def _jsonable(value: Any) -> Any:
    """`json.dumps`'s fallback: NumPy arrays and scalars as lists and numbers, dates and
    timestamps (datetime, pandas, NumPy) as ISO 8601 / RFC 3339 text."""
    isoformat = getattr(value, "isoformat", None)
    if isoformat is not None:
        text = isoformat()
        if hasattr(value, "hour") and getattr(value, "tzinfo", None) is None:
            text += "Z"  # a date-time without an offset is taken as UTC
        return text
    tolist = getattr(value, "tolist", None)
    if tolist is not None:
        return tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _missing(value: Any) -> bool:
    """None, NaN and pandas' NA/NaT: a table's empty cell, which a document leaves out."""
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, NaT and NA are not equal to themselves
    except (TypeError, ValueError):
        return False  # arrays and other values whose comparison is not one bool


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_jsonable, ensure_ascii=False)


@dataclass(frozen=True)
class LegScore:
    """What one leg gave a hit (with ``explain=True``): the leg (``sparse`` or ``dense``),
    whether its list held the document, its 1-based rank and raw score there (None when it did
    not), the normalised score and the contribution to the fused score."""

    leg: str
    found: bool
    rank: Optional[int]
    raw_score: Optional[float]
    normalized: float
    contribution: float


@dataclass(frozen=True)
class Hit:
    """One search result: the id, the score (BM25, cosine or fused), title, a snippet with the
    matches marked ``**``; the full ``text`` and ``fields`` when the search asked for them
    (``fields=["text", "source"]`` or ``["*"]``), and each leg's share with ``explain=True``."""

    id: str
    score: float
    title: str
    snippet: str
    text: Optional[str] = None
    fields: Optional[Dict[str, Any]] = None
    legs: List[LegScore] = field(default_factory=list)

    def metadata(self) -> Dict[str, Any]:
        """The hit as a flat metadata dict for a framework's document: ``id``, ``title``,
        ``score``, the hit's fields, and ``legs`` (with ``explain=True``)."""
        meta: Dict[str, Any] = dict(self.fields or {})
        # The hit's own keys win over fields of the same name.
        meta.update(id=self.id, title=self.title, score=self.score)
        if self.legs:
            meta["legs"] = [asdict(l) for l in self.legs]
        return meta

    def content(self) -> str:
        """The title and the full text (with ``fields=["text"]``) as one passage."""
        text = self.text or ""
        return f"{self.title}\n{text}" if self.title else text

    @staticmethod
    def _of(h: Mapping[str, Any]) -> "Hit":
        legs = [
            LegScore(
                leg=l["leg"],
                found=l.get("found", False),
                rank=l.get("rank"),
                raw_score=l.get("raw_score"),
                normalized=l.get("normalized", 0.0),
                contribution=l.get("contribution", 0.0),
            )
            for l in h.get("legs", [])
        ]
        return Hit(
            id=h["id"],
            score=h["score"],
            title=h.get("title", ""),
            snippet=h.get("snippet", ""),
            text=h.get("text"),
            fields=h.get("fields"),
            legs=legs,
        )


class SearchResults(List[Hit]):
    """The hits, best first (a list), with how they were made: ``mode`` (the mode that
    answered), ``degraded`` (why a hybrid search fell back to BM25, or None) and ``fusion``
    (the fusion settings, hybrid only)."""

    mode: str
    degraded: Optional[Dict[str, Any]]
    fusion: Optional[Dict[str, Any]]
    rerank: Optional[Dict[str, Any]]

    @staticmethod
    def _of(text: str) -> "SearchResults":
        o = json.loads(text)
        out = SearchResults(Hit._of(h) for h in o["hits"])
        out.mode = o["mode"]
        out.degraded = o.get("degraded")
        out.fusion = o.get("fusion")
        out.rerank = o.get("rerank")
        return out


def _request(
    query: str,
    k: int,
    mode: Optional[str],
    filter: Optional[Filter],
    fields: Optional[Sequence[str]],
    offset: int,
    fusion: Optional[Mapping[str, Any]],
    explain: bool,
    vector: Any,
    prf: Optional[Mapping[str, Any]] = None,
) -> str:
    body: Dict[str, Any] = {"query": query, "k": k, "offset": offset, "explain": explain}
    if prf is not None:
        body["prf"] = dict(prf)
    if mode is not None:
        body["mode"] = mode
    if filter is not None:
        body["filter"] = filter
    if fields:
        body["fields"] = list(fields)
    if fusion:
        body["fusion"] = dict(fusion)
    if vector is not None:
        body["vector"] = vector
    return _dumps(body)


class Collection:
    """A collection on disk: documents, their BM25 index and (with a model) their vectors.

    Open one with `Collection.open(path)` or make one with `Collection.create(path, ...)`.
    """

    def __init__(self, native: "_native.Collection") -> None:
        self._native = native

    @staticmethod
    def create(path: str, analyzer: str = "auto", model: Optional[str] = None) -> "Collection":
        """Creates a collection in `path` (missing or empty).

        analyzer: ``auto`` (Korean through ko-dic, the rest as English; English text needs no
        dictionary), ``ko`` or ``en``. model: a model folder, or the name of one under
        ``models/`` (``all-MiniLM-L6-v2``), for a dense leg; documents are then encoded as they
        are added (or their ``vector`` stored).
        """
        if analyzer != "en":
            _try_korean_dictionary()
        return Collection(_native.Collection.create(str(path), analyzer, model))

    @staticmethod
    def open(path: str) -> "Collection":
        """Opens the collection in `path` at its last commit (its recorded model attached; if
        that cannot be loaded, hybrid searches fall back to BM25 and say why)."""
        try:
            with open(Path(path) / "manifest.json", encoding="utf-8") as f:
                kind = json.load(f).get("analyzer", {}).get("kind")
        except (OSError, ValueError):
            kind = None  # the engine says what is wrong with the folder
        if kind in ("auto", "ko"):
            _try_korean_dictionary()
        return Collection(_native.Collection.open(str(path)))

    def __len__(self) -> int:
        return len(self._native)

    def __repr__(self) -> str:
        return f"Collection({str(self._native.path)!r}, documents={len(self)})"

    @property
    def path(self) -> str:
        """The collection's folder."""
        return str(self._native.path)

    @property
    def manifest(self) -> Dict[str, Any]:
        """The collection's settings: analyzer, dense model, fields and their types."""
        return json.loads(self._native.manifest_json())

    def add(self, documents: Iterable[Mapping[str, Any]]) -> Dict[str, Any]:
        """Adds documents, replacing those whose id exists, in one commit.

        Each document is a dict: ``id`` (string), ``text``, optional ``title``, optional
        ``vector`` (a list or NumPy array of the model's dimensions: stored instead of encoding
        the text), and any other key a field (filterable, returned with hits on request; its
        type is fixed by its first value). Any iterable works and is streamed: documents are
        staged as they come, so memory does not grow with it. Nothing is committed on an error
        (`InvalidRequest` names ``documents[i]`` and the problem).

        Returns ``{"added", "replaced", "deleted", "documents", "warnings"}``.
        """
        return json.loads(self._native.add(_dumps(d) for d in documents))

    def add_dataframe(self, table: Any) -> Dict[str, Any]:
        """Adds the rows of a pandas DataFrame or a pyarrow Table as documents (`add`'s rules:
        an ``id`` (or ``_id``) and a ``text`` column, optional ``title`` and ``vector``, every
        other column a field), streamed row by row in one commit. Empty cells (None, NaN,
        NaT) are left out of their document; timestamps become RFC 3339 dates (UTC when they
        have no time zone)."""
        if hasattr(table, "to_batches"):  # pyarrow.Table
            rows: Iterable[Mapping[str, Any]] = (
                row for batch in table.to_batches() for row in batch.to_pylist()
            )
        elif hasattr(table, "itertuples") and hasattr(table, "columns"):  # pandas.DataFrame
            columns = [str(c) for c in table.columns]
            rows = (dict(zip(columns, t)) for t in table.itertuples(index=False, name=None))
        else:
            raise InvalidRequest(
                f"add_dataframe: a pandas DataFrame or a pyarrow Table, not {type(table).__name__}"
            )
        return self.add({k: v for k, v in row.items() if not _missing(v)} for row in rows)

    def delete(
        self,
        ids: Optional[Iterable[str]] = None,
        *,
        filter: Optional[Filter] = None,
        all: bool = False,
    ) -> int:
        """Deletes documents in one commit: by `ids`, or every document `filter` matches, or
        every document with ``all=True`` (exactly one of the three). Returns how many there
        were."""
        chosen = sum(x for x in (ids is not None, filter is not None, all))
        if chosen != 1:
            raise InvalidRequest("delete: give exactly one of ids, filter= or all=True")
        if ids is not None:
            if isinstance(ids, str):
                ids = [ids]
            return self._native.delete_ids(list(ids))
        return self._native.delete_where(None if all else _dumps(filter))

    def get(self, id: str) -> Optional[Dict[str, Any]]:
        """The stored document with this id (``id``, ``title``, ``text``, ``fields``), or
        None."""
        text = self._native.get(id)
        return None if text is None else json.loads(text)

    def search(
        self,
        query: str = "",
        k: int = 10,
        *,
        mode: Optional[str] = None,
        filter: Optional[Filter] = None,
        fields: Optional[Sequence[str]] = None,
        offset: int = 0,
        fusion: Optional[Mapping[str, Any]] = None,
        explain: bool = False,
        vector: Any = None,
        rerank: Optional["Reranker"] = None,
        rerank_depth: Optional[int] = None,
        rerank_weight: Optional[float] = None,
        prf: Optional[Mapping[str, Any]] = None,
    ) -> SearchResults:
        """Searches: the top `k` hits after skipping `offset` (page ``p`` of ``k`` is
        ``offset=p*k``).

        mode: ``sparse`` (BM25), ``dense`` or ``hybrid``; the collection's default when None.
        filter: only documents it matches, in both legs before their top k. fields: what each
        hit carries besides id, title, snippet and score (``text``, field names, or ``*``).
        fusion: overrides of the collection's fusion, ``{"method": "rrf"|"convex", "alpha",
        "rrf_k", "norm", "depth"}``. vector: the query's vector (a list or NumPy array) instead
        of encoding `query`. rerank: a `Reranker` that reorders the top `rerank_depth` hits
        (default 20), its score weighted `rerank_weight` (default 0.2) against the first
        stage's (``results.rerank`` says how). prf: pseudo-relevance feedback, ``{"rm3": {}}``
        (BM25 query expansion from the top documents), ``{"rocchio": {}}`` (the query vector
        moved towards the top documents'), both, each with its settings (``{"rm3": {"docs":
        10, "terms": 10, "original_weight": 0.5}, "rocchio": {"docs": 3, "beta": 0.5}}``);
        ``{}`` turns off the collection's; None: the collection's (off unless set).
        """
        results = SearchResults._of(
            self._native.search(
                _request(query, k, mode, filter, fields, offset, fusion, explain, vector, prf),
                None if rerank is None else rerank._native,
                rerank_depth,
                rerank_weight,
            )
        )
        return results

    def rank(
        self,
        query: str = "",
        k: int = 10,
        *,
        mode: Optional[str] = None,
        filter: Optional[Filter] = None,
        offset: int = 0,
        fusion: Optional[Mapping[str, Any]] = None,
        vector: Any = None,
        prf: Optional[Mapping[str, Any]] = None,
    ) -> List[Tuple[str, float]]:
        """The same ranking as `search`, as ``(id, score)`` pairs only: no stored document is
        read for titles and snippets, so a deep `k` (a first stage for your own reranker)
        costs what ranking costs."""
        request = _request(query, k, mode, filter, None, offset, fusion, False, vector, prf)
        return [(i, s) for i, s in json.loads(self._native.rank(request))]

    def search_batch(self, searches: Sequence[Mapping[str, Any]]) -> List[SearchResults]:
        """Many searches on one commit, each a dict of `search`'s arguments (``{"query": ...,
        "k": 5, "filter": ...}``); the queries the model must encode are encoded together.
        Each answer equals the single search's. One bad search raises, naming its position
        (``searches[i]``)."""
        requests = []
        for s in searches:
            s = dict(s)
            requests.append(
                _request(
                    s.pop("query", ""),
                    s.pop("k", 10),
                    s.pop("mode", None),
                    s.pop("filter", None),
                    s.pop("fields", None),
                    s.pop("offset", 0),
                    s.pop("fusion", None),
                    s.pop("explain", False),
                    s.pop("vector", None),
                    s.pop("prf", None),
                )
            )
            if s:
                raise InvalidRequest(f"searches[{len(requests) - 1}]: unknown keys {sorted(s)}")
        return [SearchResults._of(a) for a in self._native.search_batch(requests)]

    def evaluate(
        self,
        dataset: str,
        split: str = "test",
        *,
        mode: Optional[str] = None,
        filter: Optional[Filter] = None,
        fusion: Optional[Mapping[str, Any]] = None,
        prf: Optional[Mapping[str, Any]] = None,
    ) -> Dict[str, Any]:
        """nDCG@10, Recall@100 and MRR@10 over the judged queries of `dataset` (a BEIR
        folder, SQuAD JSON or TREC files) in `split`, searched with `mode`, `filter`, `fusion`
        and `prf` as `search` takes them."""
        template = _request("", 10, mode, filter, None, 0, fusion, False, None, prf)
        return json.loads(self._native.evaluate(str(dataset), split, template))


    def tune(self, dataset: str, split: str = "train", *, dry_run: bool = False) -> Dict[str, Any]:
        """Tunes the hybrid fusion on the judged queries of `dataset` in `split` (the grid of
        ``hybrid-search tune``) and, unless `dry_run`, saves the best as the collection's
        default. Returns ``{"best": {"fusion", "ndcg@10", "recall@100", "mrr@10"}, "tried",
        "queries", "saved"}``."""
        return json.loads(self._native.tune(str(dataset), split, dry_run))


class Reranker:
    """A cross-encoder reranker: a directory written by ``hybrid-search train-reranker``
    (BERT with a one-logit head), run in int8. Pass it to `Collection.search(rerank=...)`."""

    def __init__(self, native: "_native.PyReranker") -> None:
        self._native = native

    @staticmethod
    def load(path: str) -> "Reranker":
        """Loads the cross-encoder directory."""
        return Reranker(_native.PyReranker.load(str(path)))


class Encoder:
    """A dense encoder (BERT family or a decoder LLM's last hidden state) on the CPU, int8 by
    default: the engine's own, to reuse in your pipeline."""

    def __init__(self, native: "_native.PyEncoder") -> None:
        self._native = native

    @staticmethod
    def load(path: str) -> "Encoder":
        """Loads a model folder, or the one of that name under ``models/``."""
        return Encoder(_native.PyEncoder.load(str(path)))

    @property
    def dim(self) -> int:
        """Dimensions of each vector."""
        return self._native.dim

    def encode(
        self, texts: Union[str, Sequence[str]], kind: str = "passage", batch_size: int = 32
    ) -> "Any":
        """Embeds `texts` as a ``numpy.ndarray`` of float32, shape ``(len(texts), dim)``,
        normalised when the model says so; `kind` (``passage`` or ``query``) picks the
        model's prefix (E5's ``passage: ``/``query: ``)."""
        if isinstance(texts, str):
            texts = [texts]
        return self._native.encode(list(texts), kind, batch_size)
