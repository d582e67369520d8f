"""The search service: what the CLI and the server call.

It ties the catalog store, the encoder, the FAISS index and the recommender
together.  All collaborators are passed in; ``SearchService.open`` is a
convenience that wires them from a home directory.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from jewelsearch.embed import Encoder
from jewelsearch.embed.text_cache import TextVectorCache
from jewelsearch.errors import InvalidInput, ItemNotFound, ModelMismatch
from jewelsearch.index import IndexManifest, save_index
from jewelsearch.index.sync import build_from_store, open_index
from jewelsearch.ingest.pipeline import Ingestor, IngestResult, NewItem
from jewelsearch.recognize import explain as explaining
from jewelsearch.recognize.evidence import evidence
from jewelsearch.recognize.localizer import Localizer, crop
from jewelsearch.recognize.query_region import can_locate, choose_region
from jewelsearch.recognize.recognizer import Recognizer
from jewelsearch.recommend import AttributeTable, BlendWeights, CollaborativeSignals, Recommender, history_from_rows
from jewelsearch.search.params import Filters
from jewelsearch.storage import Catalog
from jewelsearch.storage.events import EVENT_KINDS
from jewelsearch.storage.items import parse_item_id

log = logging.getLogger(__name__)

HIDDEN_FIELDS = ("image_path", "source_path")


def public_item(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in HIDDEN_FIELDS}


@dataclass
class Limits:
    max_upload_bytes: int = 16 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    max_text_chars: int = 500
    max_k: int = 200


class SearchService:
    def __init__(self, catalog: Catalog, encoder: Encoder, index_dir: Path, *,
                 limits: Limits | None = None, index_kind: str = "auto",
                 memory_budget_bytes: int = 2 << 30, half_life_days: float = 30.0,
                 recognizer: Recognizer | None = None, blend_weights: BlendWeights | None = None,
                 popularity_half_life_days: float = 7.0, signals_refresh_seconds: float = 30.0,
                 localizer: Localizer | None = None, recently_seen_days: float = 7.0,
                 visit_half_life_hours: float = 4.0, text_cache_size: int = 4096):
        self.catalog = catalog
        self.encoder = encoder
        self.text_vectors = TextVectorCache(encoder.encode_texts, text_cache_size,
                                            max_chars=encoder.max_text_chars)
        self.index_dir = Path(index_dir)
        self.limits = limits or Limits()
        self.index_kind = index_kind
        self.memory_budget_bytes = memory_budget_bytes
        self.half_life_days = half_life_days
        self.recently_seen_days = recently_seen_days
        self.visit_half_life_hours = visit_half_life_hours
        self.recognizer = recognizer
        self.localizer = localizer
        self.blend_weights = blend_weights or BlendWeights()
        self.popularity_half_life_days = popularity_half_life_days
        self.signals_refresh_seconds = signals_refresh_seconds
        self._signals: CollaborativeSignals | None = None
        self._signals_built_at = 0.0
        self._signals_version = -1
        self._signals_lock = threading.Lock()
        self._attributes: tuple[int, AttributeTable] | None = None
        self.ingestor = Ingestor(catalog, encoder, max_bytes=self.limits.max_upload_bytes,
                                 max_pixels=self.limits.max_image_pixels, recognizer=recognizer)
        self._write_lock = threading.RLock()
        self._dirty = False
        self.index, self.manifest, self.rebuilt_on_open = open_index(
            catalog, self.index_dir, encoder.model_id, encoder.dim, kind=index_kind,
            memory_budget_bytes=memory_budget_bytes)
        self._mismatch = self._find_model_mismatch()

    # ----- state -----------------------------------------------------------
    def other_model_embeddings(self) -> dict[str, int]:
        return {m: n for m, n in self.catalog.embeddings.model_ids().items() if m != self.encoder.model_id}

    def missing_embeddings(self) -> int:
        return self.catalog.items.count() - len(self.index)

    def _find_model_mismatch(self) -> str | None:
        """Why searching would be wrong, or None: items embedded only by another model.

        Computed when the index is opened or rebuilt, not per query: this service only
        ever embeds with its own model, so its writes cannot create a mismatch.
        """
        missing = self.missing_embeddings()
        others = self.other_model_embeddings()
        if missing > 0 and others:
            return (f"{missing} items were embedded by another model ({', '.join(others)}), not "
                    f"{self.encoder.model_id}; run `jewelsearch index rebuild` to re-embed them")
        return None

    def check_model(self) -> None:
        """Refuse to search a catalog embedded by another model until it is rebuilt."""
        if self._mismatch:
            raise ModelMismatch(self._mismatch)

    def stats(self) -> dict[str, Any]:
        return {"items": self.catalog.items.count(), "indexed": len(self.index),
                "model_id": self.encoder.model_id, "index_kind": self.index.kind,
                "dim": self.index.dim, "events": self.catalog.events.count(),
                "other_models": self.other_model_embeddings(),
                "missing_embeddings": self.missing_embeddings()}

    # ----- writes ----------------------------------------------------------
    def add_items(self, items: list[NewItem]) -> list[IngestResult]:
        with self._write_lock:
            results = self.ingestor.add(self.index, items)
            self._dirty = self._dirty or any(r.status != "unchanged" for r in results)
            return results

    def update_item(self, item_id: Any, fields: Mapping[str, Any], image_bytes: bytes | None = None) -> dict:
        with self._write_lock:
            item_id = parse_item_id(item_id)
            self.ingestor.update(self.index, item_id, fields, image_bytes)
            self._dirty = True
            return self.get_item(item_id)

    def delete_item(self, item_id: Any) -> None:
        with self._write_lock:
            self.ingestor.delete(self.index, parse_item_id(item_id))
            self._dirty = True
            if self.index.needs_compaction:
                self.index = self.index.compacted()

    def save(self, force: bool = False) -> IndexManifest | None:
        """Persist the index if it changed since the last save."""
        with self._write_lock:
            if not (self._dirty or force):
                return None
            self.manifest = save_index(self.index, self.index_dir, model_id=self.encoder.model_id,
                                       catalog_version=self.catalog.database.catalog_version())
            self._dirty = False
            return self.manifest

    def rebuild_index(self, *, reembed: bool = True, progress=None) -> IndexManifest:
        """Embed items that lack an embedding for this model, then rebuild and swap the index."""
        with self._write_lock:
            if reembed:
                self._embed_missing(progress)
            index = build_from_store(self.catalog, self.encoder.model_id, self.encoder.dim,
                                     kind=self.index_kind, memory_budget_bytes=self.memory_budget_bytes)
            self.index = index  # one reference swap: searches see the old or the new index
            self._mismatch = self._find_model_mismatch()
            self._dirty = True
            return self.save()

    def _embed_missing(self, progress=None) -> None:
        model_id = self.encoder.model_id
        missing = self.catalog.embeddings.missing_for_model(model_id)
        for start in range(0, len(missing), 64):
            rows = self.catalog.items.get_many(missing[start:start + 64])
            images, ids = [], []
            for item_id, row in rows.items():
                try:
                    data = self.catalog.images.path_for(row["image_path"]).read_bytes()
                    images.append(self.ingestor.decode(data).image)
                    ids.append(item_id)
                except (OSError, ValueError, InvalidInput) as exc:
                    log.warning("item %s: cannot re-embed its image (%s)", item_id, exc)
            vectors = self.encoder.encode_images(images) if images else []
            with self.catalog.database.write() as conn:
                for item_id, vector in zip(ids, vectors):
                    self.catalog.embeddings.put(conn, item_id, model_id, vector)
                self.catalog.database.bump_version(conn)
            if progress:
                progress(len(rows))

    # ----- reads -----------------------------------------------------------
    def get_item(self, item_id: Any) -> dict[str, Any]:
        return public_item(self.catalog.items.get(item_id))

    def image_file(self, item_id: Any) -> Path:
        row = self.catalog.items.get(item_id)
        path = self.catalog.images.path_for(row["image_path"])
        if not path.is_file():
            raise ItemNotFound(item_id)
        return path

    def query(self, *, text: str | None = None, image_bytes: bytes | None = None,
              item_id: Any = None, k: int = 10, filters: Filters | None = None,
              text_weight: float = 0.5, region: str = "auto",
              box: tuple[int, int, int, int] | None = None) -> dict[str, Any]:
        """Search by text, image, item id, or image + text; returns results and timing.

        Image queries search with the detected piece (``region="auto"``), a caller's
        ``box``, or the whole photo (``region="whole"``); the answer says which.
        """
        started = time.perf_counter()
        self.check_model()
        if not 0.0 <= text_weight <= 1.0:
            raise InvalidInput("text_weight must be between 0 and 1")
        parts: list[tuple[float, np.ndarray]] = []
        exclude: list[int] = []
        if item_id is not None:
            item = self.catalog.items.get(item_id)
            vector = self.catalog.embeddings.get(item["id"], self.encoder.model_id)
            if vector is None:
                raise ModelMismatch(f"item {item['id']} has no embedding for {self.encoder.model_id}; "
                                    "run `jewelsearch index rebuild`")
            parts.append((1.0 - text_weight if text else 1.0, vector))
            exclude.append(item["id"])
        region_info = None
        if image_bytes is not None:
            image = self.ingestor.decode(image_bytes).image
            choice = choose_region(image, self.localizer, region=region, box=box)
            region_info = choice.describe(image.size)
            searched = [b for b in region_info["boxes"] if choice.used == "box" and b["box"] == choice.box]
            if searched and self.recognizer is not None:
                # The searched piece is embedded anyway (with the pooled maps, in the same pass),
                # so naming its category costs only the head: the same label /api/recognize gives.
                vectors, pooled = self.recognizer.embed([choice.image])
                self._label_boxes(searched[:1], vectors, pooled)
                vector = vectors[0]
            else:
                vector = choice.embed(self.encoder)
            parts.append((1.0 - text_weight if text else 1.0, vector))
        if text:
            if len(text) > self.limits.max_text_chars:
                raise InvalidInput(f"q is longer than {self.limits.max_text_chars} characters")
            parts.append((text_weight if parts else 1.0, self.text_vectors.vector(text)))
        if not parts:
            raise InvalidInput("give a text query (q), an image, or an item id")
        query = sum(w * v for w, v in parts)
        query = query / max(float(np.linalg.norm(query)), 1e-12)
        hits = self._search(query, k, filters, exclude)
        answer = {"results": hits, "took_ms": round((time.perf_counter() - started) * 1000, 2)}
        if region_info is not None:
            answer["region"] = region_info
        return answer

    def similar(self, item_id: Any, k: int = 10, filters: Filters | None = None) -> dict[str, Any]:
        return self.query(item_id=item_id, k=k, filters=filters)

    def _search(self, query: np.ndarray, k: int, filters: Filters | None,
                exclude: list[int]) -> list[dict[str, Any]]:
        allowed = self.catalog.items.filter_ids(filters.as_dict()) if filters else None
        index = self.index  # one consistent snapshot even if a rebuild swaps it meanwhile
        (ids, scores), = index.search(query, k, allowed_ids=allowed, exclude_ids=exclude)
        rows = self.catalog.items.get_many(ids.tolist())
        return [dict(public_item(rows[i]), score=round(float(s), 6))
                for i, s in zip(ids.tolist(), scores.tolist()) if i in rows]

    def recognize(self, image_bytes: bytes, subject: str = "piece") -> dict[str, Any]:
        """Top-5 calibrated guesses for category, metal, gemstone and cut; ``subject="stone"``
        says the photo shows a loose stone, which the gem specialist then names alone."""
        if self.recognizer is None:
            raise InvalidInput("recognition is not available for this model")
        image = self.ingestor.decode(image_bytes).image
        # One tower pass gives the photo's embedding, its pooled maps and where its pieces are
        # (a photo too small to look in is not looked in).
        vectors, pooled, located = self.recognizer.embed_and_locate([image], wanted=[can_locate(image)])
        choice = choose_region(image, self.localizer, located=located[0] if located else None)
        region = choice.describe(image.size)
        boxes = region["boxes"]
        # The answer reads the whole photo: on worn photos the body part around a piece (ear,
        # neck, hand, wrist) is most of the evidence and a crop cuts it away (docs/localizer.md).
        # Each detected piece still gets its own category, from a crop around it.
        if boxes:
            crop_vectors, crop_pooled = self.recognizer.embed([crop(image, tuple(b["box"])) for b in boxes])
            self._label_boxes(boxes, crop_vectors, crop_pooled)
        prediction = self.recognizer.recognize_embeddings(vectors, pooled, subject=subject)[0]
        answer = dict(prediction, method=self.recognizer.method, model_id=self.encoder.model_id, region=region,
                      subject=subject)
        if choice.localization is not None:
            answer["evidence"] = evidence(image, choice.localization)
        return answer

    def _label_boxes(self, boxes: list[dict], vectors: np.ndarray, pooled: np.ndarray | None = None) -> None:
        if self.recognizer is None:
            return
        for box, guess in zip(boxes, self.recognizer.recognize_embeddings(vectors, pooled)):
            if guess["category"]:
                box.update(category=guess["category"][0]["label"], category_p=guess["category"][0]["p"])

    def explain(self, item_id: Any, *, query_item: Any = None, text: str | None = None,
                image_bytes: bytes | None = None, region: str = "auto",
                box: tuple[int, int, int, int] | None = None) -> dict[str, Any]:
        """Why ``item_id`` matches a query item, a text or a query photo: a heatmap on its photo
        and the attributes the two share."""
        if sum(x is not None and x != "" for x in (query_item, text, image_bytes)) != 1:
            raise InvalidInput("give exactly one query: query_item, q or an image")
        self.check_model()
        item = self.catalog.items.get(item_id)
        image = self.ingestor.decode(self.image_file(item["id"]).read_bytes()).image
        if text:
            if len(text) > self.limits.max_text_chars:
                raise InvalidInput(f"q is longer than {self.limits.max_text_chars} characters")
            query_vector = self.text_vectors.vector(text)
            shared = {}
            query_info: dict[str, Any] = {"q": text}
        elif image_bytes is not None:
            photo = self.ingestor.decode(image_bytes).image
            choice = choose_region(photo, self.localizer, region=region, box=box)
            query_vector = choice.embed(self.encoder)
            shared = {}
            query_info = {"image": choice.describe(photo.size)}
        else:
            query_row = self.catalog.items.get(query_item)
            query_vector = self.catalog.embeddings.get(query_row["id"], self.encoder.model_id)
            if query_vector is None:
                raise ModelMismatch(f"item {query_row['id']} has no embedding for {self.encoder.model_id}")
            shared = {f: item[f] for f in ("category", "metal", "gemstone", "stone_shape", "color")
                      if item.get(f) and item.get(f) == query_row.get(f)}
            query_info = {"item": query_row["id"]}
        item_vector = self.catalog.embeddings.get(item["id"], self.encoder.model_id)
        heat, method = explaining.heatmap(self.encoder, image, query_vector)
        similarity = float(np.dot(item_vector, query_vector)) if item_vector is not None else None
        return {"item": public_item(item), "query": query_info,
                "similarity": round(similarity, 6) if similarity is not None else None,
                "shared_attributes": shared, "method": method, "heatmap": heat,
                "overlay_png": explaining.overlay_png(image, heat)}

    # ----- events and recommendations --------------------------------------
    def record_event(self, raw: Mapping[str, Any]) -> int:
        event = self.catalog.events.validate(raw)
        item_id = parse_item_id(event["item_id"])
        self.catalog.items.get(item_id)  # unknown items are a 404, not a dangling event
        event["item_id"] = item_id
        with self.catalog.database.write() as conn:
            return self.catalog.events.insert(conn, event)

    def import_events(self, rows, *, skip_invalid: bool = False, batch: int = 50_000) -> dict[str, Any]:
        """Bulk-load events. All-or-nothing unless ``skip_invalid``: then bad rows are
        counted and reported, good ones stored."""
        known = set(self.catalog.items.all_ids())
        good, errors, seen = [], [], 0
        for line_number, raw in enumerate(rows, 1):
            seen += 1
            try:
                event = self.catalog.events.validate(raw)
                item_id = parse_item_id(event["item_id"])
                if item_id not in known:
                    raise ItemNotFound(item_id)
                event["item_id"] = item_id
                good.append(event)
            except (InvalidInput, ItemNotFound) as exc:
                errors.append(f"row {line_number}: {exc}")
        if errors and not skip_invalid:
            raise InvalidInput(f"{len(errors)} invalid event(s), nothing imported; first: "
                               + "; ".join(errors[:3]))
        with self.catalog.database.write() as conn:
            for start in range(0, len(good), batch):
                self.catalog.events.insert_many(conn, good[start:start + batch])
        return {"rows": seen, "imported": len(good), "skipped": len(errors), "errors": errors[:20]}

    def collaborative_signals(self) -> CollaborativeSignals:
        """Co-engagement and popularity, rebuilt when events changed (at most every refresh interval)."""
        now = time.time()
        version = self.catalog.events.latest_id()  # O(log n), unlike COUNT(*) on every request
        stale = self._signals is None or (version != self._signals_version
                                          and now - self._signals_built_at >= self.signals_refresh_seconds)
        if stale:
            with self._signals_lock:
                if self._signals is None or version != self._signals_version:
                    self._signals = CollaborativeSignals.build(
                        self.catalog.events.iterate_all(), now=now,
                        popularity_half_life_days=self.popularity_half_life_days)
                    self._signals_version, self._signals_built_at = version, now
        return self._signals

    def attribute_table(self) -> AttributeTable:
        """Every item's category, metal, gemstone, cut and price as arrays, rebuilt after item writes."""
        version = self.catalog.items.version()
        cached = self._attributes
        if cached is None or cached[0] != version:
            cached = (version, AttributeTable.from_rows(self.catalog.items.attribute_rows()))
            self._attributes = cached
        return cached[1]

    def _stored_vectors(self, ids) -> dict[int, np.ndarray]:
        """Vectors from the in-memory index where it holds them, else from the store (e.g. a
        deleted item still in someone's history)."""
        ids = list(dict.fromkeys(int(i) for i in ids))
        indexed = [i for i in ids if i in self.index]
        try:
            found = dict(zip(indexed, self.index.vectors_for(indexed))) if indexed else {}
        except KeyError:  # removed between the check and the read
            found = {}
        missing = [i for i in ids if i not in found]
        if missing:
            found.update(self.catalog.embeddings.get_many(missing, self.encoder.model_id))
        return found

    def recommend(self, user_id: str, k: int = 10, *, filters: Filters | None = None,
                  text: str | None = None, seed_items: list[Any] | None = None,
                  exclude_seen: bool = False) -> dict[str, Any]:
        started = time.perf_counter()
        self.check_model()
        history = history_from_rows(user_id, self.catalog.events.rows_for_user(user_id),
                                    half_life_days=self.half_life_days, kind_rank=EVENT_KINDS,
                                    visit_half_life_hours=self.visit_half_life_hours)
        seeds = [self.catalog.items.get(s)["id"] for s in (seed_items or [])]
        recommender = Recommender(
            self.index, self._stored_vectors, self.collaborative_signals(), self.blend_weights,
            category_of=lambda ids: {i: r["category"] for i, r in self.catalog.items.get_many(ids).items()},
            attributes=self.attribute_table())
        text_vector = self.text_vectors.vector(text) if text else None
        allowed = self.catalog.items.filter_ids(filters.as_dict()) if filters else None
        recent = time.time() - self.recently_seen_days * 86400
        exclude = [i for i, ts in history.last_seen.items() if ts >= recent] if exclude_seen else []
        recs = recommender.recommend(history, k, allowed_ids=allowed, text_vector=text_vector,
                                     seed_items=seeds, exclude=exclude)
        rows = self.catalog.items.get_many([r.item_id for r in recs])
        referenced = self.catalog.items.get_many(
            [reason["item_id"] for r in recs for reason in r.reasons if "item_id" in reason])
        results = []
        for rec in recs:
            if rec.item_id not in rows:
                continue
            reasons = []
            for reason in rec.reasons:
                reason = dict(reason)
                ref = referenced.get(reason.get("item_id"))
                if ref is not None:
                    name = ref["title"] or f"item {ref['id']}"
                    reason["text"] = reason["text"].replace("an item", f"“{name}”", 1)
                reasons.append(reason)
            results.append(dict(public_item(rows[rec.item_id]), score=round(rec.score, 6), reasons=reasons))
        return {"user_id": user_id, "results": results,
                "took_ms": round((time.perf_counter() - started) * 1000, 2)}

