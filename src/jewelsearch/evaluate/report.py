"""HTML report with plots for an evaluation dict (plots drawn with PIL, no matplotlib)."""

from __future__ import annotations

import base64
import html
import io
import json
import re
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont


def confusion_png(confusion: dict, title: str) -> bytes:
    rows, cols, counts = confusion["rows"], confusion["cols"], confusion["counts"]
    cell = 22 if len(cols) <= 20 else 9
    label_w = 130 if len(rows) <= 20 else 0
    top = 40 + (110 if len(cols) <= 20 else 0)
    width, height = label_w + cell * len(cols) + 20, top + cell * len(rows) + 20
    image = Image.new("RGB", (max(width, 320), height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    draw.text((6, 6), title, fill="black", font=font)
    for r, row in enumerate(counts):
        total = max(sum(row), 1)
        for c, value in enumerate(row):
            share = value / total
            shade = int(255 * (1 - share))
            colour = (shade, shade, 255) if rows[r] == cols[c] else (255, shade, shade)
            x, y = label_w + c * cell, top + r * cell
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=colour, outline=(230, 230, 230))
            if cell >= 20 and value:
                draw.text((x + 3, y + 5), str(value), fill="black", font=font)
        if label_w:
            draw.text((4, top + r * cell + 5), rows[r][:20], fill="black", font=font)
    if len(cols) <= 20:
        for c, label in enumerate(cols):
            text = Image.new("RGB", (105, 12), "white")
            ImageDraw.Draw(text).text((0, 0), label[:17], fill="black", font=font)
            text = text.rotate(90, expand=True)
            image.paste(text, (label_w + c * cell + 5, 40))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def robustness_png(report: dict) -> bytes:
    robust = report["robustness"]
    conditions = ["clean"] + [k for k in robust if k != "clean"]
    series = sorted({f"{s}/{m}" for sets in robust.values() for s, ms in sets.items() for m in ms})
    bar_h, gap = 10, 6
    width = 760
    height = 40 + len(series) * (len(conditions) * bar_h + gap + 14)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    palette = [(40, 40, 40), (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40),
               (148, 103, 189), (140, 86, 75)]
    draw.text((6, 6), "robustness: each bar is one condition; length = metric (0..1)", fill="black")
    for i, cond in enumerate(conditions):
        draw.rectangle([100 + i * 92, 22, 108 + i * 92, 30], fill=palette[i % len(palette)])
        draw.text((112 + i * 92, 20), cond[:13], fill="black")
    y = 40
    for name in series:
        # "products_val / cut_heads accuracy": at this font a bare dot in the key is lost.
        set_name, metric = name.split("/", 1)
        # "gemstone_heads_subject_piece.accuracy" -> "gemstone heads (subject=piece), accuracy".
        shown = re.sub(r"_subject_([a-z]+)", r" (subject=\1)", metric).replace("_", " ").replace(".", ", ")
        draw.text((6, y), f"{set_name} / {shown}"[:90], fill="black")
        y += 14
        for i, cond in enumerate(conditions):
            set_name, metric = name.split("/", 1)
            value = robust.get(cond, {}).get(set_name, {}).get(metric)
            if value is not None:
                draw.rectangle([200, y, 200 + int(500 * value), y + bar_h - 2], fill=palette[i % len(palette)])
                draw.text((205 + int(500 * value), y - 1), f"{value:.2f}", fill="black")
            y += bar_h
        y += gap
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _img(data: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def write_report(report: dict, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "eval.json").write_text(json.dumps(report, indent=2))
    parts = [f"<h1>jewelsearch evaluation</h1><p>model <code>{html.escape(report['model_id'])}</code>, "
             f"recognition by {report['method']}, {report['date']}</p>"]
    for name, result in report["sets"].items():
        parts.append(f"<h2>{html.escape(name)} (n={result['n']})</h2><table><tr><th>measure</th><th>value</th></tr>")
        for key, value in result.items():
            if isinstance(value, dict) and "accuracy" in value:
                parts.append(f"<tr><td>{key}</td><td>acc {value['accuracy']:.3f} · top5 {value['top5']:.3f} · "
                             f"macro recall {value['macro_recall']:.3f} · macro F1 {value['macro_f1']:.3f} · "
                             f"ECE {value.get('ece', float('nan')):.3f}</td></tr>")
            elif key in ("image_retrieval", "same_product"):
                parts.append(f"<tr><td>{key}</td><td>{html.escape(json.dumps(value))}</td></tr>")
            elif key == "text_retrieval":
                for q, v in value.items():
                    parts.append(f"<tr><td>text→image {q}</td><td>recall@10 {v['recall@10']:.3f} · "
                                 f"precision@10 {v['precision@10']:.3f} · MRR {v['mrr']:.3f} "
                                 f"({v['queries']} queries)</td></tr>")
        parts.append("</table>")
        for key, value in result.items():
            if isinstance(value, dict) and "confusion" in value and len(value["confusion"]["rows"]) > 1:
                png = confusion_png(value["confusion"], f"{name}: {key}")
                (out_dir / f"confusion-{name}-{key}.png").write_bytes(png)
                parts.append(_img(png, f"confusion matrix {name} {key}"))
    if "robustness" in report:
        png = robustness_png(report)
        (out_dir / "robustness.png").write_bytes(png)
        parts.append("<h2>Robustness</h2>" + _img(png, "robustness under degradations"))
        parts.append(_worst_drops_table(report))
    page = ("<!doctype html><meta charset=utf-8><title>jewelsearch evaluation</title>"
            "<style>body{font:14px system-ui;margin:2em;max-width:1100px}td,th{border:1px solid #ccc;"
            "padding:3px 8px}table{border-collapse:collapse;margin:1em 0}img{margin:8px;border:1px solid #ddd}"
            "</style>" + "\n".join(parts))
    path = out_dir / "report.html"
    path.write_text(page)
    return path


def _worst_drops_table(report: dict) -> str:
    """Each metric's largest drop under one degradation, with the 95 % interval over the photos
    where the metric is an accuracy (small sets carry several points of sampling error)."""
    drops = report.get("worst_drop_points") or {}
    intervals = report.get("worst_drop_intervals") or {}
    rows = ["<table><tr><th>metric</th><th>largest drop (points)</th><th>95 % interval</th></tr>"]
    for key, drop in sorted(drops.items(), key=lambda kv: -kv[1]):
        interval = intervals.get(key)
        shown = f"{interval[0]:.1f} to {interval[1]:.1f}" if interval else "—"
        rows.append(f"<tr><td>{html.escape(key)}</td><td>{drop:.1f}</td><td>{shown}</td></tr>")
    return "".join(rows) + "</table>"
