"""What the search modules share: the collaborators and the state that changes while serving.

One ``ServiceState`` per ``SearchService``. The server calls the service from several
threads, so the rules for the changing parts are:

- ``index`` is swapped by one reference assignment (a rebuild, a compaction); a reader takes
  it once per request and sees the old or the new index, never half of one.
- ``index``, ``manifest``, ``dirty`` and ``mismatch`` change only under ``write_lock``
  (re-entrant: a rebuild saves while holding it). Reads take no lock.
- ``recognizer`` and ``localizer`` are read per request, so replacing them takes effect on
  the next one (the ingestor keeps the recognizer it was built with).
- ``instance`` (the second, instance vector per item, where the model has an instance head)
  is replaced whole, like ``index``, and changes only under ``write_lock``; its index takes
  adds and removes in place, as ``index`` does.
- ``item_text`` (the item text vectors' index) follows the same rules as ``instance``, and so
  does ``blended`` (the index over image and text vectors blended with ``text_field_weight``).
- ``helpers`` runs a request's side work beside it (a text query's word side, the filters, word
  index, rows and counts, while the request thread runs the text tower; an image query's recognition top beside the tower's own
  blocks, and its whole-photo search beside the pieces' tower pass). A task reads nothing that
  changes under it and never waits on another task, so a request waiting on one always gets its
  answer (when more tasks are out than threads, some wait in the queue, never on each other).
"""

from __future__ import annotations

import threading
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from jewelsearch.embed import Encoder
from jewelsearch.embed.instance import InstanceHead
from jewelsearch.embed.text_cache import TextVectorCache
from jewelsearch.index import IndexManifest, VectorIndex
from jewelsearch.ingest.pipeline import Ingestor
from jewelsearch.query.glossary import Glossary, default_glossary
from jewelsearch.recognize.localizer import Localizer
from jewelsearch.recognize.recognizer import Recognizer
from jewelsearch.search.ranking_columns import RankingColumnsKeeper
from jewelsearch.search.options import HybridSettings, IndexSettings, Limits
from jewelsearch.storage import Catalog


HELPER_THREADS = 8  # the server's default request threads (``server_threads``)


@dataclass(frozen=True)
class InstanceSpace:
    """The instance vectors: the head that makes them, their storage key
    (``storage.embeddings.space_key``), their index and its manifest, and whether every item with
    a text-aligned embedding also has an instance vector. Image queries rank by this space only
    when it is ``complete``: a catalog embedded before the head existed searches as before until
    ``jewelsearch index rebuild`` fills it in (the service's own writes keep it complete)."""

    head: InstanceHead
    key: str
    index: VectorIndex
    manifest: IndexManifest
    complete: bool


@dataclass(frozen=True)
class ItemTextSpace:
    """The item text vectors (``embed/item_text.py``): their storage key, their index and its
    manifest. Items the shop gave no words for have no vector and are not in the index."""

    key: str
    index: VectorIndex
    manifest: IndexManifest


@dataclass(frozen=True)
class BlendedSpace:
    """The blended vectors (``search/blended_space.py``): their manifest key, the weight they were
    blended with, the storage keys of the image and text vectors they are made of, their index
    and its manifest. Every item with an image vector is in the index."""

    key: str
    weight: float
    image_key: str
    text_key: str
    index: VectorIndex
    manifest: IndexManifest


@dataclass
class ServiceState:
    catalog: Catalog
    encoder: Encoder
    index_dir: Path
    limits: Limits
    index_settings: IndexSettings
    text_vectors: TextVectorCache
    ingestor: Ingestor
    index: VectorIndex
    manifest: IndexManifest
    rebuilt_on_open: bool
    recognizer: Recognizer | None = None
    localizer: Localizer | None = None
    mismatch: str | None = None  # why searching would be wrong (items embedded by another model)
    dirty: bool = False  # the index changed since it was last saved
    write_lock: threading.RLock = field(default_factory=threading.RLock)
    hybrid: HybridSettings = field(default_factory=HybridSettings)  # replaced whole, never mutated
    glossary: Glossary = field(default_factory=default_glossary)  # what text queries are read against
    # The item fields text queries rank by, in memory (None: they read rows from the store).
    ranking_columns: RankingColumnsKeeper | None = None
    instance: InstanceSpace | None = None  # None: one vector per item (towers without an instance head)
    rerank: str = "none"  # image queries' default re-ranking (``index/rerank.py``)
    item_text: ItemTextSpace | None = None  # None: text search compares queries with photos only
    blended: BlendedSpace | None = None  # None: text search searches the image and text indexes apart
    # Threads start on demand and exit once the service is gone; one per request thread. A
    # request has at most two tasks out at a time (an image query's whole-photo search and its
    # recognition top); a task never waits on another, so a queued one only waits its turn.
    helpers: Executor = field(default_factory=lambda: ThreadPoolExecutor(
        max_workers=HELPER_THREADS, thread_name_prefix="jewelsearch-helper"))
