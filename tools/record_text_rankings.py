"""Record the demo catalog's text-search answers (ranking, scores, folded variants, facets,
what was understood) to a JSON file, so a later tree can be checked against them
(``tests/test_text_ranking_fixture.py``). Run it with the tree whose answers are the reference:

    PYTHONPATH=OLD_TREE/src python tools/record_text_rankings.py tests/fixtures/demo_text_rankings.json
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from jewelsearch.config import Settings
from jewelsearch.ingest.demo import demo_dir, demo_items
from jewelsearch.search.params import Filters
from jewelsearch.search.wiring import open_service

# English and Chinese queries, with the options that change what a text query does: folding
# off, a filter (a gemstone family), an understood price, a dropped field, a longer page.
CASES: list[dict[str, Any]] = [
    {"text": "oval sapphire pendant"},
    {"text": "椭圆蓝宝石吊坠"},
    {"text": "pearl earrings"},
    {"text": "珍珠耳环"},
    {"text": "gold hoop earrings"},
    {"text": "gold hoop earrings", "collapse": False},
    {"text": "diamond ring under $900"},
    {"text": "900美元以下的钻石戒指"},
    {"text": "blue stone pendant"},
    {"text": "rose gold ring", "k": 20},
    {"text": "玫瑰金戒指"},
    {"text": "emerald earrings in platinum"},
    {"text": "studs"},
    {"text": "ring", "filters": {"gemstone": "sapphire"}},
    {"text": "pendant", "filters": {"metal": "silver", "max_price": 800}},
    {"text": "oval sapphire pendant", "dropped": ["category"]},
    {"text": "eternity band white gold"},
    {"text": "\"sapphire\" NEAR(ring) OR title:pendant"},
]


def answers(service) -> list[dict[str, Any]]:
    out = []
    for case in CASES:
        filters = Filters(**case["filters"]) if "filters" in case else None
        payload = service.query(text=case["text"], k=case.get("k", 10), filters=filters,
                                collapse=case.get("collapse", True), dropped=tuple(case.get("dropped", ())))
        out.append({"case": case,
                    "results": [{key: row.get(key) for key in ("id", "score", "more_like_this", "variant_ids")}
                                for row in payload["results"]],
                    "understood": payload["understood"], "facets": payload["facets"]})
    return out


def demo_service(home: Path):
    service = open_service(Settings(home=home))
    items = demo_items(demo_dir())
    for start in range(0, len(items), 64):
        service.add_items(items[start:start + 64])
    return service


def main() -> None:
    target = Path(sys.argv[1])
    with tempfile.TemporaryDirectory() as scratch:
        service = demo_service(Path(scratch))
        recorded = answers(service)
        service.catalog.close()
    target.write_text(json.dumps(recorded, ensure_ascii=False, indent=1) + "\n")


if __name__ == "__main__":
    main()
