"""A LlamaIndex retriever over a hybrid-search collection (needs ``llama-index-core``:
``pip install "hybrid-search[llama-index]"``).

    from hybrid_search import Collection
    from hybrid_search.llama_index import HybridSearchRetriever

    retriever = HybridSearchRetriever(Collection.open("data/scifact"), k=5)
    nodes = retriever.retrieve("IL-6 in sepsis")

Each `NodeWithScore` holds a `TextNode` (id = the document id, text = title and text,
metadata = title, the hit's fields and, with ``explain=True``, each leg's rank and score) and
the hit's score.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from . import Collection


class HybridSearchRetriever(BaseRetriever):
    """LlamaIndex's `BaseRetriever` over `Collection.search` (arguments as
    `hybrid_search.langchain.HybridSearchRetriever`'s)."""

    def __init__(
        self,
        collection: Collection,
        k: int = 4,
        *,
        mode: Optional[str] = None,
        filter: Optional[Dict[str, Any]] = None,
        fields: Sequence[str] = ("*",),
        fusion: Optional[Dict[str, Any]] = None,
        explain: bool = False,
        **kwargs: Any,
    ) -> None:
        self._collection = collection
        self._k = k
        self._mode = mode
        self._filter = filter
        self._fields = list(fields)
        self._fusion = fusion
        self._explain = explain
        super().__init__(**kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> List[NodeWithScore]:
        hits = self._collection.search(
            query_bundle.query_str,
            self._k,
            mode=self._mode,
            filter=self._filter,
            fields=["text", *self._fields],
            fusion=self._fusion,
            explain=self._explain,
        )
        return [
            NodeWithScore(
                node=TextNode(id_=hit.id, text=hit.content(), metadata=hit.metadata()),
                score=hit.score,
            )
            for hit in hits
        ]
