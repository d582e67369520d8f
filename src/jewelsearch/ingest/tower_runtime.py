"""Which runtime runs ingest's tower pass: torch, or OpenVINO (``embed/openvino_tower.py``).

OpenVINO ran the tower pass faster (in f32 with the same outputs within 1e-5; in bf16, where
the CPU has it, about twice as fast again: ``embed/openvino_precision.py``), but opening it
costs time a small ingest must not pay: about 0.2-0.3 s to hash the weights, read and compile
saved graphs, and 0.2-0.4 s more in its first passes (2026-12-07, 2-core VM), and seconds to
convert them the first time (``embed/openvino_cache.py``). A job of 128 photos, opening
counted, ran 1.33x / 1.46x torch's photos/s in bf16 (fields given / bare) and 1.10x / 0.98x in
f32 (docs/experiments/2026-12-07-bf16-ingest.md). So ``auto``
opens it only for a job of ``AUTO_MIN_PHOTOS`` photos or more (the CLI says the job's size up
front; otherwise from the photo that reaches it) when the graphs are saved, and converts them
only for a job of ``AUTO_CONVERT_PHOTOS``; smaller jobs run on torch. ``openvino`` opens (and
converts) it for any job. Whatever goes wrong opening it (OpenVINO not installed, a conversion
that fails or gives other outputs) is logged once and ingest runs on torch: never a failed
ingest.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "torch", "openvino")
# About 0.5 s to open against 7-8 ms of CPU saved a photo in bf16 (3-5 in f32): a job pays it
# back after some 60-120 photos in bf16; at 128 photos f32 breaks even (0.98-1.10x torch).
AUTO_MIN_PHOTOS = 128
# Converting took 8.7 s on the 2-core VM under load; at 3-5 ms of wall time saved a photo (about
# 5 in bf16) that pays back after some 1,800-3,000 photos, and every later job reuses the graphs.
AUTO_CONVERT_PHOTOS = 2000

# (convert_if_missing) -> a tower-pass runner, or None where nothing is saved and converting
# was not asked for; raises where OpenVINO cannot be used.
Opener = Callable[[bool], Callable | None]


class TowerRuntime:
    """Picks the tower-pass runner for each batch of a job (None: torch's ``tower_pass``)."""

    def __init__(self, choice: str, open_openvino: Opener | None, *, min_photos: int = AUTO_MIN_PHOTOS,
                 convert_photos: int = AUTO_CONVERT_PHOTOS):
        if choice not in RUNTIMES:
            raise ValueError(f"ingest_runtime must be one of {', '.join(RUNTIMES)}")
        self.choice = choice if open_openvino is not None else "torch"
        self._open = open_openvino
        self.min_photos = min_photos
        self.convert_photos = convert_photos
        self._runner: Callable | None = None
        self._given_up = False  # an open failed: torch from now on (logged once)
        self._nothing_saved = False  # auto found no saved graphs (looked once; a large job still converts)
        self._lock = threading.Lock()  # concurrent uploads: one opens, the others wait for it

    @property
    def name(self) -> str:
        """The runtime in use now."""
        return "openvino" if self._runner is not None else "torch"

    @property
    def precision(self) -> str:
        """The arithmetic of the runtime in use now (torch's tower pass is f32)."""
        return getattr(self._runner, "precision", "f32")

    def runner(self, job_photos: int) -> Callable | None:
        """The runner for a batch of a job that has reached ``job_photos`` photos with it."""
        if self._runner is not None or self._given_up or self.choice == "torch":
            return self._runner
        if self.choice == "auto" and job_photos < self.min_photos:
            return None
        with self._lock:
            return self._runner if self._runner is not None or self._given_up else self._opened(job_photos)

    def _opened(self, job_photos: int) -> Callable | None:
        """Open OpenVINO (under the lock), or remember why not."""
        convert = self.choice == "openvino" or job_photos >= self.convert_photos
        if self._nothing_saved and not convert:
            return None
        try:
            self._runner = self._open(convert)
        except Exception as exc:  # ImportError, OpenVINO's RuntimeError, a failed check: all end on torch
            self._given_up = True
            log.warning("ingest runs its tower pass on torch: OpenVINO could not be used (%s: %s)",
                        type(exc).__name__, exc)
            return None
        if self._runner is None:
            self._nothing_saved = True
        else:
            log.info("ingest runs its tower pass on OpenVINO (%s)", getattr(self._runner, "precision", "f32"))
        return self._runner
