"""Build a ready SearchService from Settings (used by ``cli.py`` and ``create_app`` only)."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any, Mapping

import torch

from jewelsearch.config import Settings
from jewelsearch.embed import load_encoder
from jewelsearch.embed.dense_features import supports_dense_features
from jewelsearch.embed.encoder import Encoder
from jewelsearch.embed.instance import InstanceHead
from jewelsearch.embed.openvino_precision import PRECISIONS as INGEST_PRECISIONS
from jewelsearch.embed.model_folder import LOADERS as MODEL_LOADERS
from jewelsearch.embed.query_text_runtime import PRECISIONS as QUERY_TEXT_PRECISIONS
from jewelsearch.embed.query_text_runtime import RUNTIMES as QUERY_TEXT_RUNTIMES
from jewelsearch.embed.query_text_runtime import QueryTextTower
from jewelsearch.index.rerank import METHODS as RERANK_METHODS
from jewelsearch.ingest.tower_runtime import RUNTIMES as INGEST_RUNTIMES
from jewelsearch.ingest.tower_runtime import TowerRuntime
from jewelsearch.recognize.builder import load_recognizer
from jewelsearch.recognize.recognizer import Recognizer
from jewelsearch.query import Glossary, GlossaryError, default_glossary, load_glossary
from jewelsearch.recommend import BlendWeights
from jewelsearch.search.options import HybridSettings, IndexSettings, Limits, RecommendationSettings
from jewelsearch.search.service import SearchService
from jewelsearch.storage import Catalog
from jewelsearch.storage.events import EVENT_KINDS

log = logging.getLogger(__name__)


class SettingsError(ValueError):
    """A setting that cannot be used (event weights, blend, cache size)."""


def serving_torch_threads(settings: Settings, cpus: int | None = None) -> int:
    """Torch's intra-op threads while serving: ``torch_threads`` when set, else the cores
    shared out among the server's request threads (at least one each).

    Requests run on the server's worker threads, never on the main thread, and there torch's
    OpenMP pool with both cores of the 2-core VM was slower than one thread: side by side over
    HTTP, one thread took 0.82x the text query time and 0.88x the image query time, and served
    1.12x the queries of 4 concurrent clients (benchmarks/bench_serve_threads.py,
    docs/benchmarks.md). Concurrent requests use the other cores anyway."""
    if settings.torch_threads > 0:
        return settings.torch_threads
    cpus = cpus or os.cpu_count() or 1
    return max(1, cpus // max(1, settings.server_threads))


def use_serving_threads(settings: Settings) -> int:
    """Set torch's intra-op threads for serving (``serving_torch_threads``); returns the count."""
    threads = serving_torch_threads(settings)
    torch.set_num_threads(threads)
    return threads


def open_service(settings: Settings, models_from: SearchService | None = None, *,
                 read_only: bool = False, saved_behind_ok: bool = False) -> SearchService:
    """The service for ``settings``; ``models_from`` (a service opened on the same settings'
    model) lends its loaded encoder, instance head and recognizer, so a replica that opens a
    fresh copy of its home does not load the model again, and its query-text vector cache (the
    same model makes the same vectors, so a reopened replica keeps its warm cache), and its in-memory ranking columns, brought up to date rather than read again. ``read_only``: the home is written
    by another process (a local read replica), so an index that lags the store is rebuilt in
    memory and never saved, unless ``saved_behind_ok``: the writer's latest save is used as it
    is even where the store has moved on since (a reader that asked for that save)."""
    if not 0.0 <= settings.text_field_weight <= 1.0:
        raise SettingsError("text_field_weight must be between 0 and 1")
    if settings.text_cache_size < 0:
        raise SettingsError("text_cache_size must be 0 or more")
    if settings.rerank not in RERANK_METHODS:
        raise SettingsError(f"rerank must be one of {', '.join(RERANK_METHODS)}")
    if settings.ingest_runtime not in INGEST_RUNTIMES:
        raise SettingsError(f"ingest_runtime must be one of {', '.join(INGEST_RUNTIMES)}")
    if settings.text_query_runtime not in QUERY_TEXT_RUNTIMES:
        raise SettingsError(f"text_query_runtime must be one of {', '.join(QUERY_TEXT_RUNTIMES)}")
    if settings.text_query_precision not in QUERY_TEXT_PRECISIONS:
        raise SettingsError(f"text_query_precision must be one of {', '.join(QUERY_TEXT_PRECISIONS)}")
    if settings.text_query_runtime == "openvino" and settings.text_query_int8:
        raise SettingsError("text_query_int8 and text_query_runtime = openvino exclude each other: "
                            "choose one runtime for query texts")
    if settings.ingest_precision not in INGEST_PRECISIONS:
        raise SettingsError(f"ingest_precision must be one of {', '.join(INGEST_PRECISIONS)}")
    if settings.model_loader not in MODEL_LOADERS:
        raise SettingsError(f"model_loader must be one of {', '.join(MODEL_LOADERS)}")
    # Before the model loads: a glossary file that cannot be used fails the start at once.
    glossary = models_from.state.glossary if models_from is not None else glossary_for(settings)
    if settings.torch_threads > 0:
        torch.set_num_threads(settings.torch_threads)
    settings.home.mkdir(parents=True, exist_ok=True)
    if models_from is not None:
        encoder, recognizer = models_from.encoder, models_from.recognizer
        instance_head = models_from.instance.head if models_from.instance is not None else None
    else:
        encoder = load_encoder(settings.model, settings.pretrained, batch_size=settings.batch_size,
                               max_text_chars=settings.max_text_chars, loader=settings.model_loader)
        # The instance head reads the tower's own maps; towers without them keep one vector per item.
        instance_head = InstanceHead.load(encoder.folder, encoder.model.visual) if settings.instance_vectors else None
        # Serving only reads the frozen tower, so its batch norms can join the convolutions (faster).
        recognizer = load_recognizer(encoder, fold_for_serving=True)
    localizer = recognizer.localizer
    catalog = Catalog.open(settings.db_path, settings.images_dir,
                           event_weights=event_weights(settings.event_weights))
    limits = Limits(max_upload_bytes=settings.max_upload_bytes,
                    max_image_pixels=settings.max_image_pixels,
                    max_text_chars=settings.max_text_chars, max_k=settings.max_k)
    index_settings = IndexSettings(kind=settings.index_kind,
                                   memory_budget_bytes=settings.index_memory_budget_mb << 20, persist=not read_only,
                                   accept_saved_behind_store=read_only and saved_behind_ok)
    recommendation = RecommendationSettings(
        blend_weights=blend_weights(settings.blend), half_life_days=settings.half_life_days,
        popularity_half_life_days=settings.popularity_half_life_days,
        recently_seen_days=settings.recently_seen_days,
        visit_half_life_hours=settings.visit_half_life_hours)
    # A reopened home keeps the query-text cache and the query encoder it calls (its runtime too).
    query_encoder = models_from.query_encoder if models_from is not None else None
    if query_encoder is None:
        query_encoder = encoder
        if settings.text_query_int8:
            from jewelsearch.embed.query_tower import int8_query_encoder  # torch.ao only when asked for
            try:
                query_encoder = int8_query_encoder(encoder)
            except ValueError as exc:
                raise SettingsError(f"text_query_int8: {exc}") from None
        query_encoder = QueryTextTower(query_encoder)
    service = SearchService(catalog, encoder, settings.index_dir, limits=limits, index_settings=index_settings,
                         recommendation=recommendation, recognizer=recognizer, localizer=localizer,
                         text_cache_size=settings.text_cache_size, instance_head=instance_head,
                         rerank=settings.rerank, item_text_vectors=settings.text_field_weight > 0,
                         hybrid=HybridSettings(text_field_weight=settings.text_field_weight),
                         draft_decode=settings.ingest_draft_decode, query_encoder=query_encoder,
                         text_vectors=models_from.state.text_vectors if models_from is not None else None,
                         tower_runtime=ingest_tower_runtime(settings, encoder, recognizer),
                         glossary=glossary)
    if models_from is not None and models_from.state.ranking_columns is not None:
        # A reopened service (a replica following its writer) goes on from the columns it had.
        service.state.ranking_columns = models_from.state.ranking_columns.moved_to(catalog.items)
    return service


def serve_query_texts(settings: Settings, service: SearchService, *, streams: int = 1, pinned: bool = False) -> str:
    """Give a long-running server's query texts the runtime ``settings.text_query_runtime``
    asks for: "openvino" opens OpenVINO's text tower now, "auto" on a background thread (torch
    answers meanwhile), "torch" (or ``text_query_int8``) leaves torch. The runtime in use when
    this returns. The tower runs on ``serving_torch_threads`` threads, as torch's does, in one
    stream whose threads are not pinned to cores (``embed/openvino_text.py`` says why; ``streams``
    and ``pinned`` are for benchmarks)."""
    tower = service.query_encoder
    if settings.text_query_runtime == "torch" or settings.text_query_int8 or not isinstance(tower, QueryTextTower):
        return "torch"
    threads = serving_torch_threads(settings)
    root = Path(settings.openvino_cache_dir) if settings.openvino_cache_dir else None
    encoder = tower.encoder

    def open_openvino():
        from jewelsearch.embed import openvino_graph_store, openvino_text  # openvino itself only here
        return openvino_text.open_text_tower(encoder, root or openvino_graph_store.default_cache_dir(),
                                             threads=threads, streams=streams, pinned=pinned,
                                             precision=settings.text_query_precision)

    if settings.text_query_runtime == "openvino":
        return tower.open_now(open_openvino)
    tower.open_in_background(open_openvino)
    return tower.runtime


def ingest_tower_runtime(settings: Settings, encoder: Encoder, recognizer: Recognizer | None) -> TowerRuntime:
    """What runs ingest's tower pass (``settings.ingest_runtime``, OpenVINO's graphs compiled in
    ``settings.ingest_precision``): OpenVINO is imported and its graphs read or converted only
    once an ingest job asks for it. Ray ingest's actors open their services from the same
    settings, so they compile in the same precision as a local ingest on the same CPU."""
    visual = encoder.model.visual
    if not supports_dense_features(visual):  # ingest makes no tower pass of its own there
        return TowerRuntime("torch", None)
    top = recognizer.recognition_top if recognizer is not None else None
    root = Path(settings.openvino_cache_dir) if settings.openvino_cache_dir else None

    def open_openvino(convert: bool):
        from jewelsearch.embed import openvino_cache  # openvino itself only when a job asks for it
        return openvino_cache.open_tower(visual, top, int(encoder.preprocess.size), encoder.model_id,
                                         root or openvino_cache.default_cache_dir(), convert_if_missing=convert,
                                         precision=settings.ingest_precision)

    return TowerRuntime(settings.ingest_runtime, open_openvino)


def glossary_for(settings: Settings) -> Glossary:
    """The packaged glossaries, with the shop's own folder (``glossary_dir``) where one is set;
    a file that cannot be used is a settings error naming it."""
    if not settings.glossary_dir.strip():
        return default_glossary()
    try:
        return load_glossary(extra=Path(settings.glossary_dir).expanduser())
    except GlossaryError as exc:
        raise SettingsError(f"glossary_dir: {exc}") from None


def open_catalog(settings: Settings) -> Catalog:
    """The store alone, for commands that need no model (``users forget``); an error when the
    home holds no catalog, rather than creating an empty one."""
    if not settings.db_path.exists():
        raise SettingsError(f"no catalog at {settings.db_path}; check --home or JEWELSEARCH_HOME")
    return Catalog.open(settings.db_path, settings.images_dir,
                        event_weights=event_weights(settings.event_weights))


def event_weights(overrides: Mapping[str, Any]) -> dict[str, float]:
    """The default event kinds and weights with the configured ones replacing them."""
    unknown = set(overrides) - set(EVENT_KINDS)
    if unknown:
        raise SettingsError(f"unknown event kind(s) in event_weights: {', '.join(sorted(unknown))}; "
                            f"expected some of {', '.join(EVENT_KINDS)}")
    out = dict(EVENT_KINDS)
    for kind, value in overrides.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1000:
            raise SettingsError(f"event_weights.{kind} must be a number in (0, 1000]")
        out[kind] = float(value)
    return out


def blend_weights(overrides: Mapping[str, Any]) -> BlendWeights:
    known = {f.name: f.type for f in dataclasses.fields(BlendWeights)}
    unknown = set(overrides) - set(known)
    if unknown:
        raise SettingsError(f"unknown blend setting(s): {', '.join(sorted(unknown))}; expected some of "
                            f"{', '.join(known)}")
    for name, value in overrides.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise SettingsError(f"blend.{name} must be a non-negative number")
    weights = BlendWeights(**{k: int(v) if known[k] == "int" else float(v) for k, v in overrides.items()})
    shares = ("taste", "recency", "explore", "diversity")
    if any(getattr(weights, name) > 1 for name in shares):
        raise SettingsError(f"blend.{', blend.'.join(shares)} must be between 0 and 1")
    if weights.max_interests < 1:
        raise SettingsError("blend.max_interests must be at least 1")
    return weights
