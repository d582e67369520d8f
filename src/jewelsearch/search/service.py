"""The search service: what the CLI and the server call.

A thin facade: each method hands its request to one module of this package, all of them
sharing one ``ServiceState`` (catalog store, encoder, FAISS index, recognizer, locks):

- ``items``: add, update, delete and read items and their image files;
- ``maintenance``: save and rebuild the index, re-embed, model mismatch, statistics;
- ``query``: text, image, item and image + text search, similar items;
- ``recognition``: recognise a photo, label its pieces, explain a match;
- ``recommendations``: per-shopper recommendations and their caches;
- ``events``: record and import shopper events;
- ``erasure``: forget a shopper: their events and every signal built from them.

All collaborators are passed in; ``search.wiring.open_service`` wires them from settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Collection, Iterable, Iterator, Mapping, Sequence

from jewelsearch.embed import Encoder
from jewelsearch.embed.instance import InstanceHead
from jewelsearch.embed.query_text_runtime import QueryTextTower
from jewelsearch.embed.text_cache import TextVectorCache
from jewelsearch.index import IndexManifest, VectorIndex
from jewelsearch.index.rerank import METHODS as RERANK_METHODS
from jewelsearch.index.sync import open_index
from jewelsearch.ingest.guess_again import GuessReport
from jewelsearch.ingest.pipeline import Ingestor, IngestResult, NewItem
from jewelsearch.ingest.tower_runtime import TowerRuntime
from jewelsearch.query import Glossary, default_glossary
from jewelsearch.recognize.localizer import Localizer
from jewelsearch.recognize.query_region import SEARCH_DEFAULT_REGION
from jewelsearch.recognize.recognizer import Recognizer
from jewelsearch.recommend import AttributeTable, BlendWeights, CollaborativeSignals
from jewelsearch.search import browse as catalog_pages
from jewelsearch.search import erasure
from jewelsearch.search import events as event_log
from jewelsearch.search import items as catalog_items
from jewelsearch.search import maintenance, recognition
from jewelsearch.search import query as searching
from jewelsearch.search import suggest
from jewelsearch.search.items import HIDDEN_FIELDS, public_item
from jewelsearch.search.options import HybridSettings, IndexSettings, Limits, RecommendationSettings
from jewelsearch.search.params import Filters
from jewelsearch.search.query import Box
from jewelsearch.search.instance_space import open_instance_space
from jewelsearch.search import item_text_space
from jewelsearch.search.item_text_space import open_item_text_space
from jewelsearch.search.blended_space import open_blended_space
from jewelsearch.search.ranking_columns import RankingColumnsKeeper
from jewelsearch.search.recommendations import Recommendations
from jewelsearch.search.state import BlendedSpace, InstanceSpace, ItemTextSpace, ServiceState
from jewelsearch.storage import Catalog

__all__ = ["SearchService", "Limits", "IndexSettings", "RecommendationSettings", "HIDDEN_FIELDS",
           "public_item"]


class _Shared:
    """An attribute of the service that lives on one of its parts (``holder``): reading or
    assigning it on the service reads or assigns the part's, so a test that swaps
    ``service.localizer`` or a rebuild that swaps the index is seen by every module."""

    def __init__(self, holder: str):
        self.holder = holder

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, service: Any, owner: type | None = None) -> Any:
        if service is None:
            return self
        return getattr(getattr(service, self.holder), self.name)

    def __set__(self, service: Any, value: Any) -> None:
        setattr(getattr(service, self.holder), self.name, value)


class SearchService:
    catalog: Catalog = _Shared("state")
    encoder: Encoder = _Shared("state")
    index_dir: Path = _Shared("state")
    limits: Limits = _Shared("state")
    index_settings: IndexSettings = _Shared("state")
    text_vectors: TextVectorCache = _Shared("state")
    ingestor: Ingestor = _Shared("state")
    index: VectorIndex = _Shared("state")
    manifest: IndexManifest = _Shared("state")
    rebuilt_on_open: bool = _Shared("state")
    recognizer: Recognizer | None = _Shared("state")
    localizer: Localizer | None = _Shared("state")
    hybrid: HybridSettings = _Shared("state")
    instance: InstanceSpace | None = _Shared("state")
    item_text: ItemTextSpace | None = _Shared("state")
    blended: BlendedSpace | None = _Shared("state")
    rerank: str = _Shared("state")
    # The recommendation settings, read where the CLI and tests read them.
    blend_weights: BlendWeights = _Shared("recommendation_settings")
    half_life_days: float = _Shared("recommendation_settings")
    popularity_half_life_days: float = _Shared("recommendation_settings")
    signals_refresh_seconds: float = _Shared("recommendation_settings")
    recently_seen_days: float = _Shared("recommendation_settings")
    visit_half_life_hours: float = _Shared("recommendation_settings")

    def __init__(self, catalog: Catalog, encoder: Encoder, index_dir: Path, *,
                 limits: Limits | None = None, index_settings: IndexSettings | None = None,
                 recommendation: RecommendationSettings | None = None,
                 recognizer: Recognizer | None = None, localizer: Localizer | None = None,
                 text_cache_size: int = 4096, instance_head: InstanceHead | None = None,
                 rerank: str = "none", item_text_vectors: bool = True, hybrid: HybridSettings | None = None,
                 draft_decode: bool = False, blended_index: bool = True,
                 query_encoder: Encoder | QueryTextTower | None = None,
                 text_vectors: TextVectorCache | None = None, tower_runtime: TowerRuntime | None = None,
                 glossary: Glossary | None = None):
        """``instance_head`` (``InstanceHead.load``) gives every item a second, instance vector,
        stored, indexed and used to rank image queries; None keeps one vector per item.
        ``rerank`` is the image queries' default re-ranking (``index/rerank.py``).
        ``item_text_vectors`` makes, stores and indexes a text vector per item with words
        (``embed/item_text.py``); ``hybrid.text_field_weight`` says how much text search uses it.
        ``blended_index`` (with text vectors and a weight above 0) keeps the index over the two
        blended with that weight (``search/blended_space.py``), which text queries then search
        instead of the two indexes apart. ``query_encoder`` encodes query texts in place of
        ``encoder`` (``embed/query_tower.py``: the same model with an int8 text tower;
        ``embed/query_text_runtime.py``: its tower on torch or OpenVINO).
        ``text_vectors``: a query-text vector cache of that encoder to keep (a replica reopening
        its home); by default a new one. ``tower_runtime`` picks what runs ingest's tower pass
        (``ingest/tower_runtime.py``); None: torch. ``glossary``: what text queries are read
        against (``query/glossary.py``); None: the packaged glossaries."""
        if rerank not in RERANK_METHODS:
            raise ValueError(f"rerank must be one of {', '.join(RERANK_METHODS)}")
        limits = limits or Limits()
        index_settings = index_settings or IndexSettings()
        query_encoder = query_encoder or encoder
        self.query_encoder = query_encoder  # serve may switch its runtime (``wiring.serve_query_texts``)
        if text_vectors is None:
            text_vectors = TextVectorCache(query_encoder.encode_texts, text_cache_size,
                                           max_chars=query_encoder.max_text_chars)
        ingestor = Ingestor(catalog, encoder, max_bytes=limits.max_upload_bytes,
                            max_pixels=limits.max_image_pixels, recognizer=recognizer, instance_head=instance_head,
                            item_text_vectors=item_text_vectors, draft_decode=draft_decode,
                            tower_runtime=tower_runtime)
        index_dir = Path(index_dir)
        index, manifest, rebuilt_on_open = open_index(
            catalog, index_dir, encoder.model_id, encoder.dim, kind=index_settings.kind,
            memory_budget_bytes=index_settings.memory_budget_bytes, persist=index_settings.persist,
            accept_behind=index_settings.accept_saved_behind_store)
        instance = open_instance_space(catalog, index_dir, encoder.model_id, instance_head, index_settings) \
            if instance_head is not None else None
        item_text = open_item_text_space(catalog, index_dir, encoder.model_id, encoder.dim, index_settings) \
            if item_text_vectors else None
        hybrid = hybrid or HybridSettings()
        blended = open_blended_space(catalog, index_dir, encoder.model_id, item_text.key, encoder.dim,
                                     hybrid.text_field_weight, index_settings) \
            if blended_index and item_text is not None and hybrid.text_field_weight > 0 else None
        self.state = ServiceState(
            catalog=catalog, encoder=encoder, index_dir=index_dir, limits=limits,
            index_settings=index_settings, text_vectors=text_vectors, ingestor=ingestor, index=index,
            manifest=manifest, rebuilt_on_open=rebuilt_on_open, recognizer=recognizer, localizer=localizer,
            instance=instance, rerank=rerank, item_text=item_text, hybrid=hybrid, blended=blended,
            glossary=glossary or default_glossary())
        self.state.mismatch = maintenance.find_model_mismatch(self.state)
        self.recommendations = Recommendations(self.state, recommendation or RecommendationSettings())

    def keep_ranking_columns(self) -> None:
        """Hold the fields text queries rank by in memory (``search/ranking_columns.py``), for a
        process that answers many queries; the first full read starts now, in the background. A
        one-off command does not: reading every item would cost it more than it saves."""
        if self.state.ranking_columns is None:
            self.state.ranking_columns = RankingColumnsKeeper(self.catalog.items)
        self.state.ranking_columns.current()

    @property
    def recommendation_settings(self) -> RecommendationSettings:
        return self.recommendations.settings

    # ----- state and the index (search/maintenance.py) ----------------------
    def other_model_embeddings(self) -> dict[str, int]:
        return maintenance.other_model_embeddings(self.state)

    def missing_embeddings(self) -> int:
        return maintenance.missing_embeddings(self.state)

    def check_model(self) -> None:
        maintenance.check_model(self.state)

    def stats(self) -> dict[str, Any]:
        return maintenance.stats(self.state)

    def items_to_embed(self) -> list[int]:
        """Items a rebuild would re-embed: no embedding, or no instance vector, for this model."""
        return maintenance.items_to_embed(self.state)

    def missing_item_text_vectors(self) -> list[int]:
        """Items with words of their own but no text vector (a rebuild embeds them)."""
        return item_text_space.missing_item_text_vectors(self.state)

    def save(self, force: bool = False) -> IndexManifest | None:
        return maintenance.save(self.state, force)

    def rebuild_index(self, *, reembed: bool = True,
                      progress: Callable[[int], Any] | None = None) -> IndexManifest:
        return maintenance.rebuild_index(self.state, reembed=reembed, progress=progress)

    # ----- items (search/items.py) ------------------------------------------
    def add_items(self, items: list[NewItem], *, skip_bad: bool = False,
                  job_photos: int | None = None) -> list[IngestResult]:
        return catalog_items.add_items(self.state, items, skip_bad=skip_bad, job_photos=job_photos)

    def ingest_batches(self, batches: Iterable[list[NewItem]], *, decode_workers: int = 2,
                       photos: int | None = None) -> Iterator[tuple[list[NewItem], list[IngestResult]]]:
        return catalog_items.ingest_batches(self.state, batches, decode_workers=decode_workers, photos=photos)

    def update_item(self, item_id: Any, fields: Mapping[str, Any], image_bytes: bytes | None = None) -> dict:
        return catalog_items.update_item(self.state, item_id, fields, image_bytes)

    def guess_again(self, item_ids: Sequence[Any] | None = None, *, batch: int = 32,
                    progress: Callable[[GuessReport], None] | None = None) -> GuessReport:
        """Recognition run again over items in the catalog (``search/items.py``)."""
        return catalog_items.guess_again(self.state, item_ids, batch=batch, progress=progress)

    def delete_item(self, item_id: Any) -> None:
        catalog_items.delete_item(self.state, item_id)

    def get_item(self, item_id: Any) -> dict[str, Any]:
        return catalog_items.get_item(self.state.catalog, item_id)

    def browse(self, filters: Filters | None = None, *, sort: str = "oldest", limit: int = 50, offset: int = 0,
               facets: bool = False) -> dict[str, Any]:
        """A page of the catalog the filters allow, in ``sort`` order (``search/browse.py``)."""
        keeper = self.state.ranking_columns
        return catalog_pages.browse(self.state.catalog, filters, sort=sort, limit=limit, offset=offset,
                                    facets=facets, columns=keeper.current() if keeper is not None and facets else None)

    def image_file(self, item_id: Any) -> Path:
        return catalog_items.image_file(self.state.catalog, item_id)

    # ----- search (search/query.py) -----------------------------------------
    def suggest(self, text: str, limit: int = 6) -> dict[str, Any]:
        """Completions of the word being typed (``search/suggest.py``)."""
        return {"suggestions": suggest.suggestions(self.catalog.lexical, self.state.glossary, text, limit)}

    def query(self, *, text: str | None = None, image_bytes: bytes | None = None,
              item_id: Any = None, k: int = 10, filters: Filters | None = None,
              text_weight: float = 0.5, region: str = SEARCH_DEFAULT_REGION, box: Box | None = None,
              collapse: bool = True, dropped: Collection[str] = (), rerank: str | None = None,
              offset: int = 0) -> dict[str, Any]:
        return searching.query(self.state, text=text, image_bytes=image_bytes, item_id=item_id, k=k,
                               filters=filters, text_weight=text_weight, region=region, box=box,
                               collapse=collapse, dropped=dropped, rerank=rerank, offset=offset)

    def similar(self, item_id: Any, k: int = 10, filters: Filters | None = None,
                rerank: str | None = None, offset: int = 0) -> dict[str, Any]:
        return searching.similar(self.state, item_id, k=k, filters=filters, rerank=rerank, offset=offset)

    # ----- recognition and explanations (search/recognition.py) -------------
    def recognize(self, image_bytes: bytes, subject: str = "piece") -> dict[str, Any]:
        return recognition.recognize(self.state, image_bytes, subject)

    def explain(self, item_id: Any, *, query_item: Any = None, text: str | None = None,
                image_bytes: bytes | None = None, region: str = "auto", box: Box | None = None) -> dict[str, Any]:
        return recognition.explain(self.state, item_id, query_item=query_item, text=text,
                                   image_bytes=image_bytes, region=region, box=box)

    # ----- events (search/events.py) ----------------------------------------
    def record_event(self, raw: Mapping[str, Any]) -> int:
        return event_log.record_event(self.state.catalog, raw)

    def import_events(self, rows, *, skip_invalid: bool = False, batch: int = event_log.IMPORT_BATCH) -> dict[str, Any]:
        return event_log.import_events(self.state.catalog, rows, skip_invalid=skip_invalid, batch=batch)

    # ----- erasure (search/erasure.py) --------------------------------------
    def forget_user(self, user_id: Any) -> dict[str, Any]:
        def drop_caches():
            self.recommendations.drop_signals()
            self.recommendations.drop_factors()
        return erasure.forget_user(self.state.catalog, user_id, drop_caches)

    # ----- recommendations (search/recommendations.py) ----------------------
    def collaborative_signals(self) -> CollaborativeSignals:
        return self.recommendations.collaborative_signals()

    def attribute_table(self) -> AttributeTable:
        return self.recommendations.attribute_table()

    def recommend(self, user_id: str, k: int = 10, *, filters: Filters | None = None,
                  text: str | None = None, seed_items: list[Any] | None = None,
                  exclude_seen: bool = False) -> dict[str, Any]:
        return self.recommendations.recommend(user_id, k, filters=filters, text=text, seed_items=seed_items,
                                              exclude_seen=exclude_seen)
