"""Metal tone from the localiser's metal mask (``recognize/evidence.metal_tone``) against the true
metal of studio renders, and a tone-gated metal reading (the head's top metal among those of the
photo's tone, renormalised) against the head alone: top-1, fill rate and precision at 0.5.

    python tools/metal_tone_gate.py RENDERS [RENDERS ...]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

from jewelsearch.embed import load_encoder
from jewelsearch.embed.images import load_image_file
from jewelsearch.recognize.builder import load_recognizer
from jewelsearch.recognize.evidence import evidence
from jewelsearch.train.render_features import read_render_labels

TONE = {"yellow gold": "yellow", "rose gold": "rose", "white gold": "white", "platinum": "white", "silver": "white"}
FILL_AT = 0.5


def read_folder(recognizer, folder: Path):
    """Per render with a metal: its true metal, the pixel tone and the metal head's probabilities."""
    rows = [row for row in read_render_labels(folder) if row.get("metal") in TONE]
    tones, probabilities = [], []
    for start in range(0, len(rows), 32):
        images = [load_image_file(folder / row["image"]).image for row in rows[start:start + 32]]
        vectors, pooled, located = recognizer.embed_and_locate(images)
        probabilities += list(recognizer.probabilities(vectors, pooled, attributes=("metal",))["metal"])
        tones += [evidence(image, found)["metal_tone"] if found is not None else None
                  for image, found in zip(images, located)]
    return [row["metal"] for row in rows], tones, probabilities


def reading(probabilities: np.ndarray, tone: str | None, metals: list[str], gated: bool) -> tuple[str, float]:
    """The metal read and its probability: the head's top, or with ``gated`` its top among the
    metals of the photo's tone (renormalised over them)."""
    if gated and tone is not None:
        allowed = [i for i, metal in enumerate(metals) if TONE.get(metal) == tone]
        if allowed:
            share = probabilities[allowed] / probabilities[allowed].sum()
            best = int(np.argmax(share))
            return metals[allowed[best]], float(share[best])
    best = int(np.argmax(probabilities))
    return metals[best], float(probabilities[best])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("renders", type=Path, nargs="+")
    args = parser.parse_args()
    recognizer = load_recognizer(load_encoder("jewelclip-lite0"), gem_specialist=False)
    metals = recognizer.vocabulary("metal")
    for folder in args.renders:
        truth, tones, probabilities = read_folder(recognizer, folder)
        confusion = Counter((TONE[metal], tone) for metal, tone in zip(truth, tones))
        print(folder.name, len(truth), "renders; (true tone, pixel tone):", dict(confusion))
        for gated in (False, True):
            read = [reading(p, tone, metals, gated) for p, tone in zip(probabilities, tones)]
            top1 = np.mean([metal == true for (metal, _), true in zip(read, truth)])
            fills = [metal == true for (metal, p), true in zip(read, truth) if p >= FILL_AT]
            print(f"  {'gated' if gated else 'head '} top-1 {top1:.3f}  fill rate {len(fills) / len(truth):.3f}  "
                  f"precision {np.mean(fills) if fills else 0:.3f}  right fills {sum(fills) / len(truth):.3f}")


if __name__ == "__main__":
    main()
