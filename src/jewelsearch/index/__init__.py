"""FAISS vector index keyed by item id: choose a kind, search with filters, persist."""

from .kinds import IndexChoice, choose_kind
from .vector_index import VectorIndex
from .persist import IndexManifest, load_index, save_index

__all__ = ["IndexChoice", "choose_kind", "VectorIndex", "IndexManifest", "load_index", "save_index"]
