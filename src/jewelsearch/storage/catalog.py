"""The catalog on disk: one database, its tables and the image files, together."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from jewelsearch.storage.db import Database, open_database
from jewelsearch.storage.embeddings import EmbeddingStore
from jewelsearch.storage.events import EventStore
from jewelsearch.storage.images import ImageFiles
from jewelsearch.storage.items import ItemStore
from jewelsearch.storage.lexical import LexicalIndex


@dataclass
class Catalog:
    database: Database
    items: ItemStore
    embeddings: EmbeddingStore
    events: EventStore
    images: ImageFiles
    lexical: LexicalIndex

    @classmethod
    def open(cls, db_path: Path, images_dir: Path,
             event_weights: Mapping[str, float] | None = None) -> "Catalog":
        database = open_database(db_path)
        lexical = LexicalIndex(database)
        return cls(database=database, items=ItemStore(database, lexical),
                   embeddings=EmbeddingStore(database), events=EventStore(database, event_weights),
                   images=ImageFiles(images_dir), lexical=lexical)

    def close(self) -> None:
        self.database.close()
