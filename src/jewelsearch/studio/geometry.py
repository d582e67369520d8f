"""Procedural meshes: faceted gem cuts and swept metal parts, as numpy arrays.

A gem is a loft of rings around a girdle outline: crown rings up to a flat
table, pavilion rings down to a culet.  Neighbouring rings are rotated half a
step against each other, which turns each band into alternating triangles:
the star, bezel and pavilion facets of a real cut.  Faces are returned wound
counter-clockwise seen from outside, so normals point outwards; a mesh with
no vertex normals renders flat-shaded in Mitsuba, facet by facet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CUTS = ("round", "oval", "pear", "marquise", "princess", "emerald", "cushion", "heart")


@dataclass
class MeshData:
    vertices: np.ndarray  # float32 [n, 3]
    faces: np.ndarray  # uint32 [m, 3]

    def signed_volume(self) -> float:
        v = self.vertices[self.faces].astype(np.float64)
        return float(np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6.0)

    def is_watertight(self) -> bool:
        """Every edge is shared by exactly two faces, once in each direction."""
        edges: dict[tuple[int, int], int] = {}
        for a, b, c in self.faces.tolist():
            for e in ((a, b), (b, c), (c, a)):
                edges[e] = edges.get(e, 0) + 1
        return all(count == 1 and edges.get((b, a)) == 1 for (a, b), count in edges.items())

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.vertices.min(0), self.vertices.max(0)


# ----- girdle outlines: t in [0, 1) -> (x, y), roughly unit size -----------------

def _round(t):
    a = 2 * math.pi * t
    return math.cos(a), math.sin(a)


def _oval(t):
    a = 2 * math.pi * t
    return 1.35 * math.cos(a), math.sin(a)


def _superellipse(t, power, sx=1.0, sy=1.0):
    a = 2 * math.pi * t
    c, s = math.cos(a), math.sin(a)
    return (sx * math.copysign(abs(c) ** (2 / power), c), sy * math.copysign(abs(s) ** (2 / power), s))


def _marquise(t):
    a = 2 * math.pi * t
    x, y = 1.7 * math.cos(a), math.sin(a)
    return x, y * (1 - abs(math.cos(a)) ** 6 * 0.0) * (abs(math.sin(a)) ** 0.35)


def _pear(t):
    a = 2 * math.pi * t
    x, y = math.cos(a), math.sin(a)
    if x > 0:  # taper one end to a point
        y *= (1 - x) ** 0.6 * 1.0 + 0.0
        x *= 1.5
    return x, y


def _heart(t):
    # A classic heart curve, rescaled to about unit size, point at -y.
    a = 2 * math.pi * t
    x = 16 * math.sin(a) ** 3
    y = 13 * math.cos(a) - 5 * math.cos(2 * a) - 2 * math.cos(3 * a) - math.cos(4 * a)
    return x / 16.0, (y + 2.0) / 16.0


def _octagon(t, sx=1.3, sy=1.0, corner=0.3):
    # Emerald cut: a rectangle with cut corners; t walks the perimeter evenly.
    pts = [(sx, sy - corner), (sx - corner, sy), (-sx + corner, sy), (-sx, sy - corner),
           (-sx, -sy + corner), (-sx + corner, -sy), (sx - corner, -sy), (sx, -sy + corner)]
    lengths = [math.dist(pts[i], pts[(i + 1) % 8]) for i in range(8)]
    target = (t % 1.0) * sum(lengths)
    for i, length in enumerate(lengths):
        if target <= length:
            f = target / length
            (x0, y0), (x1, y1) = pts[i], pts[(i + 1) % 8]
            return x0 + f * (x1 - x0), y0 + f * (y1 - y0)
        target -= length
    return pts[0]


OUTLINES = {
    "round": _round, "oval": _oval, "pear": _pear, "marquise": _marquise, "heart": _heart,
    "princess": lambda t: _superellipse(t, 40), "cushion": lambda t: _superellipse(t, 4.5, 1.1, 1.0),
    "emerald": _octagon,
}

# (scale of outline, height, phase shift in steps) from the table down to the culet,
# per cut family; heights are in units of the girdle's half-width.
PROFILES = {
    "brilliant": {"n": 16, "crown": [(0.82, 0.17, 0.5), (0.56, 0.31, 0.0)],
                  "girdle": 0.03, "pavilion": [(0.55, -0.45, 0.5)], "culet": -0.86},
    "step": {"n": 24, "crown": [(0.9, 0.10, 0.0), (0.78, 0.20, 0.0), (0.68, 0.26, 0.0)],
             "girdle": 0.03, "pavilion": [(0.8, -0.22, 0.0), (0.55, -0.48, 0.0), (0.28, -0.66, 0.0)],
             "culet": -0.72},
    "princess": {"n": 16, "crown": [(0.85, 0.12, 0.0), (0.7, 0.2, 0.0)],
                 "girdle": 0.03, "pavilion": [(0.6, -0.4, 0.5), (0.3, -0.65, 0.0)], "culet": -0.78},
}
CUT_PROFILE = {"round": "brilliant", "oval": "brilliant", "pear": "brilliant", "marquise": "brilliant",
               "heart": "brilliant", "cushion": "brilliant", "emerald": "step", "princess": "princess"}


def gem_mesh(cut: str, size: float = 1.0) -> MeshData:
    """A faceted stone of the given cut; ``size`` is the girdle's half-width in scene units."""
    outline = OUTLINES[cut]
    profile = PROFILES[CUT_PROFILE[cut]]
    n = profile["n"] * (2 if cut in ("pear", "heart", "marquise") else 1)
    centre = np.mean([outline(i / 256) for i in range(256)], axis=0)

    def ring(scale, z, phase):
        pts = []
        for i in range(n):
            x, y = outline((i + phase) / n)
            pts.append((centre[0] + scale * (x - centre[0]), centre[1] + scale * (y - centre[1]), z))
        return pts

    rings = []
    for scale, z, phase in reversed(profile["crown"]):  # table first
        rings.append(ring(scale, z, phase))
    rings.append(ring(1.0, profile["girdle"], 0.0))
    rings.append(ring(1.0, -profile["girdle"], 0.0))
    for scale, z, phase in profile["pavilion"]:
        rings.append(ring(scale, z, phase))
    vertices = [v for r in rings for v in r]
    top = len(vertices)
    vertices.append((centre[0], centre[1], rings[0][0][2]))
    bottom = len(vertices)
    vertices.append((centre[0], centre[1], profile["culet"]))
    faces = []
    for i in range(n):  # table: fan from the centre
        faces.append((top, i, (i + 1) % n))
    for r in range(len(rings) - 1):
        a0, b0 = r * n, (r + 1) * n
        for i in range(n):
            j = (i + 1) % n
            faces.append((a0 + i, b0 + i, b0 + j))
            faces.append((a0 + i, b0 + j, a0 + j))
    last = (len(rings) - 1) * n
    for i in range(n):  # pavilion to the culet point
        faces.append((bottom, last + (i + 1) % n, last + i))
    mesh = MeshData(np.asarray(vertices, np.float32) * size, np.asarray(faces, np.uint32))
    return _orient_outwards(mesh)


def sweep_mesh(path: np.ndarray, profile: np.ndarray, closed_path: bool = True) -> MeshData:
    """Sweep a closed 2-D profile (in the path's normal plane) along a 3-D path."""
    m = len(profile)
    count = len(path)
    # The paths here are planar: use the plane's normal as the fixed binormal, so the
    # profile never flips along the way (a per-point "up" helper would twist it).
    centred = np.asarray(path, float) - np.mean(path, axis=0)
    plane_normal = np.linalg.svd(centred, full_matrices=False)[2][-1] if count >= 3 else np.array([0, 0, 1.0])
    vertices = []
    for i in range(count):
        p = path[i]
        tangent = path[(i + 1) % count] - path[i - 1] if closed_path else \
            path[min(i + 1, count - 1)] - path[max(i - 1, 0)]
        tangent = tangent / np.linalg.norm(tangent)
        helper = plane_normal if abs(np.dot(plane_normal, tangent)) < 0.9 else np.array([1.0, 0, 0])
        normal = np.cross(helper, tangent)
        normal /= np.linalg.norm(normal)
        binormal = np.cross(tangent, normal)
        for u, v in profile:
            vertices.append(p + u * normal + v * binormal)
    faces = []
    segments = count if closed_path else count - 1
    for i in range(segments):
        a, b = i * m, ((i + 1) % count) * m
        for k in range(m):
            kk = (k + 1) % m
            faces.append((a + k, b + k, b + kk))
            faces.append((a + k, b + kk, a + kk))
    if not closed_path:  # cap both ends
        for end, flip in ((0, True), ((count - 1) * m, False)):
            centre = len(vertices)
            vertices.append(np.mean(vertices[end:end + m], axis=0))
            for k in range(m):
                face = (centre, end + k, end + (k + 1) % m)
                faces.append(face[::-1] if flip else face)
    return _orient_outwards(MeshData(np.asarray(vertices, np.float32), np.asarray(faces, np.uint32)))


def circle_path(radius: float, count: int = 96, axis: str = "z", centre=(0, 0, 0)) -> np.ndarray:
    angles = np.linspace(0, 2 * np.pi, count, endpoint=False)
    c, s = radius * np.cos(angles), radius * np.sin(angles)
    zeros = np.zeros_like(c)
    pts = {"z": np.stack([c, s, zeros], 1), "y": np.stack([c, zeros, s], 1), "x": np.stack([zeros, c, s], 1)}[axis]
    return pts + np.asarray(centre, np.float64)


def rounded_rect_profile(width: float, height: float, count: int = 16) -> np.ndarray:
    """A comfort-fit band profile (superellipse)."""
    return np.array([_superellipse(i / count, 3.0, width / 2, height / 2) for i in range(count)])


def circle_profile(radius: float, count: int = 10) -> np.ndarray:
    return np.array([(radius * math.cos(2 * math.pi * i / count), radius * math.sin(2 * math.pi * i / count))
                     for i in range(count)])


def merge(meshes: list[MeshData]) -> MeshData:
    offset, vertices, faces = 0, [], []
    for mesh in meshes:
        vertices.append(mesh.vertices)
        faces.append(mesh.faces + offset)
        offset += len(mesh.vertices)
    return MeshData(np.concatenate(vertices).astype(np.float32), np.concatenate(faces).astype(np.uint32))


def transformed(mesh: MeshData, rotation: np.ndarray | None = None, translation=(0, 0, 0),
                scale: float = 1.0) -> MeshData:
    """Rigid transform (+ uniform scale); a mirroring matrix would flip winding, so re-orient."""
    v = mesh.vertices.astype(np.float64) * scale
    if rotation is not None:
        v = v @ np.asarray(rotation).T
    out = MeshData((v + np.asarray(translation)).astype(np.float32), mesh.faces.copy())
    if rotation is not None and np.linalg.det(rotation) < 0:
        out.faces = out.faces[:, ::-1].copy()
    return out


def rotation_x(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rotation_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _orient_outwards(mesh: MeshData) -> MeshData:
    if mesh.signed_volume() < 0:
        mesh.faces = mesh.faces[:, ::-1].copy()
    return mesh
