"""The robust-top step: tune the image tower's top against photo-quality losses, and store it.

Builds (or reuses) the distillation set, runs ``robust_tuning.tune_top`` and stores the result
either as the recognition top beside the untouched tower (the default: search, stored
embeddings and the model id stay) or into the tower itself. Writes ``robust_tuning.json``,
whose list of worn products seen keeps those products out of evaluation.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from jewelsearch.embed import artifacts
from jewelsearch.embed.images import load_image_file
from jewelsearch.embed.model_folder import store_parameters
from jewelsearch.recognize.recognition_top import RecognitionTop
from jewelsearch.train.labelled_data import Record
from jewelsearch.train.recipes import distillation_recipe, tuning_checkpoint
from jewelsearch.train.robust_tuning import DistillationSet, distillation_set, tune_top, tuned_parameter_names
from jewelsearch.train.splits import product_of

log = logging.getLogger(__name__)

STORES = ("recognition", "tower")


def tune_robust_top(encoder, records: Sequence[Record], worn: Sequence[Record], *, views: int, epochs: int,
                    lr: float, clean_weight: float, seed: int, work: Path | None = None,
                    store: str = "recognition", progress: Callable[[str], None] = log.info) -> tuple[dict, Path]:
    """Tune on ``records`` plus the unlabelled ``worn`` background photos and store the tuned
    top in ``encoder.folder``; returns (summary, the file written). With ``work`` the
    distillation set and per-epoch checkpoints are kept there, so a rerun resumes. Raises
    ValueError when the photos leave none to train on or none held out."""
    if store not in STORES:
        raise ValueError(f"store must be one of {STORES}, not {store!r}")
    folder = Path(encoder.folder)
    photos = list(records) + list(worn)
    paths = sorted(str(r.path) for r in photos)
    recipe = distillation_recipe(encoder, paths, views=views, seed=seed)
    cache = Path(work) / "distillation.pt" if work else None
    data = DistillationSet.load(cache, recipe) if cache else None
    if data is not None:
        progress(f"reusing the distillation set in {cache}")
    else:
        data = distillation_set(encoder, paths, lambda p: load_image_file(Path(p)).image, views=views, seed=seed,
                                progress=progress)
        if cache:
            data.save(cache, recipe)
    checkpoint = tuning_checkpoint(work, recipe, epochs=epochs, lr=lr, clean_weight=clean_weight, seed=seed) \
        if work else None
    summary = tune_top(encoder, data, epochs=epochs, lr=lr, clean_weight=clean_weight, seed=seed,
                       checkpoint=checkpoint, progress=progress)
    if store == "tower":
        state = encoder.model.state_dict()
        # float32: what was evaluated is what loads.
        store_parameters(folder, {name: state[name] for name in tuned_parameter_names(encoder.model)})
        written = folder / artifacts.WEIGHTS_FILE
        top_file = folder / artifacts.RECOGNITION_TOP_WEIGHTS
        if top_file.is_file():
            # A recognition top tuned from the old tower would otherwise go on replacing the new one.
            top_file.unlink()
            progress(f"removed {top_file}: recognition now reads the tuned tower")
    else:
        RecognitionTop.from_trunk(encoder.model.visual.trunk).save(folder)
        written = folder / artifacts.RECOGNITION_TOP_WEIGHTS
    summary["stored"] = store
    summary["paths"] = len(paths)
    # Evaluation leaves out the worn products the tower has seen (labelled_data.worn_products_seen).
    summary["worn_products_seen"] = sorted({product_of(r) for r in worn})
    (folder / artifacts.ROBUST_TUNING_SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return summary, written
