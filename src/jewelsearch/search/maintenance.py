"""The index's lifecycle: save, rebuild (re-embedding what this model has not embedded, and
rewriting the lexical index from the items), model-mismatch checks and catalog statistics.

With an instance head the instance index goes along: saved with the main index, rebuilt with
it, and a rebuild re-embeds (from the stored photos) the items that lack either vector, both
from one tower pass. That is how an existing catalog moves to a model with an instance head.

The item text index goes along the same way: a rebuild embeds the words of items that have
words but no text vector (a catalog ingested before text vectors, or under an earlier recipe)
and drops this model's text vectors of earlier recipes. The blended index is remade from the
stored image and text vectors after both.

Save and rebuild hold the service's write lock; a rebuild swaps each index by one reference
assignment, so searches running meanwhile see the old or the new index.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from jewelsearch.embed.instance import encode_with_instance
from jewelsearch.embed.item_text import encode_item_texts
from jewelsearch.errors import InvalidInput, ModelMismatch
from jewelsearch.index import IndexManifest, save_index
from jewelsearch.index.sync import build_from_store
from jewelsearch.search import blended_space, instance_space, item_text_space
from jewelsearch.search.state import ServiceState
from jewelsearch.storage.embeddings import space_key

log = logging.getLogger(__name__)

REEMBED_BATCH = 64  # items decoded, embedded and committed together during a rebuild
TEXT_BATCH = 256  # item texts embedded and committed together during a rebuild
TEXT_SPACE_PREFIX = "text-"  # the space ids of item text recipes (``embed.item_text.text_space_id``)


def other_model_embeddings(state: ServiceState) -> dict[str, int]:
    return {m: n for m, n in state.catalog.embeddings.model_ids().items() if m != state.encoder.model_id}


def missing_embeddings(state: ServiceState) -> int:
    return state.catalog.items.count() - len(state.index)


def find_model_mismatch(state: ServiceState) -> str | None:
    """Why searching would be wrong, or None: items embedded only by another model.

    Computed when the index is opened or rebuilt, not per query: the service only ever
    embeds with its own model, so its writes cannot create a mismatch.
    """
    missing = missing_embeddings(state)
    others = other_model_embeddings(state)
    if missing > 0 and others:
        return (f"{missing} items were embedded by another model ({', '.join(others)}), not "
                f"{state.encoder.model_id}; run `jewelsearch index rebuild` to re-embed them")
    return None


def check_model(state: ServiceState) -> None:
    """Refuse to search a catalog embedded by another model until it is rebuilt."""
    if state.mismatch:
        raise ModelMismatch(state.mismatch)


def stats(state: ServiceState) -> dict[str, Any]:
    catalog, index = state.catalog, state.index
    return {"items": catalog.items.count(), "indexed": len(index),
            "model_id": state.encoder.model_id, "index_kind": index.kind,
            "dim": index.dim, "events": catalog.events.count(),
            "other_models": other_model_embeddings(state),
            "missing_embeddings": missing_embeddings(state),
            "instance": instance_space.describe(state),
            "item_text": item_text_space.describe(state),
            "blended": blended_space.describe(state)}


def save(state: ServiceState, force: bool = False) -> IndexManifest | None:
    """Persist the index if it changed since the last save."""
    with state.write_lock:
        if not (state.dirty or force):
            return None
        version = state.catalog.database.catalog_version()
        state.manifest = save_index(state.index, state.index_dir, model_id=state.encoder.model_id,
                                    catalog_version=version)
        if state.instance is not None:
            state.instance = instance_space.save_space(state.instance, state.index_dir, version)
        if state.item_text is not None:
            state.item_text = item_text_space.save_space(state.item_text, state.index_dir, version)
        if state.blended is not None:
            state.blended = blended_space.save_space(state.blended, state.index_dir, version)
        state.dirty = False
        return state.manifest


def rebuild_index(state: ServiceState, *, reembed: bool = True,
                  progress: Callable[[int], Any] | None = None) -> IndexManifest:
    """Embed items that lack an embedding (or an instance vector) for this model, then rebuild
    and swap the index (and the instance index); rewrite the lexical index from the items."""
    with state.write_lock:
        if reembed:
            embed_missing(state, progress)
            embed_missing_texts(state)
        state.catalog.lexical.rebuild()
        settings = state.index_settings
        index = build_from_store(state.catalog, state.encoder.model_id, state.encoder.dim,
                                 kind=settings.kind, memory_budget_bytes=settings.memory_budget_bytes)
        instance = instance_space.rebuilt_space(state)
        item_text = item_text_space.rebuilt_space(state)
        blended = blended_space.rebuilt_space(state)
        state.index = index  # one reference swap: searches see the old or the new index
        state.instance = instance
        state.item_text = item_text
        state.blended = blended
        state.mismatch = find_model_mismatch(state)
        state.dirty = True
        return save(state)


def items_to_embed(state: ServiceState) -> list[int]:
    """Items lacking this model's embedding or, with an instance head, its instance vector."""
    embeddings = state.catalog.embeddings
    missing = set(embeddings.missing_for_model(state.encoder.model_id))
    missing.update(instance_space.missing_instance_vectors(state))
    return sorted(missing)


def embed_missing(state: ServiceState, progress: Callable[[int], Any] | None = None) -> None:
    """Re-embed, from their stored photos, the items this model has no embedding or no instance
    vector for (both vectors from one tower pass; only the missing ones are written); one
    transaction per batch. An unreadable photo is logged and skipped (``jewelsearch check``
    reports it)."""
    catalog, encoder = state.catalog, state.encoder
    model_id = encoder.model_id
    space = state.instance
    missing = items_to_embed(state)
    for start in range(0, len(missing), REEMBED_BATCH):
        chunk = missing[start:start + REEMBED_BATCH]
        rows = catalog.items.get_many(chunk)
        images, ids = [], []
        for item_id, row in rows.items():
            try:
                data = catalog.images.path_for(row["image_path"]).read_bytes()
                images.append(state.ingestor.decode(data).image)
                ids.append(item_id)
            except (OSError, ValueError, InvalidInput) as exc:
                log.warning("item %s: cannot re-embed its image (%s)", item_id, exc)
        instance = None
        if not images:
            vectors = []
        elif space is not None:
            vectors, instance = encode_with_instance(encoder, space.head, images)
        else:
            vectors = encoder.encode_images(images)
        has_vector = set(catalog.embeddings.get_many(ids, model_id))
        has_instance = set(catalog.embeddings.get_many(ids, space.key)) if space is not None else set()
        with catalog.database.write() as conn:
            for row, item_id in enumerate(ids):
                if item_id not in has_vector:
                    catalog.embeddings.put(conn, item_id, model_id, vectors[row])
                if space is not None and item_id not in has_instance:
                    catalog.embeddings.put(conn, item_id, space.key, instance[row])
            catalog.database.bump_version(conn)
        if progress:
            progress(len(rows))


def embed_missing_texts(state: ServiceState) -> int:
    """Embed the words of items that have words but no text vector (one transaction per batch),
    and drop this model's text vectors of earlier recipes; returns how many were embedded."""
    space = state.item_text
    if space is None:
        return 0
    catalog = state.catalog
    recipes = space_key(state.encoder.model_id, TEXT_SPACE_PREFIX)
    stale = [key for key in catalog.embeddings.spaces_of(state.encoder.model_id)
             if key != space.key and key.startswith(recipes)]
    if stale:
        with catalog.database.write() as conn:
            for key in stale:
                catalog.embeddings.delete_space(conn, key)
    missing = list(item_text_space.missing_item_texts(catalog, space.key).items())
    for start in range(0, len(missing), TEXT_BATCH):
        chunk = missing[start:start + TEXT_BATCH]
        vectors = encode_item_texts(state.encoder.encode_texts, [text for _, text in chunk])
        with catalog.database.write() as conn:
            for item_id, text in chunk:
                catalog.embeddings.put(conn, item_id, space.key, vectors[text])
            catalog.database.bump_version(conn)
    return len(missing)
