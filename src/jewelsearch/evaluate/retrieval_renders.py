"""Render-to-render instance retrieval on held-out studio specs: the one measure whose pairs
are exactly the same piece and nothing else.

Each held-out spec (a piece: category, style, metal, stone, cut, carat, setting, finish) is
rendered under ``VIEWS`` set-ups. View 0 is the spec as sampled; each further view moves the
camera (a new elevation and azimuth) and puts the piece on another backdrop, which also changes
the lighting (each backdrop has its own environment light and key-light strength, see
``studio.scene.BACKGROUND_SETUP``). The finish is kept: brushed and polished are different
pieces in a shop. The query is view 0 of a spec; the gallery is every further view of every
spec; the right answers are the query spec's own further views. Nothing but the piece is
shared between a query and its answers (backdrop, light and camera all differ).

Held out: the specs come from batch seed ``HELD_OUT_SEED`` (spec seeds ``seed * 1_000_003 + i``,
as ``studio render --seed``). Training used the demo renders (batch seed 0, spec seeds below
1,000,003) and evaluation the search renders (batch seed 7919); the instance head never saw a
render. The studio's parts are few, so some held-out pieces equal a demo render's piece under
another camera and backdrop (20 of the default 100). Two specs that would draw the same piece
(equal identity fields) are kept once, so no query has an unlabelled right answer. Renders are
cached (``runs/retrieval-renders/``, keyed by the spec list, size and samples) and regenerated
from the seeds: the same pixels up to the JIT's float rounding (two views re-rendered: one
byte-identical, one off by 0.0008 grey levels on average); ``studio.batch.render_specs``
resumes an interrupted run.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

HELD_OUT_SEED = 2027
TRAINING_BATCH_SEEDS = (0, 7919)  # demo renders (trained on) and search-eval renders
SPEC_SEED_STRIDE = 1_000_003      # studio.batch.random_specs: spec seed = batch seed * stride + i
VIEWS = 3
IDENTITY_FIELDS = ("category", "style", "metal", "gemstone", "cut", "carat", "setting", "finish")
DEFAULT_SPECS, DEFAULT_SIZE, DEFAULT_SPP = 100, 224, 32


@dataclass(frozen=True)
class RenderSetPlan:
    """What to render: ``specs`` distinct pieces × ``views`` set-ups at ``size`` px, ``spp`` samples."""
    specs: int = DEFAULT_SPECS
    views: int = VIEWS
    size: int = DEFAULT_SIZE
    spp: int = DEFAULT_SPP
    seed: int = HELD_OUT_SEED

    def __post_init__(self):
        if self.specs < 2 or self.views < 2:
            raise ValueError("render retrieval needs at least 2 specs and 2 views of each")
        if self.seed in TRAINING_BATCH_SEEDS:
            raise ValueError(f"batch seed {self.seed} made renders that were trained or tuned on")


def identity(spec) -> tuple:
    """The fields that make a piece the piece it is (not how it is photographed)."""
    return tuple(getattr(spec, name) for name in IDENTITY_FIELDS)


def held_out_specs(plan: RenderSetPlan) -> list:
    """``plan.specs`` specs of distinct pieces, drawn in order from the held-out batch seed."""
    from jewelsearch.studio.spec import sample_spec
    out, seen, i = [], set(), 0
    while len(out) < plan.specs:
        if i > plan.specs * 50:
            raise ValueError(f"the studio draws fewer than {plan.specs} distinct pieces")
        spec = sample_spec(plan.seed * SPEC_SEED_STRIDE + i)
        i += 1
        if identity(spec) not in seen:
            seen.add(identity(spec))
            out.append(spec)
    return out


def view_of(spec, view: int):
    """The spec photographed under set-up ``view``: 0 is the spec itself; others move the camera
    and change the backdrop (and with it the lighting), keeping every identity field."""
    from jewelsearch.studio.spec import BACKGROUNDS
    if view == 0:
        return spec
    rng = random.Random(spec.seed * 31 + view)
    backdrop = BACKGROUNDS[(BACKGROUNDS.index(spec.background) + view) % len(BACKGROUNDS)]
    return replace(spec, background=backdrop, camera_elevation=round(rng.uniform(15, 40), 1),
                   camera_azimuth=round(rng.uniform(-35, 35), 1))


@dataclass
class RenderPairs:
    """Which rendered row is which spec and view, and the query/gallery split built from them."""
    spec_of: np.ndarray   # spec number of each rendered row
    view_no: np.ndarray   # view number of each rendered row

    @property
    def query_rows(self) -> np.ndarray:
        return np.flatnonzero(self.view_no == 0)

    @property
    def gallery_rows(self) -> np.ndarray:
        return np.flatnonzero(self.view_no != 0)

    def answers(self) -> list[np.ndarray]:
        """For each query (in ``query_rows`` order), the gallery positions of its spec's views."""
        gallery_specs = self.spec_of[self.gallery_rows]
        return [np.flatnonzero(gallery_specs == self.spec_of[row]) for row in self.query_rows]


def plan_renders(plan: RenderSetPlan) -> tuple[list, RenderPairs]:
    """Every (spec, view) to render, spec-major, and their pairing."""
    specs = held_out_specs(plan)
    views = [view_of(spec, v) for spec in specs for v in range(plan.views)]
    spec_of = np.repeat(np.arange(len(specs)), plan.views)
    view_no = np.tile(np.arange(plan.views), len(specs))
    return views, RenderPairs(spec_of, view_no)


def cache_folder(root: Path, plan: RenderSetPlan, views: Sequence) -> Path:
    """A folder named by everything the pixels depend on, so a changed plan never reuses renders."""
    described = json.dumps({"size": plan.size, "spp": plan.spp, "specs": [asdict(v) for v in views]},
                           sort_keys=True)
    return Path(root) / f"s{plan.seed}-n{plan.specs}x{plan.views}-{plan.size}px-{plan.spp}spp-" \
                        f"{hashlib.sha256(described.encode()).hexdigest()[:10]}"


def studio_missing() -> str | None:
    """Why renders cannot be made here, or None when the studio can render."""
    try:
        import mitsuba  # noqa: F401
    except ImportError:
        return "mitsuba is not installed (pip install 'jewelsearch[studio]'): render retrieval skipped"
    return None


def render_set(plan: RenderSetPlan, root: Path, progress: Callable[[int], None] | None = None,
               workers: int = 1) -> tuple[list[Path], RenderPairs]:
    """Render (or reuse) every view; the photo paths in pairing order and their pairing."""
    from jewelsearch.studio.batch import LABELS_FILE, render_specs
    views, pairs = plan_renders(plan)
    folder = cache_folder(root, plan, views)
    render_specs(views, folder, size=plan.size, spp=plan.spp, workers=workers, masks=False, progress=progress)
    rows = {json.loads(line)["index"]: json.loads(line) for line in (folder / LABELS_FILE).read_text().splitlines()
            if line.strip()}
    missing = [i for i in range(len(views)) if i not in rows]
    if missing:
        raise RuntimeError(f"{len(missing)} renders missing from {folder}")
    return [folder / rows[i]["image"] for i in range(len(views))], pairs
