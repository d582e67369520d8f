"""Instance-retrieval report: JSON, a markdown table and a chart with bootstrap intervals."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

MEASURES = (("worn_same_product", "recall@1"), ("worn_same_product", "recall@10"),
            ("pasted_to_catalog", "recall@1"), ("pasted_to_catalog", "recall@10"),
            ("render_to_render", "recall@1"), ("render_to_render", "map"))
COLOURS = [(31, 119, 180), (174, 199, 232), (255, 127, 14), (255, 187, 120), (44, 160, 44), (152, 223, 138)]
LEGEND_COLUMNS = 3


def rows(report: dict):
    """(label, cells) per descriptor x query mode x re-ranker, in report order."""
    for name, result in report["results"].items():
        for mode, cells in result.items():
            if mode != "similar_items_category":
                yield f"{name} / {mode}", cells, result["similar_items_category"]


def chart(report: dict) -> Image.Image:
    entries = list(rows(report))
    width, left, scale = 900, 300, 540
    top = 30 + 16 * ((len(MEASURES) + LEGEND_COLUMNS - 1) // LEGEND_COLUMNS)
    height = top + 8 + len(entries) * (len(MEASURES) * 12 + 12)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((8, 8), "Instance retrieval: bars are means, whiskers 95 % bootstrap intervals", fill="black")
    for i, (measure, metric) in enumerate(MEASURES):
        x, y = 8 + (i % LEGEND_COLUMNS) * 290, 28 + 16 * (i // LEGEND_COLUMNS)
        draw.rectangle([x, y + 1, x + 10, y + 11], fill=COLOURS[i])
        draw.text((x + 14, y), f"{measure.replace('_', ' ')} {metric}", fill="black")
    y = top + 8
    for label, cells, _ in entries:
        draw.text((8, y + 12), label, fill="black")
        for i, (measure, metric) in enumerate(MEASURES):
            if measure not in cells:  # renders skipped: no bar, the row keeps its place
                draw.text((left, y - 2), "-", fill="black")
                y += 12
                continue
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
    lines = ["| descriptor / query | worn R@1 | worn R@10 | pasted R@1 | pasted R@10 | render R@1 | render R@10 "
             "| render mAP | similar items P@10 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label, cells, category in rows(report):
        worn, pasted = cells["worn_same_product"], cells["pasted_to_catalog"]
        render = cells.get("render_to_render")
        lines.append(f"| {label} | {_cell(worn, 'recall@1')} | {_cell(worn, 'recall@10')} | "
                     f"{_cell(pasted, 'recall@1')} | {_cell(pasted, 'recall@10')} | "
                     f"{_cell(render, 'recall@1')} | {_cell(render, 'recall@10')} | {_cell(render, 'map')} | "
                     f"{_cell(category, 'precision@10')} |")
    sets = report["sets"]
    renders = (f"render skipped: {sets['render_skipped']}" if "render_skipped" in sets else
               f"{sets['render_queries']} held-out render specs, view 0 of each against the other "
               f"{sets['render_gallery']} views (`src/jewelsearch/evaluate/retrieval_renders.py`)")
    lines += ["", f"{sets['worn_queries']} worn queries (gallery {sets['worn_gallery']} photos), "
              f"{sets['pasted_queries']} pasted shopper photos against {sets['catalog_photos']} catalog photos; "
              f"{renders}. Intervals: 95 % bootstrap over queries. What each measure can tell: "
              "`src/jewelsearch/evaluate/retrieval.py`.", ""]
    lines += _local_check_lines(report.get("local_check"))
    (out / "retrieval.md").write_text("\n".join(lines))
    return out / "retrieval.md"


def _local_check_lines(check: dict | None) -> list[str]:
    """The local-feature check's paired comparison with the row it re-ranks (rule in
    docs/experiments/2026-12-07-local-rerank.md)."""
    if not check:
        return []
    lines = [f"Local-feature check over the top {check['candidates']} candidates of `{check['base']}`: "
             "R@1 change against it, 95 % paired bootstrap interval.", "",
             "| blend weight | worn | pasted | render | verdict |", "|---|---|---|---|---|"]
    for weight, row in check["weights"].items():
        cells = [f"{row[m]['delta']:+.3f} ({row[m]['interval'][0]:+.3f} to {row[m]['interval'][1]:+.3f})"
                 if m in row else "-" for m in ("worn_same_product", "pasted_to_catalog", "render_to_render")]
        lines.append(f"| {weight} | {' | '.join(cells)} | {row['verdict']} |")
    lines += ["", f"Decision: {check['decision']}", ""]
    return lines


def _cell(cells: dict | None, metric: str) -> str:
    if cells is None:
        return "-"
    low, high = cells[metric + "_interval"]
    return f"{cells[metric]:.3f} ({low:.2f}-{high:.2f})"
