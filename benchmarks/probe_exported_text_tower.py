"""Probe: can a text query be embedded without importing open_clip, timm or transformers?

Start-up is mostly imports (torch, then open_clip, which pulls in timm, torchvision,
torch._dynamo and transformers) and building the model. This probe measures the text half of
an exported-model path, without changing how jewelsearch loads models:

1. a tokenizer read with the ``tokenizers`` library alone (open_clip's whitespace cleaning,
   then ``tokenizer.json`` with truncation and padding to the context length), compared id for
   id with open_clip's tokenizer on a corpus of English, Chinese, emoji, HTML entities, odd
   whitespace and 500-character strings;
2. the text tower traced with ``torch.jit.trace`` and saved, its embeddings compared with the
   model's on queries of other lengths than the traced one (the encoder trims padding, so every
   batch has its own length);
3. fresh processes, interleaved: the current path (import, ``load_encoder``, one query) against
   the exported one (import torch, tokenizers and ftfy, ``torch.jit.load``, one query run without
   the profiling executor's optimisation), with
   whether open_clip or transformers got imported.

Usage: python benchmarks/probe_exported_text_tower.py [--runs 3] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CORPUS = [
    "oval sapphire pendant", "Oval SAPPHIRE pendant!!", "  rose   gold\tring \n", "",
    "a", "emerald-cut diamond solitaire, 1.5 ct, platinum (GIA)", "&amp; pearl &lt;choker&gt;",
    "蓝宝石吊坠", "玫瑰金戒指 with diamonds", "翡翠手镯，冰种", "💍 ring ✨ sparkly 💎",
    "Ünïcödé bracelet — café crème", "don't show me silver", "18k/750 gold chain 45cm",
    "x" * 500, ("sapphire " * 70)[:500], ("钻石" * 250)[:500], "🙂" * 500,
    "ring\u200bwith\u00a0nbsp", "ＦＵＬＬＷＩＤＴＨ ｒｉｎｇ", "Ohrringe aus Weißgold",
    "boucles d'oreilles en or", "anillo de compromiso", "кольцо с рубином",
]


def light_tokenize(tokenizer, texts: list[str], context_length: int):
    """open_clip's HFTokenizer call (whitespace cleaning, truncate and pad to the context
    length) on a ``tokenizers.Tokenizer``."""
    import html

    import ftfy
    import torch

    def clean(text: str) -> str:
        text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
        return " ".join(text.split()).strip()

    rows = [encoding.ids for encoding in tokenizer.encode_batch([clean(t) for t in texts])]
    return torch.tensor(rows, dtype=torch.long)


def open_light_tokenizer(path: str, context_length: int, pad_id: int):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(path)
    tokenizer.enable_truncation(max_length=context_length)
    tokenizer.enable_padding(length=context_length, pad_id=pad_id)
    return tokenizer


def prepare(out: Path) -> dict:
    import numpy as np
    import torch

    from jewelsearch.embed.default_model import minilm_path
    from jewelsearch.embed.model_folder import load_encoder

    encoder = load_encoder("jewelclip-lite0")
    context = encoder.tokenizer.context_length
    pad_id = encoder.model.text.config.pad_token_id
    tokenizer_json = str(Path(minilm_path()) / "tokenizer.json")
    light = open_light_tokenizer(tokenizer_json, context, pad_id)
    texts = [t[: encoder.max_text_chars] for t in CORPUS]
    reference_ids = encoder.tokenizer(texts)
    light_ids = light_tokenize(light, texts, context)
    ids_equal = bool(torch.equal(reference_ids, light_ids))

    class TextTower(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, ids):
            return self.model.encode_text(ids)

    example = encoder._trim_padding(reference_ids[:2])
    with torch.inference_mode(False), torch.no_grad():
        traced = torch.jit.trace(TextTower(encoder.model).eval(), example, check_trace=False)
    path = out / "text_tower.pt"
    torch.jit.save(traced, str(path))
    loaded = torch.jit.load(str(path))
    worst = 0.0
    for start in range(0, len(texts), 5):  # batches of other lengths than the traced example
        ids = encoder._trim_padding(reference_ids[start:start + 5])
        with torch.no_grad():
            got = loaded(ids)
        got = (got / got.norm(dim=-1, keepdim=True)).numpy()
        want = encoder.encode_texts(texts[start:start + 5])
        worst = max(worst, float(np.abs(got - want).max()))
    return {"tokens_equal": ids_equal, "texts": len(texts), "max_abs_diff": worst,
            "traced_length": int(example.shape[1]), "tokenizer_json": tokenizer_json,
            "context_length": int(context), "pad_id": int(pad_id), "tower": str(path)}


CURRENT = """
import json, sys, time
t0 = time.perf_counter()
from jewelsearch.embed.model_folder import load_encoder
t1 = time.perf_counter()
encoder = load_encoder("jewelclip-lite0")
t2 = time.perf_counter()
encoder.encode_texts(["oval sapphire pendant"])
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "query": t3 - t2,
                  "open_clip": "open_clip" in sys.modules, "transformers": "transformers" in sys.modules}))
"""

EXPORTED = """
import json, sys, time
t0 = time.perf_counter()
import torch
sys.path.insert(0, {bench!r})
from probe_exported_text_tower import light_tokenize, open_light_tokenizer
t1 = time.perf_counter()
tower = torch.jit.load({tower!r})
tokenizer = open_light_tokenizer({tokenizer_json!r}, {context_length}, {pad_id})
t2 = time.perf_counter()
# The profiling executor optimises a graph over its first calls (seconds on a 2-core machine);
# a command that embeds one query is better served by the plain interpreter.
with torch.no_grad(), torch.jit.optimized_execution(False):
    ids = light_tokenize(tokenizer, ["oval sapphire pendant"], {context_length})
    ids = ids[:, : int((ids != {pad_id}).any(0).nonzero().max()) + 1]
    tower(ids)
t3 = time.perf_counter()
print(json.dumps({{"import": t1 - t0, "load": t2 - t1, "query": t3 - t2,
                  "open_clip": "open_clip" in sys.modules, "transformers": "transformers" in sys.modules}}))
"""


def fresh(code: str) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch)
        out.mkdir(parents=True, exist_ok=True)
        found = prepare(out)
        print(json.dumps({k: v for k, v in found.items() if k != "tokenizer_json"}), flush=True)
        exported = EXPORTED.format(bench=str(Path(__file__).resolve().parent), **found)
        runs: dict[str, list[dict]] = {"current": [], "exported": []}
        for run in range(args.runs):
            order = ("current", "exported") if run % 2 == 0 else ("exported", "current")
            for name in order:
                runs[name].append(fresh(CURRENT if name == "current" else exported))
            print(f"run {run + 1} (load average {os.getloadavg()[0]:.1f}): "
                  + ", ".join(f"{n} {sum(r[-1][k] for k in ('import', 'load', 'query')):.2f} s"
                              for n, r in runs.items()), flush=True)
        for name, rows in runs.items():
            medians = {k: statistics.median(r[k] for r in rows) for k in ("import", "load", "query")}
            total = statistics.median(sum(r[k] for k in medians) for r in rows)
            print(f"{name}: median total {total:.2f} s (import {medians['import']:.2f}, load "
                  f"{medians['load']:.2f}, query {medians['query']:.2f}); open_clip imported: "
                  f"{rows[0]['open_clip']}, transformers imported: {rows[0]['transformers']}")


if __name__ == "__main__":
    main()
