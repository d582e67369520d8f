"""Search evaluation report: ``search.json``, ``search.md`` (group x metric with intervals,
tuning vs held-out, BM25 on titles beside) and ``search.png`` (bars per group, drawn with PIL)."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from jewelsearch.evaluate.search_quality import METRICS

LABELS = {"r_precision": "R-prec@10", "p_at_10": "P@10", "ndcg_at_10": "nDCG@10", "mrr": "MRR"}
COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]


def _cell(value: dict) -> str:
    return f"{value['mean']:.2f} ({value['low']:.2f}-{value['high']:.2f})"


def markdown(report: dict) -> str:
    engine, bm25 = report["engine"]["summary"], report["bm25_titles"]["summary"]
    lines = [f"# Text-search quality: {report['catalog']} ({report['loading']})", "",
             f"{report['date']}; {report['items']} items; k = {report['k']}; {report['catalog_note']}.",
             f"Split: {report['split_rule']}. Means with 95 % bootstrap intervals over queries.", "",
             "| group | split | n | " + " | ".join(LABELS[m] for m in METRICS) + " | BM25 titles R-prec |",
             "|---|---|---|" + "---|" * (len(METRICS) + 1)]
    for group, splits in engine.items():
        for split in ("tuning", "held-out", "all"):
            cell = splits[split]
            lines.append(f"| {group} | {split} | {cell['n']} | "
                         + " | ".join(_cell(cell[m]) for m in METRICS)
                         + f" | {_cell(bm25[group][split]['r_precision'])} |")
    return "\n".join(lines) + "\n"


def _font(size: int):
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default()


def bar_chart(report: dict) -> Image.Image:
    """One panel per group: the engine's four metrics (all queries) with their intervals, and
    BM25-on-titles R-precision as a grey bar for reference."""
    engine, bm25 = report["engine"]["summary"], report["bm25_titles"]["summary"]
    groups = list(engine)
    panel_w, panel_h, top, left = 230, 250, 64, 40
    image = Image.new("RGB", (left + panel_w * max(len(groups), 1) + 10, top + panel_h + 40), "white")
    draw = ImageDraw.Draw(image)
    font, small = _font(13), _font(11)
    draw.text((8, 6), f"Text search, {report['catalog']} ({report['loading']}), {report['date']}: "
                      "means over all queries, whiskers 95 % intervals", fill="black", font=font)
    legend = [(LABELS[m], COLOURS[i]) for i, m in enumerate(METRICS)] + [("BM25 titles R-prec", (150, 150, 150))]
    x = 8
    for name, colour in legend:
        draw.rectangle([x, 30, x + 10, 40], fill=colour)
        draw.text((x + 14, 28), name, fill="black", font=small)
        x += 24 + int(draw.textlength(name, font=small))
    base = top + panel_h - 20
    for frac in (0, 0.5, 1.0):
        y = base - int(frac * (panel_h - 40))
        draw.line([left - 4, y, image.width - 10, y], fill=(220, 220, 220))
        draw.text((6, y - 7), f"{frac:.1f}", fill="black", font=small)
    for g, group in enumerate(groups):
        x0 = left + g * panel_w + 12
        cells = engine[group]["all"]
        bars = [(cells[m], COLOURS[i]) for i, m in enumerate(METRICS)]
        bars.append((bm25[group]["all"]["r_precision"], (150, 150, 150)))
        for b, (value, colour) in enumerate(bars):
            bx = x0 + b * 38
            height = panel_h - 40
            draw.rectangle([bx, base - int(value["mean"] * height), bx + 28, base], fill=colour)
            low, high = base - int(value["low"] * height), base - int(value["high"] * height)
            draw.line([bx + 14, low, bx + 14, high], fill="black", width=1)
            draw.line([bx + 10, high, bx + 18, high], fill="black", width=1)
            draw.text((bx + 2, min(high, base - int(value["mean"] * height)) - 14), f"{value['mean']:.2f}",
                      fill="black", font=small)
        draw.text((x0, base + 6), f"{group} (n={cells['n']})", fill="black", font=font)
    return image


QUERY_COLUMNS = ("text", "language", "group", "kind", "split", "relevant", "r_precision", "mrr")


def _rounded(value):
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def compact(report: dict) -> dict:
    """The report kept small in the repository: the engine's per-query records as rows under
    named columns, BM25's as its R-precision per engine row, figures to 3 places."""
    out = dict(report)
    engine, bm25 = dict(report["engine"]), dict(report["bm25_titles"])
    queries = engine.pop("queries", None)
    if queries is not None:
        engine["query_columns"] = list(QUERY_COLUMNS)
        engine["query_rows"] = [[_rounded(q[c]) for c in QUERY_COLUMNS] for q in queries]
    bm25_queries = bm25.pop("queries", None)
    if bm25_queries is not None:
        bm25["r_precision_per_query"] = [_rounded(q["r_precision"]) for q in bm25_queries]
    out["engine"] = {**engine, "summary": _rounded(engine["summary"])}
    out["bm25_titles"] = {**bm25, "summary": _rounded(bm25["summary"])}
    return out


def write_search_report(report: dict, out: Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "search.json").write_text(json.dumps(compact(report), ensure_ascii=False, separators=(",", ":")) + "\n")
    (out / "search.md").write_text(markdown(report))
    # A 64-colour palette: the chart has a handful of flat colours, and the file stays small.
    bar_chart(report).quantize(64).save(out / "search.png", optimize=True)
    return out / "search.md"
