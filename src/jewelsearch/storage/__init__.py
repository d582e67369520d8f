"""SQLite catalog store: items, embeddings, events and image files."""

from .db import Database, open_database
from .items import ITEM_FIELDS, FILTER_FIELDS, ItemStore
from .embeddings import EmbeddingStore
from .events import EVENT_KINDS, EventStore
from .images import ImageFiles
from .catalog import Catalog

__all__ = [
    "Database", "open_database", "ITEM_FIELDS", "FILTER_FIELDS", "ItemStore",
    "EmbeddingStore", "EVENT_KINDS", "EventStore", "ImageFiles", "Catalog",
]
