"""A LangChain retriever over a hybrid-search collection (needs ``langchain-core``:
``pip install "hybrid-search[langchain]"``).

    from hybrid_search import Collection
    from hybrid_search.langchain import HybridSearchRetriever

    retriever = HybridSearchRetriever(collection=Collection.open("data/scifact"), k=5,
                                      filter={"field": "source", "eq": "pubmed"})
    docs = retriever.invoke("IL-6 in sepsis")

Each `Document` holds the hit's full text (title and text) as ``page_content`` and, in
``metadata``: ``id``, ``title``, ``score``, the hit's fields, and with ``explain=True`` each
leg's rank and score (``legs``).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from . import Collection


class HybridSearchRetriever(BaseRetriever):
    """LangChain's `BaseRetriever` over `Collection.search`: `k` hits, in `mode` (the
    collection's default when None), restricted by `filter`, with the fusion overrides in
    `fusion`; `fields` names the document fields copied into each `Document`'s metadata
    (``["*"]``, the default: all)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    collection: Collection
    k: int = 4
    mode: Optional[str] = None
    filter: Optional[Dict[str, Any]] = None
    fields: Sequence[str] = ("*",)
    fusion: Optional[Dict[str, Any]] = None
    explain: bool = False

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> List[Document]:
        hits = self.collection.search(
            query,
            self.k,
            mode=self.mode,
            filter=self.filter,
            fields=["text", *self.fields],
            fusion=self.fusion,
            explain=self.explain,
        )
        return [
            Document(page_content=hit.content(), metadata=hit.metadata(), id=hit.id)
            for hit in hits
        ]
