"""Build a ready SearchService from Settings (used by ``cli.py`` and ``create_app`` only)."""

from __future__ import annotations

import logging

import torch

from .config import Settings
from .embed import load_encoder
from .embed.heads import AttributeHeads
from .embed.localizer import Localizer
from .embed.recognize import Recognizer
from .search import Limits, SearchService
from .storage import Catalog

log = logging.getLogger(__name__)


def open_service(settings: Settings) -> SearchService:
    if settings.torch_threads > 0:
        torch.set_num_threads(settings.torch_threads)
    settings.home.mkdir(parents=True, exist_ok=True)
    encoder = load_encoder(settings.model, settings.pretrained, batch_size=settings.batch_size,
                           max_text_chars=settings.max_text_chars)
    heads = AttributeHeads.load(encoder.folder) if encoder.folder is not None else None
    recognizer = Recognizer(encoder, heads)
    catalog = Catalog.open(settings.db_path, settings.images_dir)
    limits = Limits(max_upload_bytes=settings.max_upload_bytes,
                    max_image_pixels=settings.max_image_pixels,
                    max_text_chars=settings.max_text_chars, max_k=settings.max_k)
    return SearchService(catalog, encoder, settings.index_dir, limits=limits,
                         index_kind=settings.index_kind,
                         memory_budget_bytes=settings.index_memory_budget_mb << 20,
                         recognizer=recognizer, localizer=Localizer.load(encoder, encoder.folder))
