"""FAISS vector index keyed by item id: choose a kind, search with filters, persist."""

from jewelsearch.index.kinds import IndexChoice, choose_kind
from jewelsearch.index.persist import IndexManifest, describe_index, load_index, save_index
from jewelsearch.index.vector_index import VectorIndex

__all__ = ["IndexChoice", "choose_kind", "VectorIndex", "IndexManifest", "load_index", "save_index", "describe_index"]
