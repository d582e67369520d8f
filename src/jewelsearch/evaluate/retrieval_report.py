"""Instance-retrieval report: JSON, a markdown table and a chart with bootstrap intervals."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

MEASURES = (("worn_same_product", "recall@1"), ("worn_same_product", "recall@10"),
            ("pasted_to_catalog", "recall@1"), ("pasted_to_catalog", "recall@10"))
COLOURS = [(31, 119, 180), (174, 199, 232), (255, 127, 14), (255, 187, 120)]


def rows(report: dict):
    """(label, cells) per descriptor x query mode x re-ranker, in report order."""
    for name, result in report["results"].items():
        for mode, cells in result.items():
            if mode != "similar_items_category":
                yield f"{name} / {mode}", cells, result["similar_items_category"]


def chart(report: dict) -> Image.Image:
    entries = list(rows(report))
    width, left, scale = 900, 300, 560
    height = 60 + len(entries) * (len(MEASURES) * 12 + 12)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((8, 8), "Instance retrieval: bars are means, whiskers 95 % bootstrap intervals", fill="black")
    for i, (measure, metric) in enumerate(MEASURES):
        x = 8 + i * 220
        draw.rectangle([x, 28, x + 10, 38], fill=COLOURS[i])
        draw.text((x + 14, 27), f"{measure.replace('_', ' ')} {metric}", fill="black")
    y = 52
    for label, cells, _ in entries:
        draw.text((8, y + 12), label, fill="black")
        for i, (measure, metric) in enumerate(MEASURES):
            value = cells[measure][metric]
            low, high = cells[measure][metric + "_interval"]
            draw.rectangle([left, y, left + int(scale * value), y + 9], fill=COLOURS[i])
            draw.line([left + int(scale * low), y + 4, left + int(scale * high), y + 4], fill="black")
            draw.text((left + int(scale * max(value, high)) + 6, y - 2), f"{value:.3f}", fill="black")
            y += 12
        y += 12
    return image


def write_retrieval_report(report: dict, out: Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "retrieval.json").write_text(json.dumps(report, indent=2) + "\n")
    chart(report).save(out / "retrieval.png")
    lines = ["| descriptor / query | worn R@1 | worn R@10 | pasted R@1 | pasted R@10 | similar items P@10 |",
             "|---|---|---|---|---|---|"]
    for label, cells, category in rows(report):
        worn, pasted = cells["worn_same_product"], cells["pasted_to_catalog"]
        lines.append(f"| {label} | {_cell(worn, 'recall@1')} | {_cell(worn, 'recall@10')} | "
                     f"{_cell(pasted, 'recall@1')} | {_cell(pasted, 'recall@10')} | "
                     f"{_cell(category, 'precision@10')} |")
    sets = report["sets"]
    lines += ["", f"{sets['worn_queries']} worn queries (gallery {sets['worn_gallery']} photos), "
              f"{sets['pasted_queries']} pasted shopper photos against {sets['catalog_photos']} catalog photos. "
              "Intervals: 95 % bootstrap over queries. What each measure can tell: "
              "`src/jewelsearch/evaluate/retrieval.py`.", ""]
    (out / "retrieval.md").write_text("\n".join(lines))
    return out / "retrieval.md"


def _cell(cells: dict, metric: str) -> str:
    low, high = cells[metric + "_interval"]
    return f"{cells[metric]:.3f} ({low:.2f}-{high:.2f})"
