"""The first training step: fine-tune the default model on real photos into a new model folder.

Contrastive fine-tuning of the projections plus the attribute heads (``contrastive.train``),
then the run's history beside the weights (``training_history.json``): the epoch kept, the
temperatures and how many photos trained and calibrated. Every later step refits something
inside the folder this step writes.
"""

from __future__ import annotations

import json
from pathlib import Path

from jewelsearch.embed import artifacts
from jewelsearch.train.contrastive import TrainConfig, TrainResult
from jewelsearch.train.contrastive import train as run_training
from jewelsearch.train.labelled_data import read_renders, read_shared_data
from jewelsearch.train.splits import held_out_render


def train_encoder(data_root: Path, out: Path, work: Path, *, renders: Path | None = None, epochs: int = 60,
                  seed: int = 0) -> TrainResult:
    """Train on the photo sets under ``data_root`` (and the studio ``renders``, less the held-out
    ones) and write the model folder ``out`` with its history. Raises ValueError when there is
    nothing to train on."""
    records = read_shared_data(data_root)
    if not any(r.split == "train" for r in records):
        raise ValueError(f"no training photos under {data_root}")
    if renders is not None and not (Path(renders) / "labels.jsonl").is_file():
        raise ValueError(f"no labels.jsonl in {renders}")
    studio = read_renders(renders, held_out=held_out_render) if renders is not None else []
    result = run_training(records, out, work, TrainConfig(epochs=epochs, seed=seed), renders=studio)
    write_training_history(Path(out), result)
    return result


def write_training_history(folder: Path, result: TrainResult) -> Path:
    """``training_history.json``: what the evaluation and later refits read about the run."""
    path = Path(folder) / artifacts.TRAINING_HISTORY
    path.write_text(json.dumps(
        {"best_epoch": result.best_epoch, "temperatures": result.temperatures,
         "trained_on": result.trained_on, "calibrated_on": result.calibrated_on,
         "views": list(TrainConfig().views), "history": result.history}, indent=2))
    return path
