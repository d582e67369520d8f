"""``jewelsearch check``: store ↔ index ↔ image files, and what can be repaired.

The store is the truth.  Missing embeddings (and, with an instance head, missing
instance vectors: a catalog embedded before the head) are re-made from the stored
image, missing item text vectors from the item's words, the indexes (the blended one included:
a missing, extra or stale blended vector) are rebuilt from stored vectors, orphan image files (left by a
crash between writing a file and committing its row) are deleted, and the
lexical (word) index is rewritten from the items when it lacks an item, holds a
row without one, or holds stale text.  An item whose image file is gone cannot
be repaired here and is reported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from jewelsearch.search import blended_space
from jewelsearch.search.service import SearchService

log = logging.getLogger(__name__)


@dataclass
class CheckReport:
    items: int = 0
    indexed: int = 0
    missing_embeddings: list[int] = field(default_factory=list)
    index_only: list[int] = field(default_factory=list)  # in the index, not in the store
    store_only: list[int] = field(default_factory=list)  # embedded in the store, missing from the index
    missing_images: list[int] = field(default_factory=list)
    orphan_files: list[str] = field(default_factory=list)
    lexical_missing: list[int] = field(default_factory=list)  # items without a lexical index row
    lexical_orphans: list[int] = field(default_factory=list)  # lexical rows without an item
    lexical_stale: list[int] = field(default_factory=list)  # lexical rows out of step with their item
    # With an instance head: items without an instance vector, and the instance index against the store.
    missing_instance_vectors: list[int] = field(default_factory=list)
    instance_index_only: list[int] = field(default_factory=list)
    instance_store_only: list[int] = field(default_factory=list)
    # Items with words but no text vector (a catalog from before text vectors, or an earlier
    # recipe), and the item text index against the store.
    missing_item_text_vectors: list[int] = field(default_factory=list)
    item_text_index_only: list[int] = field(default_factory=list)
    item_text_store_only: list[int] = field(default_factory=list)
    # The blended index (image and text vectors blended with text_field_weight) against the
    # store: ids no photo vector backs, photo vectors it lacks, and vectors that are not the
    # blend of the item's stored vectors (an item written without refreshing it).
    blended_index_only: list[int] = field(default_factory=list)
    blended_store_only: list[int] = field(default_factory=list)
    blended_stale: list[int] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing_embeddings or self.index_only or self.store_only or self.missing_images
                    or self.orphan_files or self.lexical_missing or self.lexical_orphans
                    or self.lexical_stale or self.vectors_need_rebuild)

    @property
    def vectors_need_rebuild(self) -> bool:
        """Whether ``rebuild_index`` (re-embedding, then both indexes) would repair something."""
        return bool(self.missing_embeddings or self.index_only or self.store_only or self.missing_instance_vectors
                    or self.instance_index_only or self.instance_store_only or self.missing_item_text_vectors
                    or self.item_text_index_only or self.item_text_store_only or self.blended_index_only
                    or self.blended_store_only or self.blended_stale)

    def as_dict(self) -> dict[str, Any]:
        out = {k: (v if not isinstance(v, list) else v[:50]) for k, v in self.__dict__.items()}
        out["ok"] = self.ok
        return out


def _space_disagreements(catalog, key: str, index, store_ids: set[int]) -> tuple[set[int], list[int], list[int]]:
    """For a further vector space (``model#space``): the items with a stored vector, the indexed
    ids no item has, and the stored vectors the index lacks."""
    stored = catalog.embeddings.ids_for(key)
    indexed = set(index.ids().tolist())
    return stored, sorted(indexed - store_ids), sorted(stored - indexed)


def check(service: SearchService, repair: bool = False) -> CheckReport:
    catalog = service.catalog
    report = CheckReport()
    rows = catalog.items.image_paths()
    report.items = len(rows)
    store_ids = {r["id"] for r in rows}
    embedded = catalog.embeddings.ids_for(service.encoder.model_id)
    indexed = set(service.index.ids().tolist())
    report.indexed = len(indexed)
    report.missing_embeddings = sorted(store_ids - embedded)
    report.index_only = sorted(indexed - store_ids)
    report.store_only = sorted(embedded - indexed)
    space = service.instance
    if space is not None:
        with_instance, report.instance_index_only, report.instance_store_only = \
            _space_disagreements(catalog, space.key, space.index, store_ids)
        report.missing_instance_vectors = sorted(store_ids - with_instance)
    texts = service.item_text
    if texts is not None:
        _, report.item_text_index_only, report.item_text_store_only = \
            _space_disagreements(catalog, texts.key, texts.index, store_ids)
        # Items without words of their own need no text vector, so "missing" is not store - stored.
        report.missing_item_text_vectors = service.missing_item_text_vectors()
    blended = service.blended
    if blended is not None:
        blended_indexed = set(blended.index.ids().tolist())
        report.blended_index_only = sorted(blended_indexed - (embedded & store_ids))
        report.blended_store_only = sorted((embedded & store_ids) - blended_indexed)
        report.blended_stale = blended_space.stale_ids(catalog, blended)
    referenced = set()
    for row in rows:
        try:
            path = catalog.images.path_for(row["image_path"])
        except ValueError:
            report.missing_images.append(row["id"])
            continue
        referenced.add(path.resolve())
        if not path.is_file():
            report.missing_images.append(row["id"])
    root = catalog.images.root
    if root.is_dir():
        for file in root.rglob("*"):
            if file.is_file() and file.resolve() not in referenced:
                report.orphan_files.append(str(file.relative_to(root)))
    lexical = catalog.lexical.audit()
    report.lexical_missing, report.lexical_orphans = lexical.missing, lexical.orphans
    report.lexical_stale = lexical.stale
    if repair:
        if report.vectors_need_rebuild:
            service.rebuild_index(reembed=True)  # rebuilds the lexical index too
            report.repaired.append("re-embedded missing items and rebuilt the index")
        elif not lexical.ok:
            catalog.lexical.rebuild()
        if not lexical.ok:
            report.repaired.append("rebuilt the lexical index")
        for rel in report.orphan_files:
            (root / rel).unlink(missing_ok=True)
        if report.orphan_files:
            report.repaired.append(f"deleted {len(report.orphan_files)} orphan image files")
    return report
