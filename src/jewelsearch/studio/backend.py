"""Which Mitsuba variant, and which libLLVM, the studio renders with.

drjit JIT-compiles Mitsuba's ``llvm_*`` variants with whatever libLLVM it finds on
the machine. Some of them abort the whole process from inside LLVM, which no
``except`` can catch: Debian's libLLVM 15 (pulled in by chromium, which the browser
tests install) dies with "LLVM ERROR: Cannot select: fminimum" on the first render,
and drjit picks it by itself when it is the newest one there. So every candidate is
tried first in a short child process that renders one tiny studio piece; the first
that exits cleanly is used, libLLVM 19 first (Debian package ``libllvm19``, which
``make test`` installs when it may). With none, the studio falls back to
``scalar_rgb`` (about 2x slower, same pictures up to noise).

drjit reads ``DRJIT_LIBLLVM_PATH`` once, when it is imported. So the choice is made
without importing it, once per process, and applied by setting the variable before
the import; a process that imported drjit earlier can only use the libLLVM it loaded
then, so only that one is probed there.
"""

from __future__ import annotations

import functools
import glob
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

LLVM_VARIANT = "llvm_ad_rgb"
FALLBACK_VARIANT = "scalar_rgb"
PREFERRED_LLVM_MAJOR = 19
PROBE_TIMEOUT_S = 120  # a healthy probe takes about a second; a hung JIT must not hang the studio
LIBLLVM_GLOBS = ("/usr/lib/*-linux-gnu/libLLVM*.so*", "/usr/lib/llvm-*/lib/libLLVM*.so*",
                 "/usr/lib64/libLLVM*.so*", "/usr/lib/libLLVM*.so*", "/usr/local/lib/libLLVM*.so*")

# Renders one small piece with the studio's own scene code, so the probe JIT-compiles
# the same kernels (conductors, a dielectric gem, a textured floor, area lights) a real
# render needs.
_PROBE = """
import mitsuba as mi
mi.set_variant({variant!r})
from jewelsearch.studio.render import render_spec
from jewelsearch.studio.spec import sample_spec
render_spec(sample_spec(7, category="ring", style="solitaire", cut="round", gemstone="ruby",
                        metal="yellow gold", background="marble"), size=16, spp=1)
"""


@dataclass(frozen=True)
class Backend:
    variant: str
    libllvm: str | None  # the DRJIT_LIBLLVM_PATH to render with; None leaves drjit to search

    def apply(self) -> None:
        """Point drjit at the chosen libLLVM, then import it and select the variant."""
        if self.variant.startswith("llvm"):
            if self.libllvm:
                os.environ["DRJIT_LIBLLVM_PATH"] = self.libllvm
            else:
                os.environ.pop("DRJIT_LIBLLVM_PATH", None)
        import mitsuba as mi

        mi.set_variant(self.variant)


def llvm_major(path: str) -> int | None:
    """libLLVM-15.so.1 -> 15, libLLVM.so.19.1 -> 19, libLLVM-14.0.6.so.1 -> 14.

    >>> [llvm_major(p) for p in ("libLLVM-15.so.1", "/x/libLLVM.so.19.1", "libLLVM-14.0.6.so", "libLLVM.so")]
    [15, 19, 14, None]
    """
    match = re.match(r"libLLVM(?:-(\d+)|\.so\.(\d+))", os.path.basename(path))
    return int(match.group(1) or match.group(2)) if match else None


def libllvm_candidates(env: Mapping[str, str], found: Iterable[str]) -> list[str | None]:
    """What to try, in order: the user's DRJIT_LIBLLVM_PATH, libLLVM 19, drjit's own search
    (None), then the other libLLVMs found, newest first; each library file once."""
    files: dict[str, str] = {}
    for path in found:
        files.setdefault(os.path.realpath(path), path)
    # A symlink's name may lack the version (libLLVM.so -> libLLVM-15.so.1): read both names.
    by_major = sorted(((llvm_major(real) or llvm_major(path) or 0, path) for real, path in files.items()),
                      reverse=True)
    preferred = [path for major, path in by_major if major == PREFERRED_LLVM_MAJOR]
    others = [path for major, path in by_major if major != PREFERRED_LLVM_MAJOR]
    ordered: list[str | None] = []
    if env.get("DRJIT_LIBLLVM_PATH"):
        ordered.append(env["DRJIT_LIBLLVM_PATH"])
    ordered += [*preferred, None, *others]
    unique: list[str | None] = []
    seen: set[str | None] = set()
    for candidate in ordered:
        key = os.path.realpath(candidate) if candidate else None
        if key not in seen:
            seen.add(key)
            unique.append(candidate)
    return unique


def probe(variant: str, libllvm: str | None, *, timeout: float = PROBE_TIMEOUT_S) -> tuple[bool, str]:
    """Render a tiny piece with ``variant`` in a child process: (exited cleanly, why not)."""
    env = dict(os.environ)
    env.pop("DRJIT_LIBLLVM_PATH", None)
    if libllvm:
        env["DRJIT_LIBLLVM_PATH"] = libllvm
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE.format(variant=variant)], env=env,
                              check=False, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"no answer within {timeout:.0f} s"
    if done.returncode == 0:
        return True, ""
    # LLVM says why on its first line, Python on its last.
    lines = [line for line in done.stderr.splitlines() if line.strip()] or ["no message"]
    why = " ... ".join(dict.fromkeys([lines[0], lines[-1]]))
    return False, f"exit status {done.returncode}: {why}"


@functools.cache
def choose_backend() -> Backend:
    """The first libLLVM whose probe render exits cleanly, else scalar_rgb; once per process."""
    if "drjit" in sys.modules:
        candidates = [os.environ.get("DRJIT_LIBLLVM_PATH") or None]
    else:
        found = [path for pattern in LIBLLVM_GLOBS for path in glob.glob(pattern)]
        candidates = libllvm_candidates(os.environ, found)
    for libllvm in candidates:
        ok, why = probe(LLVM_VARIANT, libllvm)
        where = libllvm or "drjit's own choice of libLLVM"
        if ok:
            log.info("studio renders with %s using %s", LLVM_VARIANT, where)
            return Backend(LLVM_VARIANT, libllvm)
        log.info("%s with %s is unusable (%s)", LLVM_VARIANT, where, why)
    import mitsuba as mi  # safe now: the scalar variant never loads libLLVM

    if FALLBACK_VARIANT not in mi.variants():
        raise RuntimeError(f"no usable Mitsuba variant among {mi.variants()}")
    log.warning("studio renders with the slower %s: no libLLVM passed the probe render "
                "(Debian's libllvm19 package gives %s)", FALLBACK_VARIANT, LLVM_VARIANT)
    return Backend(FALLBACK_VARIANT, None)
