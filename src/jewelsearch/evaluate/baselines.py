"""The collaborative filtering field's strong baselines, for ``eval recommend``.

- EASE (Steck 2019): a linear item-item model, closed form, ``B = I - P / diag(P)`` with
  ``P = (X'X + lambda I)^-1`` and a zero diagonal;
- ALS (Hu, Koren and Volinsky 2008) and BPR (Rendle et al. 2009) from ``implicit``;
- VBPR (He and McAuley 2016) from ``cornac``, fed the catalog's image embeddings: the visual
  baseline of the multimodal recommendation literature.

Every model learns from the same training events the blend sees (each shopper's earlier
events, of all shoppers); a shopper's engagement with an item is log(1 + the summed event-kind
weights), so a purchase counts more than a view, as it does for the blend. None of them drops
an item the shopper merely viewed (people come back to those); like every method here they
drop what the shopper bought. Fitting is deterministic for a seed (one thread).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from scipy import sparse

K = 10
Method = Callable[[Any], list[int]]

# The grids each baseline's main hyper-parameter is tuned over (on the tuning populations only).
EASE_LAMBDAS = (50.0, 200.0, 800.0, 2000.0)
ALS_REGULARISATION = (0.01, 0.1, 1.0, 10.0)
BPR_FACTORS = (16, 32, 64)
VBPR_LAMBDA_W = (0.001, 0.01, 0.1)
ALS_FACTORS = 32


@dataclass
class Interactions:
    """The training events as a shoppers x items matrix of log(1 + summed event weight)."""

    matrix: sparse.csr_matrix
    user_row: dict[str, int]
    item_ids: np.ndarray  # column -> item id
    column_of: dict[int, int]

    @classmethod
    def of(cls, events: Sequence[Mapping[str, Any]], item_ids: Sequence[int],
           weight: Callable[[str], float]) -> "Interactions":
        columns = np.asarray(sorted({int(i) for i in item_ids}), dtype=np.int64)
        column_of = {int(item): c for c, item in enumerate(columns)}
        user_row: dict[str, int] = {}
        rows, cols, values = [], [], []
        for event in events:
            column = column_of.get(int(event["item_id"]))
            if column is None:
                continue
            rows.append(user_row.setdefault(event["user_id"], len(user_row)))
            cols.append(column)
            values.append(weight(event["kind"]))
        summed = sparse.coo_matrix((values, (rows, cols)), shape=(len(user_row), len(columns))).tocsr()
        summed.sum_duplicates()
        summed.data = np.log1p(summed.data)
        return cls(summed.astype(np.float32), user_row, columns, column_of)

    def row_of_events(self, events: Sequence[Mapping[str, Any]], weight: Callable[[str], float]) -> np.ndarray:
        """One shopper's events as a dense row of the same scale as ``matrix``."""
        row = np.zeros(len(self.item_ids), dtype=np.float64)
        for event in events:
            column = self.column_of.get(int(event["item_id"]))
            if column is not None:
                row[column] += weight(event["kind"])
        return np.log1p(row)


def top_k(scores: np.ndarray, item_ids: np.ndarray, bought: set[int], k: int = K) -> list[int]:
    """The k best-scoring item ids, bought ones left out."""
    order = np.argsort(-scores, kind="stable")[: k + len(bought)]
    return [int(item_ids[c]) for c in order if int(item_ids[c]) not in bought][:k]


def _bought(past: Sequence[Mapping[str, Any]]) -> set[int]:
    return {int(e["item_id"]) for e in past if e["kind"] == "purchase"}


def ease_weights(matrix: sparse.spmatrix, regularisation: float) -> np.ndarray:
    """EASE's item-item matrix B (zero diagonal), from the shoppers x items matrix."""
    gram = np.asarray((matrix.T @ matrix).todense(), dtype=np.float64)
    gram[np.diag_indices_from(gram)] += regularisation
    precision = np.linalg.inv(gram)
    weights = -precision / np.diag(precision)[None, :]
    weights[np.diag_indices_from(weights)] = 0.0
    return weights


def ease(data: Interactions, weight: Callable[[str], float], regularisation: float) -> Method:
    weights = ease_weights(data.matrix, regularisation)

    def method(case):
        _, past = case
        return top_k(data.row_of_events(past, weight) @ weights, data.item_ids, _bought(past))
    return method


def _factor_method(data: Interactions, user_factors: np.ndarray, item_factors: np.ndarray,
                   item_bias: np.ndarray | None = None) -> Method:
    def method(case):
        user, past = case
        row = data.user_row.get(user.user_id)
        if row is None:  # a shopper with no training events: nothing to score from
            return []
        scores = item_factors @ user_factors[row]
        if item_bias is not None:
            scores = scores + item_bias
        return top_k(scores, data.item_ids, _bought(past))
    return method


def als(data: Interactions, regularisation: float, *, factors: int = ALS_FACTORS, alpha: float = 1.0,
        iterations: int = 15, seed: int = 0) -> Method:
    """implicit's conjugate-gradient ALS; confidence = 1 + alpha * engagement."""
    from implicit.cpu.als import AlternatingLeastSquares
    model = AlternatingLeastSquares(factors=factors, regularization=regularisation, alpha=alpha,
                                    iterations=iterations, random_state=seed, num_threads=1)
    with _quiet():
        model.fit(data.matrix, show_progress=False)
    return _factor_method(data, np.asarray(model.user_factors), np.asarray(model.item_factors))


def bpr(data: Interactions, factors: int, *, learning_rate: float = 0.01, regularisation: float = 0.01,
        iterations: int = 100, seed: int = 0) -> Method:
    """implicit's BPR (its item factors carry an item bias as their last column)."""
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    model = BayesianPersonalizedRanking(factors=factors, learning_rate=learning_rate,
                                        regularization=regularisation, iterations=iterations,
                                        random_state=seed, num_threads=1)
    with _quiet():
        model.fit(data.matrix, show_progress=False)
    return _factor_method(data, np.asarray(model.user_factors), np.asarray(model.item_factors))


def vbpr(data: Interactions, vectors: Mapping[int, np.ndarray], lambda_w: float, *, factors: int = 10,
         epochs: int = 30, learning_rate: float = 0.005, seed: int = 0) -> Method:
    """cornac's VBPR: BPR whose item factors add a learned projection of the item's image embedding."""
    import torch
    from cornac.data import Dataset, ImageModality
    from cornac.models import VBPR
    coo = data.matrix.tocoo()
    users = {row: user for user, row in data.user_row.items()}
    triples = [(users[int(r)], str(int(data.item_ids[c])), float(v)) for r, c, v in zip(coo.row, coo.col, coo.data)]
    train = Dataset.from_uir(triples, seed=seed)
    known = [i for i in data.item_ids.tolist() if i in vectors]
    image = ImageModality(features=np.stack([vectors[i] for i in known]).astype(np.float32),
                          ids=[str(i) for i in known], normalized=False)
    train.add_modalities(item_image=image.build(id_map=train.iid_map))
    torch.manual_seed(seed)
    with _quiet(), _torch_threads(1):
        model = VBPR(k=factors, k2=factors, n_epochs=epochs, batch_size=100, learning_rate=learning_rate,
                     lambda_w=lambda_w, lambda_b=0.01, lambda_e=0.0, verbose=False, seed=seed).fit(train)
    item_of_index = np.array([int(item) for item, _ in sorted(train.iid_map.items(), key=lambda kv: kv[1])],
                             dtype=np.int64)

    def method(case):
        user, past = case
        index = train.uid_map.get(user.user_id)
        if index is None:
            return []
        return top_k(np.asarray(model.score(index), dtype=np.float64), item_of_index, _bought(past))
    return method


@contextlib.contextmanager
def _quiet():
    """The libraries print progress ("Optimization finished!"); the report is the output. One
    BLAS thread, as implicit advises (its own loops and BLAS threads otherwise compete)."""
    from threadpoolctl import threadpool_limits
    with contextlib.redirect_stdout(io.StringIO()), threadpool_limits(1, "blas"):
        yield


@contextlib.contextmanager
def _torch_threads(count: int):
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
