"""Metal tone from the localiser's metal mask (``recognize/evidence.metal_tone``) against the true
metal of studio renders, and a tone-gated metal reading (the head's top metal among those of the
photo's tone, renormalised) against the head alone: top-1, fill rate and precision at 0.5.

    python tools/metal_tone_gate.py RENDERS [RENDERS ...]
"""
import json, sys
from collections import Counter
from pathlib import Path
import numpy as np
from jewelsearch.embed import load_encoder
from jewelsearch.embed.images import load_image_file
from jewelsearch.recognize.builder import load_recognizer
from jewelsearch.recognize.evidence import evidence
from jewelsearch.train.render_features import read_render_labels

TONE = {"yellow gold": "yellow", "rose gold": "rose", "white gold": "white", "platinum": "white", "silver": "white"}
r = load_recognizer(load_encoder("jewelclip-lite0"), gem_specialist=False)
metals = r.vocabulary("metal")
for folder in map(Path, sys.argv[1:]):
    rows = [x for x in read_render_labels(folder) if x.get("metal") in TONE]
    tones, heads = [], []
    for start in range(0, len(rows), 32):
        chunk = rows[start:start + 32]
        imgs = [load_image_file(folder / x["image"]).image for x in chunk]
        v, p, located = r.embed_and_locate(imgs)
        probs = r.probabilities(v, p, attributes=("metal",))["metal"]
        for img, found, pr in zip(imgs, located, probs):
            tones.append(evidence(img, found)["metal_tone"] if found is not None else None)
            heads.append(pr)
    truth = [x["metal"] for x in rows]
    tone_ok = Counter((TONE[t], tn) for t, tn in zip(truth, tones))
    print(folder.name, len(rows), "tone confusion (true tone, read tone):", dict(tone_ok))
    def read(pr, tone, gated):
        order = np.argsort(-pr)
        if gated and tone is not None:
            allowed = [i for i in range(len(metals)) if TONE.get(metals[i]) == tone]
            if allowed:
                sub = pr[allowed] / pr[allowed].sum()
                j = int(np.argmax(sub)); return metals[allowed[j]], float(sub[j])
        return metals[order[0]], float(pr[order[0]])
    for gated in (False, True):
        got = [read(pr, tn, gated) for pr, tn in zip(heads, tones)]
        acc = np.mean([g[0] == t for g, t in zip(got, truth)])
        fills = [(g[0] == t) for g, t in zip(got, truth) if g[1] >= 0.5]
        print("  gated" if gated else "  head ", "top-1 %.3f" % acc, "fill rate %.3f" % (len(fills) / len(truth)),
              "precision %.3f" % (np.mean(fills) if fills else 0), "right share %.3f" % (sum(fills) / len(truth)))
