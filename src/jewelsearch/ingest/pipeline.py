"""Adding, updating and deleting catalog items: store row + image + embedding + index.

Every item is written in one database transaction (row and embedding, its instance
vector where the model has an instance head, and its item text vector where the shop gave
words: ``embed/item_text.py``), after its image decoded and its image and words embedded
successfully, so a failure leaves nothing half-written. Both image vectors come from one
tower pass; the batch's texts from one text tower pass. A fields-only update re-embeds the
words (or drops the text vector when no words are left). The indexes are updated after the commit; if the process dies before they are
saved, the catalog version in their manifests no longer matches and they are rebuilt from
stored vectors on start.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from jewelsearch.embed import Encoder, LoadedImage, load_image
from jewelsearch.embed.instance import InstanceHead, encode_with_instance
from jewelsearch.embed.item_text import item_text, text_space_id
from jewelsearch.embed.vocab import NO_STONE
from jewelsearch.errors import InvalidInput, JewelsearchError
from jewelsearch.index import VectorIndex
from jewelsearch.ingest.decoding import DecodedPhoto, decode_photo
from jewelsearch.ingest.item_texts import ItemTextVectors, unchanged_words
from jewelsearch.ingest.tower_runtime import TowerRuntime
from jewelsearch.recognize.evidence import stone_seen
from jewelsearch.recognize.pendant_style import pendant_or_category
from jewelsearch.recognize.recognizer import Recognizer
from jewelsearch.storage import Catalog
from jewelsearch.storage.embeddings import space_key
from jewelsearch.storage.images import sha256_bytes
from jewelsearch.storage.items import MAX_GUESSES, normalise_item_fields
from jewelsearch.storage.lexical import has_words

log = logging.getLogger(__name__)

# Recognised attribute -> item column it may fill.
PREDICTABLE_FIELDS = {"category": "category", "metal": "metal", "gemstone": "gemstone",
                      "cut": "stone_shape"}
FILL_THRESHOLD = 0.5  # below this calibrated probability a guess is kept but not filled in
STONE_FIELDS = ("gemstone", "cut")  # filled in only where the localiser sees a stone
# The guesses after the top one kept for these fields, so text search can weigh a piece by how
# likely it is to be what a query names, not only by its top guess (search/attribute_match.py).
RUNNER_UP_FIELDS = ("metal", "gemstone", "cut")
RUNNERS_UP = MAX_GUESSES - 1


def fill_decision(best: Mapping[str, Any], attribute: str = "", stone_seen: bool | None = None) -> str | None:
    """The label a missing field gets from recognition's top guess (``{"label", "p"}``), or None:
    a guess below the threshold is kept but not filled in, and "none" (a plain piece) is an
    answer, not a value to put in a catalog's gemstone or cut column. ``stone_seen=False`` (the
    localiser sees no stone) keeps a gemstone or cut ``attribute`` from being filled in."""
    if stone_seen is False and attribute in STONE_FIELDS:
        return None
    if best["p"] >= FILL_THRESHOLD and best["label"] != NO_STONE:
        return str(best["label"])
    return None


def runners_up(guesses: list[Mapping[str, Any]]) -> list[list[Any]]:
    """The ``RUNNERS_UP`` guesses after the top one, as ``[label, p]`` pairs; "none" (a plain
    piece) is an answer, not a value a query can ask for, so it is left out.

    >>> runners_up([{"label": "silver", "p": 0.5}, {"label": "none", "p": 0.2},
    ...             {"label": "platinum", "p": 0.2}, {"label": "white gold", "p": 0.1}])
    [['platinum', 0.2], ['white gold', 0.1]]
    """
    return [[guess["label"], guess["p"]] for guess in guesses[1:] if guess["label"] != NO_STONE][:RUNNERS_UP]


@dataclass
class NewItem:
    image_bytes: bytes
    fields: Mapping[str, Any] = field(default_factory=dict)
    source_path: str | None = None  # where a CLI ingest found it, for incremental re-runs


@dataclass
class IngestResult:
    item_id: int | None
    status: str  # "added" | "updated" | "unchanged" | "failed" (only with ``skip_bad``)
    error: str | None = None  # why a "failed" item was skipped


@dataclass
class PreparedBatch:
    """A batch embedded and recognised, not yet written (``Ingestor.prepare``)."""
    rows: list  # (status, item, fields, sha, loaded, existing) per item, in order; None where it failed
    failed: dict[int, str]  # item position -> why it was skipped
    vectors: dict[str, np.ndarray]
    pooled: dict[str, np.ndarray]
    stones: dict[str, bool]
    instance: dict[str, np.ndarray]
    texts: list[str]
    text_vectors: Mapping[str, np.ndarray]


class Ingestor:
    def __init__(self, catalog: Catalog, encoder: Encoder, *, max_bytes: int, max_pixels: int,
                 recognizer: Recognizer | None = None, instance_head: InstanceHead | None = None,
                 item_text_vectors: bool = True, draft_decode: bool = False,
                 tower_runtime: TowerRuntime | None = None):
        self.catalog = catalog
        self.encoder = encoder
        self.recognizer = recognizer
        # With a head, every photo embedded also gets an instance vector, stored under its key.
        self.instance_head = instance_head
        self.instance_key = space_key(encoder.model_id, instance_head.space_id) if instance_head else None
        # Every item with words of its own also gets a text vector, stored under this key. Switched
        # off, a write drops the item's text vector instead, so none goes stale meanwhile.
        self.text_key = space_key(encoder.model_id, text_space_id())
        self.embeds_texts = item_text_vectors
        # Looked up at each call, as before the cache: the encoder's text tower may be swapped.
        self.item_texts = ItemTextVectors(lambda texts: self.encoder.encode_texts(texts))
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        # Large JPEGs decode at a reduced scale that still leaves twice the model's input side
        # (``load_image``'s ``draft_side``); only ingest's own decode does this.
        self.draft_side = 2 * int(getattr(encoder.preprocess, "size", 0) or 0) if draft_decode else 0
        # Which runtime runs the tower pass (``ingest/tower_runtime.py``); None: torch always.
        self.tower_runtime = tower_runtime

    def decode(self, data: bytes) -> LoadedImage:
        return load_image(data, max_bytes=self.max_bytes, max_pixels=self.max_pixels)

    def decode_for_model(self, data: bytes, fields: Mapping[str, Any] | None = None) -> DecodedPhoto:
        """``decode`` (with draft decoding where it is on) plus the tower's input and colour
        histogram, computed once here so that a decode thread can do it (``ingest/stream.py``).
        With the item's ``fields``, the histogram only where recognition will read it (a photo
        missing an attribute): 1.4 ms a photo saved for the others."""
        histogram = self.recognizer is not None and self.recognizer.reads_pooled
        if histogram and fields is not None:
            try:
                histogram = self.needs_recognition(normalise_item_fields(fields))
            except JewelsearchError:  # prepare reports it; the photo's input is made as usual
                pass
        return decode_photo(self._decode_for_ingest, self.encoder.preprocess, data, histogram)

    def needs_recognition(self, fields: Mapping[str, Any]) -> bool:
        """Whether recognition fills something in for an item with these (normalised) fields."""
        return any(not fields.get(f) for f in PREDICTABLE_FIELDS.values()) or self._guesses_style(fields)

    def _decode_for_ingest(self, data: bytes) -> LoadedImage:
        """``decode`` with draft decoding where it is on: what both ingest paths embed (queries
        decode in full)."""
        return load_image(data, max_bytes=self.max_bytes, max_pixels=self.max_pixels, draft_side=self.draft_side)

    def add(self, index: VectorIndex, items: list[NewItem], instance_index: VectorIndex | None = None,
            text_index: VectorIndex | None = None, *, decoded: Mapping[int, DecodedPhoto | Exception] | None = None,
            skip_bad: bool = False, job_photos: int | None = None) -> list[IngestResult]:
        """Ingest a batch; raises on the first bad item before writing any of them, or, with
        ``skip_bad``, writes the others and reports each bad one as "failed" with its reason.
        ``instance_index`` takes the instance vectors (with an instance head), ``text_index``
        the item text vectors. ``decoded`` (item position -> ``decode_for_model``'s photo, or the
        error it raised) saves decoding again what a decode thread already did. ``job_photos``:
        the size of the job the batch is part of (``prepare``)."""
        prepared = self.prepare(items, decoded=decoded, skip_bad=skip_bad, job_photos=job_photos)
        return self.write(prepared, index, instance_index, text_index)

    def prepare(self, items: list[NewItem], *, decoded: Mapping[int, DecodedPhoto | Exception] | None = None,
                skip_bad: bool = False, job_photos: int | None = None) -> PreparedBatch:
        """Everything ``add`` does before its transaction: look each item up, decode, embed,
        recognise and embed the words. Writes nothing. ``job_photos``: how many photos the job
        this batch belongs to has reached with it (default: this batch's), which picks the tower
        pass's runtime."""
        rows: list = []
        failed: dict[int, str] = {}
        inputs: dict[str, DecodedPhoto] = {}
        for position, item in enumerate(items):
            photo = (decoded or {}).get(position)
            try:
                fields = normalise_item_fields(item.fields)
                sha = photo.sha256 if isinstance(photo, DecodedPhoto) else sha256_bytes(item.image_bytes)
                existing = self.catalog.items.find_by_source(item.source_path) if item.source_path else None
                if existing is not None and existing["image_sha256"] == sha:
                    changed = {k: v for k, v in fields.items() if existing.get(k) != v}
                    rows.append(("unchanged" if not changed else "fields", item, fields, sha, None, existing))
                    continue
                if isinstance(photo, Exception):
                    raise photo
                if photo is None:
                    loaded = self._decode_for_ingest(item.image_bytes)
                else:
                    loaded = photo.loaded
                    inputs[sha] = photo
            except JewelsearchError as exc:
                if not skip_bad:
                    raise
                failed[position] = str(exc)
                rows.append(None)
                continue
            rows.append(("new" if existing is None else "image", item, fields, sha, loaded, existing))
        to_embed = [r for r in rows if r is not None and r[4] is not None]
        tower = self.tower_runtime.runner(len(items) if job_photos is None else job_photos) \
            if self.tower_runtime is not None else None
        vectors, pooled, stones, instance, bad = self._embed(to_embed, inputs=inputs, skip_bad=skip_bad, tower=tower)
        for position, row in enumerate(rows):
            if row is not None and row[3] in bad and row[4] is not None:
                failed[position] = bad[row[3]]
                rows[position] = None
        # The words each changed item will have once written (its stored row under the new fields).
        texts = [item_text({**(row[5] or {}), **row[2]}) if row is not None and row[0] != "unchanged"
                 and self.embeds_texts else "" for row in rows]
        stored = unchanged_words([row[5] if row is not None else None for row in rows], texts,
                                 lambda item_id: self.catalog.embeddings.get(item_id, self.text_key))
        text_vectors = self.item_texts.vectors(texts, stored)
        return PreparedBatch(rows, failed, vectors, pooled, stones, instance, texts, text_vectors)

    def write(self, batch: PreparedBatch, index: VectorIndex, instance_index: VectorIndex | None = None,
              text_index: VectorIndex | None = None) -> list[IngestResult]:
        """``prepare``'s batch into the store (one transaction, after every image file is
        durable) and then the indexes; results in the items' order."""
        results: list[IngestResult] = []
        model_id = self.encoder.model_id
        vectors, instance, text_vectors = batch.vectors, batch.instance, batch.text_vectors
        written: list[tuple[int, str]] = []
        worded: dict[int, str] = {}  # item id -> its text ("" drops its text vector)
        files = self.catalog.images.save_many({row[3]: (row[4].data, row[4].ext) for row in batch.rows
                                               if row is not None and row[4] is not None})
        with self.catalog.database.write() as conn:
            for position, (row, text) in enumerate(zip(batch.rows, batch.texts)):
                if row is None:
                    results.append(IngestResult(None, "failed", batch.failed[position]))
                    continue
                status, item, fields, sha, loaded, existing = row
                if status == "unchanged":
                    results.append(IngestResult(existing["id"], "unchanged"))
                    continue
                if status == "fields":
                    self.catalog.items.update(conn, existing["id"], fields)
                    self._write_text_vector(conn, existing["id"], text, text_vectors)
                    worded[existing["id"]] = text
                    results.append(IngestResult(existing["id"], "updated"))
                    continue
                rel = files[sha]
                vector = vectors[sha]
                fields, attributes = self.fill_predicted(fields, vector, batch.pooled.get(sha), batch.stones.get(sha))
                if existing is None:
                    item_id = self.catalog.items.insert(conn, fields, image_path=rel, image_sha256=sha,
                                                        source_path=item.source_path,
                                                        attributes=attributes)
                    results.append(IngestResult(item_id, "added"))
                else:
                    item_id = existing["id"]
                    self.catalog.items.update(conn, item_id, fields, image_path=rel, image_sha256=sha,
                                              attributes={**existing["attributes"], **attributes})
                    results.append(IngestResult(item_id, "updated"))
                self.catalog.embeddings.put(conn, item_id, model_id, vector)
                if self.instance_key is not None:
                    self.catalog.embeddings.put(conn, item_id, self.instance_key, instance[sha])
                self._write_text_vector(conn, item_id, text, text_vectors)
                worded[item_id] = text
                written.append((item_id, sha))
            if written or worded:
                self.catalog.database.bump_version(conn)
        if written:
            ids = [item_id for item_id, _ in written]
            index.add(ids, np.stack([vectors[sha] for _, sha in written]))
            if instance_index is not None and self.instance_key is not None:
                instance_index.add(ids, np.stack([instance[sha] for _, sha in written]))
        if text_index is not None:
            _update_text_index(text_index, worded, text_vectors)
        return results

    def update(self, index: VectorIndex, item_id: int, fields: Mapping[str, Any],
               image_bytes: bytes | None = None, instance_index: VectorIndex | None = None,
               text_index: VectorIndex | None = None) -> None:
        clean = normalise_item_fields(fields)
        row = self.catalog.items.get(item_id)
        text = item_text({**row, **clean}) if self.embeds_texts else ""
        text_vectors = self.item_texts.vectors([text])
        if image_bytes is None:
            with self.catalog.database.write() as conn:
                self.catalog.items.update(conn, row["id"], clean)
                self._write_text_vector(conn, row["id"], text, text_vectors)
                self.catalog.database.bump_version(conn)
        else:
            loaded = self._decode_for_ingest(image_bytes)
            sha = sha256_bytes(image_bytes)
            vectors, _, _, instance, _ = self._embed([("image", None, clean, sha, loaded, row)], locate=False)
            with self.catalog.database.write() as conn:
                rel = self.catalog.images.save(loaded.data, sha, loaded.ext)
                self.catalog.items.update(conn, row["id"], clean, image_path=rel, image_sha256=sha)
                self.catalog.embeddings.put(conn, row["id"], self.encoder.model_id, vectors[sha])
                if self.instance_key is not None:
                    self.catalog.embeddings.put(conn, row["id"], self.instance_key, instance[sha])
                self._write_text_vector(conn, row["id"], text, text_vectors)
                self.catalog.database.bump_version(conn)
                # The old photo's file goes once no item shows it; decided inside the same
                # transaction so a concurrent add of that photo keeps it.
                old_file_unused = row["image_sha256"] != sha \
                    and not self.catalog.items.image_in_use(conn, row["image_sha256"])
            if old_file_unused and row.get("image_path"):
                self.catalog.images.delete(row["image_path"])
            index.add([row["id"]], vectors[sha][None, :])
            if instance_index is not None and self.instance_key is not None:
                instance_index.add([row["id"]], instance[sha][None, :])
        if text_index is not None:
            _update_text_index(text_index, {row["id"]: text}, text_vectors)

    def delete(self, index: VectorIndex, item_id: int, instance_index: VectorIndex | None = None,
               text_index: VectorIndex | None = None) -> dict[str, Any]:
        with self.catalog.database.write() as conn:
            row = self.catalog.items.delete(conn, item_id)  # with every vector of the item
            self.catalog.database.bump_version(conn)
            still_used = self.catalog.items.image_in_use(conn, row["image_sha256"])
        index.remove([row["id"]])
        for other in (instance_index, text_index):
            if other is not None:
                other.remove([row["id"]])
        if not still_used:
            self.catalog.images.delete(row["image_path"])
        return row

    def _write_text_vector(self, conn, item_id: int, text: str, text_vectors: Mapping[str, np.ndarray]) -> None:
        if text:
            self.catalog.embeddings.put(conn, item_id, self.text_key, text_vectors[text])
        else:
            self.catalog.embeddings.delete(conn, item_id, self.text_key)

    def fill_predicted(self, fields: Mapping[str, Any], vector: np.ndarray, pooled: np.ndarray | None = None,
                       stone_seen: bool | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Fill missing attributes from recognition; record every guess as predicted.
        ``pooled`` (the photo's pooled maps, when just embedded) lets the context heads answer.
        ``stone_seen=False`` (the localiser sees no stone on the piece) keeps a gemstone or cut
        guess from being filled in: the heads name a stone for plain pieces too (measured
        2026-11-28), and a plain silver hoop must not turn up under "opal".

        Returns (fields, attributes) where ``attributes["predicted"]`` maps an item
        field to ``{"label", "p"}`` for each value that came from the model, with its
        ``runners_up`` for metal, gemstone and cut.
        """
        fields = dict(fields)
        if self.recognizer is None:
            return fields, {}
        missing = {a: f for a, f in PREDICTABLE_FIELDS.items() if not fields.get(f)}
        if not missing and not self._guesses_style(fields):
            return fields, {}
        prediction = self.recognizer.recognize_embeddings(
            vector[None, :], None if pooled is None else pooled[None, :])[0]
        predicted = {}
        for attribute, field_name in missing.items():
            best = prediction[attribute][0]
            if attribute == "category":
                best = pendant_or_category(best, prediction.get("style"))
            predicted[field_name] = dict(best)
            filled = fill_decision(best, attribute, stone_seen)
            if filled is None and fill_decision(best) is not None:
                predicted[field_name]["why_not_filled"] = "no stone seen"
            if attribute in RUNNER_UP_FIELDS and not (stone_seen is False and attribute in STONE_FIELDS):
                predicted[field_name]["runners_up"] = runners_up(prediction[attribute])
            if filled is not None:
                fields[field_name] = filled
            else:
                predicted[field_name]["filled"] = False
        if self._guesses_style(fields) and prediction.get("style"):
            predicted["style"] = self._style_guess(prediction["style"][0], fields.get("category"))
        return fields, {"predicted": predicted}

    def _guesses_style(self, fields: Mapping[str, Any]) -> bool:
        # A style is guessed only for an item the shop gave no words for: a title or
        # description already says the style, or chose not to, and a guess must not contradict it.
        return self.recognizer is not None and self.recognizer.style_head is not None and not has_words(fields.get("title"), fields.get("description"))

    def _style_guess(self, best: Mapping[str, Any], category: str | None) -> dict[str, Any]:
        """The style head's top guess, filled in only within the category's styles (given or
        just filled) and above the head's threshold. Style is not an item column: a filled
        guess lives in ``attributes.predicted.style`` and the word index and attribute
        matching read it from there (``storage.lexical.predicted_style``)."""
        guess: dict[str, Any] = {"label": best["label"], "p": best["p"]}
        if self.recognizer.style_head.fill(best, category) is None:
            guess["filled"] = False
        return guess

    def embed_photos(self, prepared: list, inputs: Mapping[str, DecodedPhoto]):
        """``_embed`` with every photo passed through the tower now (none reused from the store),
        a bad photo reported, not raised: what recognising stored photos again needs
        (``ingest/guess_again.py``)."""
        return self._embed(prepared, inputs=inputs, skip_bad=True, reuse=False)

    def _embed(self, prepared: list, locate: bool = True, *, inputs: Mapping[str, DecodedPhoto] | None = None,
               skip_bad: bool = False, tower=None, reuse: bool = True
               ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, bool],
                                                dict[str, np.ndarray], dict[str, str]]:
        """Embeddings by sha256; the pooled maps recognition reads, for the images embedded now
        that miss an attribute recognition fills in; where ``locate`` and the localiser is loaded,
        whether it sees a stone, for the images ingest may fill a gemstone or cut into; with an
        instance head, instance vectors by sha256; and, with ``skip_bad``, why an image could not
        be embedded (a non-finite vector), by sha256, where it would otherwise raise. All from the
        same tower pass where it can (``Recognizer.embed_all``); ``inputs`` (decoded photos by
        sha256) bring the tower's input ready-made. An image this model already embedded (both
        vectors) is reused (recognised from its embedding) unless ``reuse`` is off. ``tower`` runs
        the tower pass in place of torch's (``TowerRuntime.runner``)."""
        out: dict[str, np.ndarray] = {}
        pooled: dict[str, np.ndarray] = {}
        instance: dict[str, np.ndarray] = {}
        bad: dict[str, str] = {}
        pending: dict[str, Any] = {}
        model_id = self.encoder.model_id
        inputs = inputs or {}
        localizer = self.recognizer.localizer if self.recognizer is not None and locate else None
        # Only photos missing a gemstone or a cut need the stone check, and only photos missing
        # an attribute need the pooled maps recognition reads.
        needs_check = {sha for _, _, fields, sha, _, _ in prepared
                       if any(not fields.get(PREDICTABLE_FIELDS[a]) for a in STONE_FIELDS)} \
            if localizer is not None else set()
        needs_recognition = {sha for _, _, fields, sha, _, _ in prepared if self.needs_recognition(fields)}
        for _, _, _, sha, loaded, _ in prepared:
            if sha in out or sha in pending:
                continue
            stored = self.catalog.embeddings.find_by_image(sha, model_id) if reuse else None
            stored_instance = self.catalog.embeddings.find_by_image(sha, self.instance_key) \
                if self.instance_key is not None and reuse else None
            if stored is not None and (self.instance_key is None or stored_instance is not None):
                out[sha] = stored
                if stored_instance is not None:
                    instance[sha] = stored_instance
            else:
                pending[sha] = loaded.image
        stones: dict[str, bool] = {}
        if pending:
            shas = list(pending)
            images = [pending[s] for s in shas]
            located, maps, found_instance = None, None, None
            if self.recognizer is None and self.instance_head is not None:
                vectors, found_instance = encode_with_instance(self.encoder, self.instance_head, images)
            elif self.recognizer is None:
                vectors = self.encoder.encode_images(images)
            else:
                wanted = [s in needs_check for s in shas] if needs_check & set(shas) else None
                ready = all(s in inputs and inputs[s].tensor is not None for s in shas)
                # A photo recognition does not read may come without its histogram (None here).
                histograms = [inputs[s].histogram for s in shas] if ready and self.recognizer.reads_pooled \
                    and all(inputs[s].histogram is not None for s in shas if s in needs_recognition) else None
                passed = self.recognizer.embed_all(images, wanted, instance_head=self.instance_head,
                                                   recognise=[s in needs_recognition for s in shas],
                                                   inputs=[inputs[s].tensor for s in shas] if ready else None,
                                                   histograms=histograms, max_boxes=0,  # stone_seen reads masks
                                                   tower=tower)
                vectors, maps, located, found_instance = passed.embeddings, passed.pooled, passed.located, \
                    passed.instance
            finite = np.isfinite(vectors).all(1)
            if found_instance is not None:
                finite &= np.isfinite(found_instance).all(1)
            if not finite.all():
                if not skip_bad:
                    raise InvalidInput("the model produced a non-finite embedding for this image")
                bad.update((sha, "the model produced a non-finite embedding for this image")
                           for sha, ok in zip(shas, finite) if not ok)
            out.update(zip(shas, vectors))
            if found_instance is not None:
                instance.update(zip(shas, found_instance))
            if maps is not None:
                pooled.update((sha, row) for sha, row in zip(shas, maps) if sha in needs_recognition)
            if located is not None:
                stones.update((sha, stone_seen(found)) for sha, found in zip(shas, located) if found is not None)
        images_by_sha = {sha: loaded.image for _, _, _, sha, loaded, _ in prepared}
        for sha in needs_check - stones.keys() - bad.keys():  # reused embeddings: no pass was made now
            stones[sha] = stone_seen(localizer.locate(images_by_sha[sha], max_boxes=0))
        return out, pooled, stones, instance, bad


def _update_text_index(text_index: VectorIndex, worded: Mapping[int, str],
                       text_vectors: Mapping[str, np.ndarray]) -> None:
    """Bring the text index in step with what was just committed."""
    with_text = [item_id for item_id, text in worded.items() if text]
    if with_text:
        text_index.add(with_text, np.stack([text_vectors[worded[item_id]] for item_id in with_text]))
    text_index.remove([item_id for item_id, text in worded.items() if not text])
