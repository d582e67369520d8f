"""Training the gem specialist (``jewelsearch.recognize.gem_specialist``).

Fitting picks the weight decay by k-fold cross-validation on the training photos only,
then fits the temperature on the out-of-fold logits, so no held-out photo is touched.
"""

from __future__ import annotations

import random
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from jewelsearch.embed.images import load_image_file
from jewelsearch.recognize.gem_features import gem_features
from jewelsearch.recognize.gem_specialist import GemSpecialist
from jewelsearch.recognize.heads import expected_calibration_error, fit_temperature
from jewelsearch.train.augment import quality_augment


def _train_linear(x: np.ndarray, y: np.ndarray, classes: int, weight_decay: float,
                  steps: int = 400, lr: float = 0.05) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    mean, scale = x.mean(0), x.std(0) + 1e-6
    xs = torch.from_numpy(((x - mean) / scale).astype(np.float32))
    targets = torch.from_numpy(y.astype(np.int64))
    torch.manual_seed(0)
    weight = torch.zeros(x.shape[1], classes, requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    optimizer = torch.optim.Adam([weight, bias], lr=lr)
    for _ in range(steps):
        loss = F.cross_entropy(xs @ weight + bias, targets) + weight_decay * (weight ** 2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return mean, scale, weight.detach().numpy(), bias.detach().numpy()


def fit_gem_specialist(features: np.ndarray, labels: Sequence[str], *, folds: int = 5,
                       weight_decays: Sequence[float] = (1e-4, 1e-3, 1e-2), groups: Sequence[int] | None = None,
                       progress: Callable[[str], None] = print) -> tuple[GemSpecialist, dict]:
    """``groups``: rows with the same group (augmented views of one photo) share a fold, so
    cross-validation never scores a photo whose other view was trained on."""
    vocabulary = sorted(set(labels))
    y = np.array([vocabulary.index(label) for label in labels])
    group = np.arange(len(y)) if groups is None else np.asarray(groups)
    distinct = np.unique(group)
    fold_of_group = np.arange(len(distinct)) % folds
    np.random.default_rng(0).shuffle(fold_of_group)
    fold_of = fold_of_group[np.searchsorted(distinct, group)]
    trials = {}
    for decay in weight_decays:
        out_of_fold = np.zeros((len(y), len(vocabulary)), dtype=np.float32)
        for fold in range(folds):
            train, held = fold_of != fold, fold_of == fold
            mean, scale, weight, bias = _train_linear(features[train], y[train], len(vocabulary), decay)
            out_of_fold[held] = ((features[held] - mean) / scale) @ weight + bias
        accuracy = float((out_of_fold.argmax(1) == y).mean())
        trials[decay] = (accuracy, out_of_fold)
        progress(f"weight decay {decay:g}: {folds}-fold accuracy {accuracy:.4f}")
    decay = max(trials, key=lambda d: trials[d][0])
    out_of_fold = trials[decay][1]
    temperature = fit_temperature(torch.from_numpy(out_of_fold), torch.from_numpy(y))
    mean, scale, weight, bias = _train_linear(features, y, len(vocabulary), decay)
    specialist = GemSpecialist(vocabulary, mean.astype(np.float32), scale.astype(np.float32),
                               weight.astype(np.float32), bias.astype(np.float32), float(temperature))
    calibrated = torch.softmax(torch.from_numpy(out_of_fold) / temperature, dim=-1).numpy()
    summary = {"rows": int(len(y)), "photos": int(len(distinct)), "classes": len(vocabulary), "folds": folds,
               "weight_decay": decay, "cv_accuracy": {str(d): round(a, 4) for d, (a, _) in trials.items()},
               "temperature": round(float(temperature), 4),
               "cv_ece_after_temperature": round(expected_calibration_error(calibrated, y), 4)}
    return specialist, summary


def train_gem_specialist(encoder, records: Sequence, *, views: int = 2, folds: int = 5, seed: int = 0,
                         progress: Callable[[str], None] = print,
                         on_images: Callable[[int], None] = lambda n: None,
                         top=None) -> tuple[GemSpecialist, dict]:
    """Features of each labelled photo plus ``views`` ``quality_augment`` copies of it, then
    ``fit_gem_specialist`` with a photo's copies kept in one fold. With ``top`` (the folder's
    ``RecognitionTop``) the features are the ones recognition reads."""
    rng = random.Random(seed)
    features, labels, groups = [], [], []
    for start in range(0, len(records), 32):
        images = []
        for offset, record in enumerate(records[start:start + 32]):
            image = load_image_file(record.path).image
            images += [image] + [quality_augment(image, rng) for _ in range(views)]
            labels += [record.labels["gemstone"]] * (1 + views)
            groups += [start + offset] * (1 + views)
        features.append(gem_features(encoder, images, top=top))
        on_images(len(images))
    specialist, summary = fit_gem_specialist(np.concatenate(features), labels, folds=folds, groups=groups,
                                             progress=progress)
    summary.update(augmented_views=views, seed=seed)
    return specialist, summary
