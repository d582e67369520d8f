"""Recognition run again over items already in the catalog: after a model upgrade (better
heads), or to keep the runners-up that an older ingest did not keep. Each item is guessed as
ingest would guess it now, from its stored photo (decoded and passed through torch's tower as a
small ingest job does, so the maps and the stone check are the same; a large job's OpenVINO pass
can differ in a guess's last decimals), and only where the shop left a field empty
or recognition filled it: a value the shop gave, or changed a guess to, is never touched. The
vectors are not rewritten (they depend on the model, not on the heads; ``index rebuild`` makes
those for a new model).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from jewelsearch.errors import JewelsearchError
from jewelsearch.ingest.pipeline import PREDICTABLE_FIELDS, Ingestor
from jewelsearch.storage.lexical import recognition_filled

# What guessing again reads of an item and may overwrite, compared again before it writes.
READ_BACK = (*PREDICTABLE_FIELDS.values(), "title", "description", "attributes")


@dataclass
class GuessReport:
    changed: list[int] = field(default_factory=list)    # a guess or a filled-in value moved
    unchanged: list[int] = field(default_factory=list)  # guessed again, the same answer
    skipped: dict[int, str] = field(default_factory=dict)  # item id -> why it was not guessed

    def add(self, other: "GuessReport") -> None:
        self.changed += other.changed
        self.unchanged += other.unchanged
        self.skipped.update(other.skipped)


def shop_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """The item's recognisable fields as the shop gave them: a value recognition filled in (and
    nobody changed since) counts as empty, so it is guessed again.

    >>> shop_fields({"category": "ring", "metal": "silver", "gemstone": None, "stone_shape": "oval",
    ...              "title": "", "attributes": {"predicted": {"metal": {"label": "silver", "p": 0.8}}}})
    {'category': 'ring', 'metal': None, 'gemstone': None, 'stone_shape': 'oval', 'title': '', 'description': None}
    """
    predicted = (row.get("attributes") or {}).get("predicted") or {}
    fields = {name: None if recognition_filled(predicted.get(name), row.get(name)) else row.get(name)
              for name in PREDICTABLE_FIELDS.values()}
    # The words decide whether a style is guessed (``Ingestor._guesses_style``).
    fields.update(title=row.get("title"), description=row.get("description"))
    return fields


def guess_batch(ingestor: Ingestor, item_ids: Sequence[int]) -> GuessReport:
    """Guess these items again and write what moved, in one transaction."""
    catalog = ingestor.catalog
    report = GuessReport()
    rows = catalog.items.get_many(item_ids)
    prepared, inputs = [], {}
    for item_id in item_ids:
        row = rows.get(item_id)
        if row is None:
            report.skipped[item_id] = "no such item"
            continue
        given = shop_fields(row)
        if not ingestor.needs_recognition(given):
            report.skipped[item_id] = "the shop gave every field"
            continue
        try:
            data = catalog.images.path_for(row["image_path"]).read_bytes()
            photo = ingestor.decode_for_model(data, given)
        except (OSError, ValueError, JewelsearchError) as exc:
            report.skipped[item_id] = f"its photo could not be read: {exc}"
            continue
        inputs[photo.sha256] = photo
        prepared.append(("image", None, given, photo.sha256, photo.loaded, row))
    if not prepared:
        return report
    vectors, pooled, stones, _, bad = ingestor.embed_photos(prepared, inputs)
    with catalog.database.write() as conn:
        for _, _, given, sha, _, row in prepared:
            if sha in bad:
                report.skipped[row["id"]] = bad[sha]
                continue
            if _changed_since(conn, row):  # another process wrote it while the tower ran
                report.skipped[row["id"]] = "changed while it was being guessed; run again"
                continue
            fields, attributes = ingestor.fill_predicted(given, vectors[sha], pooled.get(sha), stones.get(sha))
            values = {name: fields.get(name) for name in PREDICTABLE_FIELDS.values()}
            merged = {**row["attributes"], "predicted": attributes.get("predicted", {})}
            if values == {name: row.get(name) for name in values} and merged == row["attributes"]:
                report.unchanged.append(row["id"])
                continue
            catalog.items.update(conn, row["id"], values, attributes=merged)
            report.changed.append(row["id"])
        if report.changed:
            catalog.database.bump_version(conn)
    return report


def _changed_since(conn, row: Mapping[str, Any]) -> bool:
    """Whether the item now differs from ``row`` in what guessing reads or writes, read inside
    the writing transaction."""
    now = conn.execute(f"SELECT {', '.join(READ_BACK)} FROM items WHERE id = ?", (row["id"],)).fetchone()
    if now is None:
        return True
    *fields, attributes = now
    return fields != [row.get(name) for name in READ_BACK[:-1]] or json.loads(attributes or "{}") != row["attributes"]
