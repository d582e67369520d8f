"""SQLite catalog store: items, embeddings, events, the lexical index and image files."""

from jewelsearch.storage.catalog import Catalog
from jewelsearch.storage.db import Database, open_database
from jewelsearch.storage.embeddings import EmbeddingStore
from jewelsearch.storage.events import EVENT_KINDS, EventStore
from jewelsearch.storage.images import ImageFiles
from jewelsearch.storage.items import FILTER_FIELDS, ITEM_FIELDS, ItemStore
from jewelsearch.storage.lexical import LexicalIndex
from jewelsearch.storage.lexical_tokens import lexical_tokens

__all__ = [
    "Database", "open_database", "ITEM_FIELDS", "FILTER_FIELDS", "ItemStore",
    "EmbeddingStore", "EVENT_KINDS", "EventStore", "ImageFiles", "Catalog",
    "LexicalIndex", "lexical_tokens",
]
