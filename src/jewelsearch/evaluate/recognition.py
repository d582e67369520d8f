"""The evaluation suite: recognition, retrieval and robustness of one model.

Runs on whichever labelled sets it is given (the real photo sets, a folder of
class subfolders, or a CSV) and returns one JSON-able dict; ``eval_report``
turns it into an HTML page with plots.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Callable, Sequence

import numpy as np

from jewelsearch.embed.captions import METAL_WORDS, prompts_for
from jewelsearch.embed.vocab import CATEGORY_EQUIVALENT, GEMSTONE_PHOTO_CLASSES
from jewelsearch.evaluate import metrics
from jewelsearch.recognize.recognizer import Recognizer
from jewelsearch.train.augment import DEGRADATIONS, degrade
from jewelsearch.train.labelled_data import Record
from jewelsearch.train.photo_embeddings import embed_records

log = logging.getLogger(__name__)

# Per record, the attribute heads that should judge it.
Judge = Callable[[Sequence[Record]], list]


def _is_gem_task(records: Sequence[Record]) -> bool:
    """Photos of loose stones: every one names a gemstone and none a category."""
    return all(r.labels.get("gemstone") for r in records) and not any(r.labels.get("category") for r in records)


def judged_probabilities(recognizer: Recognizer, judge: Judge | None, embeddings: np.ndarray,
                         records: Sequence[Record], pooled: np.ndarray | None = None,
                         subject: str = "piece") -> dict[str, np.ndarray]:
    """Head probabilities with each record judged by the heads ``judge`` picks for it (for worn
    photos, the fold heads that never trained on its product); the recogniser's own heads when
    ``judge`` is None."""
    if judge is None:
        return recognizer.probabilities(embeddings, pooled, subject=subject)
    chosen = judge(records)
    out: dict[str, np.ndarray] = {}
    for heads in {id(h): h for h in chosen}.values():
        rows = np.array([i for i, h in enumerate(chosen) if h is heads])
        part = recognizer.with_heads(heads).probabilities(
            embeddings[rows], None if pooled is None else pooled[rows], subject=subject)
        for attribute, values in part.items():
            out.setdefault(attribute, np.zeros((len(records), values.shape[1]), values.dtype))[rows] = values
    return out


def _classify(recognizer: Recognizer, embeddings, records, attribute, *, zero_shot=False,
              restrict=None, equivalents=None, pooled=None, subject: str = "piece",
              judge: Judge | None = None) -> dict | None:
    keep = [i for i, r in enumerate(records) if r.labels.get(attribute)]
    if not keep:
        return None
    if zero_shot:
        probs = recognizer.zero_shot_probabilities(embeddings[keep])[attribute]
        vocab = _zero_vocab(attribute)
    else:
        if recognizer.heads is None:
            return None
        probs = judged_probabilities(recognizer, judge, embeddings[keep], [records[i] for i in keep],
                                     None if pooled is None else pooled[keep], subject)[attribute]
        vocab = recognizer.heads.vocabularies[attribute]
    truth = [records[i].labels[attribute] for i in keep]
    if equivalents:
        truth = [equivalents.get(t, t) for t in truth]
    truth_known = [t in vocab for t in truth]
    if not all(truth_known):
        keep_rows = [i for i, ok in enumerate(truth_known) if ok]
        probs, truth = probs[keep_rows], [truth[i] for i in keep_rows]
    return metrics.classification(truth, probs, vocab, restrict)


def _zero_vocab(attribute: str) -> list[str]:
    from jewelsearch.recognize.recognizer import ZERO_SHOT_VOCABULARIES
    return list(ZERO_SHOT_VOCABULARIES[attribute])


def _text_queries(recognizer: Recognizer, records, embeddings) -> dict:
    return text_queries(recognizer.encoder.encode_texts, records, embeddings)


def text_queries(encode_texts, records, embeddings) -> dict:
    """Attribute queries over a gallery: category+metal, category alone, gemstone.
    ``encode_texts``: words -> unit text vectors; ``embeddings``: the gallery's image vectors."""
    out = {}
    builders = {
        "category+metal": (lambda r: (r.labels.get("category"), r.labels.get("metal"))
                           if r.labels.get("metal") else None,
                           lambda key: f"{METAL_WORDS[key[1]][0]} {key[0]}"),
        "category": (lambda r: r.labels.get("category"), lambda key: f"a {key}"),
        "gemstone": (lambda r: r.labels.get("gemstone") if r.labels.get("gemstone") not in (None, "none")
                     else None, lambda key: prompts_for("gemstone", key)[0]),
    }
    for name, (key_of, text_of) in builders.items():
        keys = [key_of(r) for r in records]
        distinct = sorted({k for k in keys if k is not None})
        if not distinct:
            continue
        queries = encode_texts([text_of(k) for k in distinct])
        relevant = [np.array([k == key for k in keys]) for key in distinct]
        out[name] = metrics.text_retrieval(queries, relevant, embeddings)
        out[name]["examples"] = [text_of(k) for k in distinct[:5]]
    return out


def evaluate(recognizer: Recognizer, sets: dict[str, Sequence[Record]], *,
             robustness: bool = True, progress: Callable[[int], None] | None = None,
             judge: Judge | None = None) -> dict:
    """``sets`` maps a name to records, e.g. products_val, gemstones_val, worn. ``judge`` picks
    the heads for each record (see ``judged_probabilities``)."""
    started = time.time()
    report: dict = {"model_id": recognizer.encoder.model_id, "method": recognizer.method,
                    "date": time.strftime("%Y-%m-%d"), "sets": {}}
    clean_hits: dict[str, dict[str, list]] = {}
    for name, records in sets.items():
        embeddings, pooled = embed_records(recognizer.embed, records, None, progress)
        report["sets"][name] = _evaluate_set(recognizer, name, records, embeddings, pooled=pooled, judge=judge)
        clean_hits[name] = _take_hits(report["sets"][name])
    if robustness:
        report["robustness"] = {}
        report["drop_intervals"] = defaultdict(dict)
        for degradation in DEGRADATIONS:
            report["robustness"][degradation] = {}
            for name, records in sets.items():
                embeddings, pooled = embed_records(recognizer.embed, records,
                                                   lambda image: degrade(image, degradation), progress)
                result = _evaluate_set(recognizer, name, records, embeddings, light=True, pooled=pooled, judge=judge)
                for metric, hits in _take_hits(result).items():
                    # The same photos judged clean and degraded: how sure is each drop?
                    report["drop_intervals"][f"{name}/{metric}"][degradation] = \
                        metrics.paired_drop_interval(clean_hits[name][metric], hits)
                report["robustness"][degradation][name] = _headline(result)
        report["robustness"]["clean"] = {n: _headline(s) for n, s in report["sets"].items()}
        report["drop_intervals"] = dict(report["drop_intervals"])
    report["seconds"] = round(time.time() - started, 1)
    return report


def _evaluate_set(recognizer, name, records, embeddings, light: bool = False, pooled=None,
                  judge: Judge | None = None) -> dict:
    result: dict = {"n": len(records)}
    gem_task = _is_gem_task(records)
    equivalents = CATEGORY_EQUIVALENT if any(r.labels.get("category") == "pendant" for r in records) else None
    for attribute in ("category", "metal", "gemstone", "cut"):
        restrict = GEMSTONE_PHOTO_CLASSES if (gem_task and attribute == "gemstone") else None
        # Loose-stone photos are recognised as such (the API's subject=stone).
        heads = _classify(recognizer, embeddings, records, attribute, restrict=restrict,
                          equivalents=equivalents if attribute == "category" else None, pooled=pooled,
                          subject="stone" if gem_task else "piece", judge=judge)
        if heads is not None:
            result[f"{attribute}_heads"] = heads
        if gem_task and attribute == "gemstone" and recognizer.gem_specialist is not None and not light:
            # The same photos recognised as if they showed jewelry (the default subject: the
            # general heads, with the pooled maps as the API has them), for callers that do not
            # say what the photo is.
            result["gemstone_heads_subject_piece"] = _classify(
                recognizer, embeddings, records, attribute, restrict=restrict, judge=judge, pooled=pooled)
        if light and heads is not None:
            continue
        zero = _classify(recognizer, embeddings, records, attribute, zero_shot=True, restrict=restrict,
                         equivalents=equivalents if attribute == "category" else None)
        if zero is not None:
            result[f"{attribute}_zero_shot"] = zero
    label_key = "gemstone" if gem_task else "category"
    labels = [(equivalents or {}).get(r.labels.get(label_key), r.labels.get(label_key)) for r in records]
    if all(labels):
        result["image_retrieval"] = metrics.image_retrieval(embeddings, labels)
    if any(r.group for r in records):
        result["same_product"] = metrics.same_product_retrieval(embeddings, [r.group for r in records])
    if not light:
        result["text_retrieval"] = _text_queries(recognizer, records, embeddings)
    return result


def _take_hits(result: dict) -> dict[str, list]:
    """Per-photo right/wrong of each head's accuracy (``metrics.classification``), removed from
    ``result`` so the report keeps its aggregates only."""
    return {f"{key}.accuracy": value.pop("correct") for key, value in result.items()
            if isinstance(value, dict) and "correct" in value}


def _headline(result: dict) -> dict:
    """The few numbers compared across degradations."""
    out = {}
    for key, value in result.items():
        if isinstance(value, dict) and "accuracy" in value:
            out[f"{key}.accuracy"] = value["accuracy"]
        if key == "image_retrieval":
            out["image_retrieval.precision@10"] = value["precision@10"]
        if key == "same_product":
            out["same_product.recall@10"] = value["recall@10"]
    return out


def worst_drop_intervals(report: dict) -> dict[str, list[float]]:
    """For each accuracy in ``robustness_drops``, the 95 % interval of its drop under the
    degradation that gave the worst one (paired bootstrap over the photos)."""
    clean = report["robustness"]["clean"]
    out = {}
    for key, by_degradation in report.get("drop_intervals", {}).items():
        name, metric = key.split("/", 1)
        worst = max(by_degradation, key=lambda d: clean[name].get(metric, 0) - report["robustness"][d][name][metric])
        out[key] = [round(v, 1) for v in by_degradation[worst]]
    return out


def robustness_drops(report: dict) -> dict[str, float]:
    """Worst drop (in points) of each headline metric under any single degradation."""
    worst: dict[str, float] = defaultdict(float)
    clean = report["robustness"]["clean"]
    for degradation, sets in report["robustness"].items():
        if degradation == "clean":
            continue
        for name, values in sets.items():
            for metric, value in values.items():
                drop = 100 * (clean[name].get(metric, value) - value)
                key = f"{name}/{metric}"
                worst[key] = max(worst[key], drop)
    return dict(worst)
