"""Recommendation evaluation report: JSON, a markdown table and a bar chart."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

from jewelsearch.evaluate.recommend import COVERAGE_MARGINS, SEARCH_SPACE


def bar_chart(report: dict) -> Image.Image:
    results = report["results"]
    metrics = ("hr@10", "ndcg@10", "coverage", "multi_taste_ndcg@10")
    colours = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]
    width, row = 820, 26
    height = 50 + len(results) * (len(metrics) * 12 + row)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((8, 8), f"Simulated shoppers: {report['users']} users, catalog {report['catalog']} items, "
                      f"seed {report['seed']}", fill="black")
    for i, metric in enumerate(metrics):
        draw.rectangle([380 + i * 100, 26, 390 + i * 100, 36], fill=colours[i])
        draw.text((394 + i * 100, 25), metric, fill="black")
    y = 50
    for name, values in results.items():
        draw.text((8, y), name, fill="black")
        y += 14
        for i, metric in enumerate(metrics):
            value = values[metric]
            draw.rectangle([200, y, 200 + int(560 * value), y + 9], fill=colours[i])
            draw.text((206 + int(560 * value), y - 2), f"{value:.3f}", fill="black")
            y += 12
        y += row - 14
    return image


def pooled_chart(report: dict) -> Image.Image:
    """Pooled NDCG@10 of every method over all reported populations: the held-out events, and
    the next view in the same visit, the blend's bars in the darker shade."""
    panels = [("held-out events", report["pooled"])]
    if report.get("pooled_next_in_visit"):
        panels.append(("next item in this visit", report["pooled_next_in_visit"]))
    names = list(report["pooled"]["ndcg@10"])
    width, row, left = 860, 16, 250
    height = 60 + len(panels) * (len(names) * row + 40)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    pooled = report["pooled"]
    draw.text((8, 8), f"NDCG@10 pooled over populations {pooled['seeds']} ({pooled['users']} shoppers); "
                      f"shoppers: {report.get('shoppers_from', 'catalog')}", fill="black")
    top = max(max(p["ndcg@10"].values()) for _, p in panels) or 1.0
    scale = (width - left - 80) / top
    y = 32
    for title, values in panels:
        draw.text((8, y), f"{title} (best baseline: {values['best_baseline']}, blend "
                          f"{100 * values['ndcg_gain_over_best_baseline']:+.1f}% {_interval(values)})", fill="black")
        y += 20
        for name in names:
            value = values["ndcg@10"][name]
            ours = name.startswith("blended")
            draw.text((8, y), name, fill="black")
            draw.rectangle([left, y + 2, left + int(scale * value), y + row - 4],
                           fill=(31, 80, 160) if ours else (150, 180, 220))
            draw.text((left + int(scale * value) + 6, y), f"{value:.3f}", fill="black")
            y += row
        y += 20
    return image


def write_recommend_report(report: dict, out: Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "recommend.json").write_text(json.dumps(report, indent=2))
    bar_chart(report).save(out / "recommend.png")
    if report.get("pooled"):
        pooled_chart(report).save(out / "recommend-pooled.png")
    lines = ["| method | HR@10 | NDCG@10 | coverage | diversity | HR@10 (2+ tastes) | NDCG@10 (2+ tastes) "
             "| next in visit HR@10 | next in visit NDCG@10 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in report["results"].items():
        lines.append(f"| {name} | {r['hr@10']:.3f} | {r['ndcg@10']:.3f} | {r['coverage']:.3f} | "
                     f"{r['diversity']:.3f} | {r['multi_taste_hr@10']:.3f} | {r['multi_taste_ndcg@10']:.3f} | "
                     f"{r.get('next_in_visit_hr@10', 0.0):.3f} | {r.get('next_in_visit_ndcg@10', 0.0):.3f} |")
    lines.append("")
    config = report.get("config", {})
    lines += [
        "## How this was measured",
        "",
        f"* **Simulated shoppers** ({report['users']} users, seed {report['seed']}; catalog of "
        f"{report['catalog']} items, {report.get('events', 0)} events). Each shopper has 1-3 latent tastes, "
        "each a category plus 1-3 of metal, gemstone, cut and price band, anchored on a real catalog "
        f"item. They browse in {config.get('sessions')} sessions of {config.get('views_per_session')} views; "
        "a session follows one taste. An item's appeal is (0.02 + share of the taste's attributes it "
        f"matches ^ {config.get('sharpness')}) x a Zipf({config.get('popularity_skew')}) popularity; "
        f"{config.get('noise')} of views are random. Views lead to likes, cart adds and purchases more "
        "often for better matches. Deterministic by seed (`recommend/simulate.py`). "
        + ("Tastes are drawn from the fields the catalog was given only, not those recognition filled "
           "in (`--shoppers-from given`), so another model meets the same shoppers."
           if report.get("shoppers_from") == "given attributes" else
           "Tastes are drawn from the catalog as served, fields recognition filled in included, so a "
           "change to recognition redraws the shoppers (`--shoppers-from given` keeps them)."),
        "* **Split**: each shopper's last 3 events are held out; their items, minus ones already bought, "
        "are the targets. Every method sees only earlier events, of all shoppers.",
        "* **Next item in this visit**: of the same lists, whether the shopper's next view is among them, "
        "where that view comes in the same visit (within 30 minutes of their last earlier event) and is not "
        "something already bought: what a product page's \"you may also like\" serves.",
        "* **Strong baselines** (`evaluate/baselines.py`): EASE (closed form), ALS and BPR (`implicit`), VBPR "
        "(`cornac`, fed the catalog's image embeddings). Each one's main hyper-parameter is chosen by the best "
        "mean NDCG@10 on the tuning populations, never on a reported one: "
        + ", ".join(f"{name} {value:g}" for name, value in report.get("strong_baselines", {}).items()) + ".",
        (f"* **Tuning**: blend weights come from a random search ({report['tuning_trials']} settings"
         f"{_searched(report)}) on "
         f"two separate populations (seeds {report.get('tune_seed')} and {report.get('tune_seed', 0) + 1}), "
         "keeping the best mean NDCG@10 among settings whose coverage beats the content-only baseline's "
         f"by at least {COVERAGE_MARGINS[0]} on both; when none does, by the next of "
         f"{', '.join(str(m) for m in COVERAGE_MARGINS[1:])}. {_margin_sentence(report)} "
         "The populations reported here are never tuned on."
         if report.get("tuning_trials") else
         "* **Tuning**: none in this run (`--no-tune`): the weights below are the configured ones "
         "(the defaults, or `[blend]` in the home's `jewelsearch.toml`), as an earlier run tuned them "
         "on other populations and, possibly, another model."),
        "* **Rows starting with `blended,`** are ablations: the tuned weights with one part switched off.",
        _caveat(report),
        "",
    ]
    lines.append(f"NDCG@10 gain over the best baseline ({report['best_baseline']}): "
                 f"{100 * report['ndcg_gain_over_best_baseline']:+.1f}% {_interval(report)}; coverage minus "
                 f"content-only: {report['coverage_vs_content']:+.3f}. Weights: {json.dumps(report['weights'])}.")
    if report.get("replicates"):
        lines += ["", f"The reported population and {len(report['replicates'])} more (same weights; none of "
                      "them tuned on). Intervals are 95 % paired bootstraps over shoppers:", "",
                  "| seed | best baseline | NDCG@10 gain | 95 % interval | coverage minus content-only |",
                  "|---|---|---|---|---|"]
        for row in [{"seed": report["seed"], **{k: report[k] for k in ("best_baseline",
                     "ndcg_gain_over_best_baseline", "ndcg_gain_interval", "coverage_vs_content")}}] \
                + report["replicates"]:
            gain = 100 * row["ndcg_gain_over_best_baseline"]
            lines.append(f"| {row['seed']} | {row['best_baseline']} | {gain:+.1f}% | {_interval(row)} "
                         f"| {row['coverage_vs_content']:+.3f} |")
        lines += ["", f"Mean NDCG@10 gain over the best baseline across these populations: "
                      f"{100 * report['mean_ndcg_gain_over_best_baseline']:+.1f}%."]
    pooled = report.get("pooled")
    following = report.get("pooled_next_in_visit")
    if following:
        lines += ["", f"**Next item in this visit**, pooled ({following['users']} shoppers whose next view "
                      f"came in the same visit): blended NDCG@10 {following['ndcg@10']['blended (jewelsearch)']:.3f} "
                      f"against {following['best_baseline']} {following['ndcg@10'][following['best_baseline']]:.3f}, "
                      f"gain **{100 * following['ndcg_gain_over_best_baseline']:+.1f}%** {_interval(following)}."]
    if pooled:
        lines += ["", f"**Pooled** over all {len(pooled['seeds'])} populations ({pooled['users']} shoppers with "
                      f"held-out events), against the baseline best over all of them ({pooled['best_baseline']}, "
                      f"NDCG@10 {pooled['ndcg@10'][pooled['best_baseline']]:.3f}): blended NDCG@10 "
                      f"{pooled['ndcg@10']['blended (jewelsearch)']:.3f}, gain "
                      f"**{100 * pooled['ndcg_gain_over_best_baseline']:+.1f}%** {_interval(pooled)}; coverage "
                      f"minus content-only is at least {pooled['smallest_coverage_vs_content']:+.3f} in every "
                      "population."]
    (out / "recommend.md").write_text("\n".join(lines) + "\n")
    return out / "recommend.md"


def _searched(report: dict) -> str:
    searched = report.get("tuning_searched")
    if not searched or set(searched) == set(SEARCH_SPACE):
        return ""
    return f" of {', '.join(searched)}; the other weights as configured"


def _caveat(report: dict) -> str:
    looks = report.get("looks")
    if looks:
        spread = looks["spread"]
        cats = sorted(s["categories"] for s in spread)
        metals = sorted(s["metals"] for s in spread)
        return (f"* **Shoppers of looks**: each taste is one of {looks['clusters']} clusters of look-alike pieces "
                "(spherical k-means on the image embeddings after each item's category mean and metal mean are "
                "taken out); an item's appeal is its closeness to the cluster's centre, 0 for the farther half "
                f"of the catalog. A cluster's 20 closest pieces span a median of {cats[len(cats) // 2]} categories "
                f"and {metals[len(metals) // 2]} metals. No catalog field names these tastes, so the `taste` source "
                "is not favoured here.")
    return ("* **Caveat**: the simulated tastes are defined over the same catalog attributes the "
            "`taste` source compares, so that source is favoured by construction; real shoppers' "
            "tastes are not that tidy (`--shoppers-from looks` draws tastes no field names).")


def _interval(row: dict) -> str:
    low, high = row.get("ndcg_gain_interval") or (float("nan"), float("nan"))
    return f"[{100 * low:+.1f}%, {100 * high:+.1f}%]"


def _margin_sentence(report: dict) -> str:
    margin = report.get("tuning_margin")
    if margin is None:
        return ("No setting tried matched content-only's coverage on both, so these weights are simply "
                "the best mean NDCG@10.")
    return f"The chosen weights cleared it by {margin}."
