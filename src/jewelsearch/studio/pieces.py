"""Jewelry pieces assembled from gems and metal parts (scene units: millimetres).

Each builder returns ``Part``s tagged metal or gem; the scene gives metal parts
the piece's metal and gem parts its stone.  z is up, stones face +z.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from jewelsearch.studio.geometry import (
    MeshData,
    circle_path,
    circle_profile,
    gem_mesh,
    merge,
    rotation_x,
    rotation_z,
    rounded_rect_profile,
    sweep_mesh,
    transformed,
)

SETTINGS = ("prong", "bezel", "halo", "basket")


@dataclass
class Part:
    role: str  # "metal" | "gem"
    mesh: MeshData | None = None
    sphere: tuple[tuple[float, float, float], float] | None = None  # centre, radius


@dataclass
class Piece:
    parts: list[Part] = field(default_factory=list)

    def add_metal(self, mesh: MeshData) -> None:
        self.parts.append(Part("metal", mesh))

    def add_gem(self, mesh: MeshData) -> None:
        self.parts.append(Part("gem", mesh))

    def add_sphere(self, role: str, centre, radius: float) -> None:
        self.parts.append(Part(role, sphere=(tuple(map(float, centre)), float(radius))))

    def stand_up(self) -> None:
        """Rotate +90° about x: a stone whose table faced up (+z) now faces the camera (-y)."""
        for part in self.parts:
            if part.mesh is not None:
                part.mesh = transformed(part.mesh, rotation_x(math.pi / 2))
            else:
                c, r = part.sphere
                part.sphere = ((c[0], -c[2], c[1]), r)

    def turn_over(self) -> None:
        """Rotate 180° about x: what pointed up (+z) now hangs down."""
        for part in self.parts:
            if part.mesh is not None:
                part.mesh = transformed(part.mesh, rotation_x(math.pi))
            else:
                c, r = part.sphere
                part.sphere = ((c[0], -c[1], -c[2]), r)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lows, highs = [], []
        for part in self.parts:
            if part.mesh is not None:
                lo, hi = part.mesh.bounds()
            else:
                c, r = part.sphere
                lo, hi = np.asarray(c) - r, np.asarray(c) + r
            lows.append(lo)
            highs.append(hi)
        return np.min(lows, 0), np.max(highs, 0)


def gem_half_width(carat: float) -> float:
    """A 1 ct round diamond is about 6.5 mm across; size scales with the cube root of mass."""
    return 3.25 * carat ** (1 / 3)


def cabochon_mesh(half_width: float, aspect: float = 1.3, rings: int = 8, segments: int = 32) -> MeshData:
    """A smooth-domed opaque stone (turquoise, onyx, lapis, opal)."""
    vertices = [(0.0, 0.0, 0.0)]
    for r in range(1, rings + 1):
        polar = (math.pi / 2) * r / rings
        for s in range(segments):
            a = 2 * math.pi * s / segments
            vertices.append((aspect * half_width * math.sin(polar) * math.cos(a),
                             half_width * math.sin(polar) * math.sin(a), 0.55 * half_width * math.cos(polar)))
    top = (0.0, 0.0, 0.55 * half_width)
    vertices[0] = top
    faces = []
    for s in range(segments):
        faces.append((0, 1 + s, 1 + (s + 1) % segments))
    for r in range(rings - 1):
        a0, b0 = 1 + r * segments, 1 + (r + 1) * segments
        for s in range(segments):
            t = (s + 1) % segments
            faces.append((a0 + s, b0 + s, b0 + t))
            faces.append((a0 + s, b0 + t, a0 + t))
    base = len(vertices)
    vertices.append((0.0, 0.0, 0.0))
    last = 1 + (rings - 1) * segments
    for s in range(segments):
        faces.append((base, last + (s + 1) % segments, last + s))
    mesh = MeshData(np.asarray(vertices, np.float32), np.asarray(faces, np.uint32))
    if mesh.signed_volume() < 0:
        mesh.faces = mesh.faces[:, ::-1].copy()
    return mesh


def pearl_radius(carat: float) -> float:
    """Pearls are sized by the spec's size draw, as the strand's are: 2.25 to 5 mm radius."""
    return 2.0 + 2.0 * min(carat, 1.5)


def _set_pearl(piece: Piece, carat: float, seat_z: float, centre_xy=(0.0, 0.0)) -> float:
    """A pearl on a peg in a small cup (how pearl studs, drops and pendants are made): the
    pearl's foot sits at seat_z; returns the top height."""
    radius = pearl_radius(carat)
    x, y = centre_xy
    centre_z = seat_z + radius
    piece.add_sphere("gem", (x, y, centre_z), radius)
    # The cup's rim hugs the pearl 0.15 r above its foot, where the pearl is 0.53 r across,
    # so the collar shows outside it.
    cup = circle_path(0.5 * radius, 32, "z", (x, y, seat_z + 0.15 * radius))
    piece.add_metal(sweep_mesh(cup, circle_profile(max(0.25, 0.1 * radius), 8)))
    piece.add_metal(_cylinder((x, y, seat_z - 1.2), (x, y, seat_z + 0.2 * radius), max(0.3, 0.08 * radius)))
    return centre_z + radius


def stone(cut: str, carat: float) -> MeshData:
    size = gem_half_width(carat)
    if cut == "cabochon":
        return cabochon_mesh(size * 0.8)
    return gem_mesh(cut, size)


def _cylinder(p0, p1, radius: float, segments: int = 10) -> MeshData:
    path = np.linspace(np.asarray(p0, float), np.asarray(p1, float), 4)
    return sweep_mesh(path, circle_profile(radius, segments), closed_path=False)


def _set_stone(piece: Piece, cut: str, carat: float, setting: str, seat_z: float, centre_xy=(0.0, 0.0),
               turn: float = 0.0) -> float:
    """Put a stone with its setting so the girdle sits at seat_z; returns the top height."""
    if cut == "pearl":
        return _set_pearl(piece, carat, seat_z, centre_xy)
    mesh = transformed(stone(cut, carat), rotation_z(turn))
    lo, hi = mesh.bounds()
    girdle_to_culet = -lo[2]
    offset = (centre_xy[0], centre_xy[1], seat_z)
    piece.add_gem(transformed(mesh, translation=offset))
    size = gem_half_width(carat) * (1.35 if cut in ("oval", "marquise", "pear", "emerald") else 1.0)
    wire = max(0.28, 0.09 * gem_half_width(carat))
    if setting in ("prong", "basket", "halo"):
        count = 6 if (cut == "round" and carat >= 1.0) else 4
        for k in range(count):
            a = turn + 2 * math.pi * (k + 0.5) / count
            reach = 0.92 * (hi[0] if cut == "cabochon" else size) if abs(math.cos(a)) > 0.5 else 0.92 * max(hi[1], 1e-3)
            top = (offset[0] + reach * math.cos(a), offset[1] + reach * math.sin(a), seat_z + 0.18 * size)
            foot = (offset[0] + 0.45 * size * math.cos(a), offset[1] + 0.45 * size * math.sin(a),
                    seat_z - girdle_to_culet - 0.8)
            piece.add_metal(_cylinder(foot, top, wire))
            piece.add_sphere("metal", top, wire * 1.25)
        if setting == "basket":
            rail = circle_path(0.7 * size, 48, "z", (offset[0], offset[1], seat_z - 0.45 * girdle_to_culet))
            piece.add_metal(sweep_mesh(rail, circle_profile(wire * 0.8, 8)))
    if setting == "bezel":
        outline = mesh.vertices[np.abs(mesh.vertices[:, 2]) < 0.05 * size + 0.04]
        angles = np.arctan2(outline[:, 1], outline[:, 0])
        ring = outline[np.argsort(angles)][:, :2]
        path = np.column_stack([ring * 1.06, np.full(len(ring), 0.0)]) + np.array([offset[0], offset[1], seat_z])
        if len(path) >= 8:
            piece.add_metal(sweep_mesh(path, rounded_rect_profile(0.5, 0.9 * size * 0.6, 8)))
    if setting == "halo":
        small = 0.012 * max(carat, 0.3)
        radius = 1.28 * size
        n = max(10, int(2 * math.pi * radius / (2.3 * gem_half_width(small))))
        for k in range(n):
            a = 2 * math.pi * k / n
            piece.add_gem(transformed(gem_mesh("round", gem_half_width(small)),
                                      translation=(offset[0] + radius * math.cos(a),
                                                   offset[1] + radius * math.sin(a), seat_z - 0.1 * size)))
        halo = circle_path(radius, 64, "z", (offset[0], offset[1], seat_z - 0.1 * size - 0.6))
        piece.add_metal(sweep_mesh(halo, rounded_rect_profile(2.2 * gem_half_width(small), 0.7, 8)))
    return seat_z + hi[2]


def ring(cut: str, carat: float, setting: str, style: str = "solitaire", finish: float = 1.0) -> Piece:
    piece = Piece()
    radius, width, thick = 9.0, 2.2, 1.7
    band = sweep_mesh(circle_path(radius, 128, "y"), rounded_rect_profile(thick, width, 16))
    piece.add_metal(band)
    seat = radius + thick / 2 + 0.6 + gem_half_width(carat) * 0.86
    if style == "eternity":
        small = max(0.05, carat / 20)
        n = int(2 * math.pi * (radius + thick / 2) / (2.2 * gem_half_width(small)))
        for k in range(n):
            a = 2 * math.pi * k / n
            # Rotation about y taking the stone's table normal (+z) to the band's outward normal.
            rot_y = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
            seat = (radius + thick / 2 + 0.35 * gem_half_width(small))
            piece.add_gem(transformed(gem_mesh("round", gem_half_width(small)), rot_y,
                                      (seat * math.sin(a), 0.0, seat * math.cos(a))))
        return piece
    _set_stone(piece, cut, carat, setting, seat)
    if style == "three-stone":
        side = carat * 0.35
        for sign in (-1, 1):
            x = sign * (gem_half_width(carat) * 1.2 + gem_half_width(side) * 1.1)
            z = seat - 0.25 * gem_half_width(carat)  # shoulder stones sit beside the centre stone
            _set_stone(piece, cut if cut in ("round", "princess", "emerald", "oval") else "round", side,
                       "prong", z, (x, 0.0))
    return piece


def pendant(cut: str, carat: float, setting: str) -> Piece:
    piece = Piece()
    _set_stone(piece, cut, carat, setting, 0.0)
    size = gem_half_width(carat)
    piece.stand_up()  # the table faces the camera; then a bail and a chain above it
    bail_z = size * 1.45
    piece.add_metal(sweep_mesh(circle_path(1.3, 32, "x", (0, 0, bail_z)), circle_profile(0.35, 8)))
    piece.add_metal(_chain_mesh(_v_path(bail_z + 1.3, spread=size * 4.5, height=size * 6), 0.9))
    return piece


def earrings(kind: str, cut: str, carat: float, setting: str) -> Piece:
    piece = Piece()
    spacing = max(gem_half_width(carat) * 3.2, 10.0)
    for sign in (-0.5, 0.5):
        single = Piece()
        if kind == "hoop":
            single.add_metal(sweep_mesh(circle_path(7.0, 96, "y"), rounded_rect_profile(1.4, 1.4, 12)))
        elif kind == "drop":
            if cut == "pearl":
                # The pearl hangs from its cup: built peg down, then turned over so the peg
                # (1.2 mm above the cup) meets the hook.
                _set_pearl(single, carat, 0.0)
                single.turn_over()
                reach = 1.2
            else:
                _set_stone(single, cut, carat, setting, 0.0)
                single.stand_up()
                reach = gem_half_width(carat) * 1.3
            hook = circle_path(2.5, 32, "x", (0, 0, reach + 2.2))
            single.add_metal(sweep_mesh(hook, circle_profile(0.3, 8)))
        else:  # stud, seen from the front
            _set_stone(single, cut, carat, setting, 0.0)
            single.stand_up()
        for part in single.parts:
            if part.mesh is not None:
                piece.parts.append(Part(part.role, transformed(part.mesh, translation=(sign * spacing, 0, 0))))
            else:
                c, r = part.sphere
                piece.add_sphere(part.role, (c[0] + sign * spacing, c[1], c[2]), r)
    return piece


def bracelet(kind: str, cut: str, carat: float) -> Piece:
    piece = Piece()
    radius = 30.0
    if kind == "bangle":
        piece.add_metal(sweep_mesh(circle_path(radius, 160, "z"), rounded_rect_profile(3.0, 4.0, 16)))
        if carat > 0:
            _set_stone(piece, cut, carat, "bezel", 2.5 + gem_half_width(carat) * 0.6, (0.0, -radius))
        return piece
    small = max(0.05, carat)
    n = int(2 * math.pi * radius / (2.4 * gem_half_width(small)))
    for k in range(n):
        a = 2 * math.pi * k / n
        pos = (radius * math.cos(a), radius * math.sin(a), 0.0)
        piece.add_gem(transformed(gem_mesh("round", gem_half_width(small)), translation=pos))
    piece.add_metal(sweep_mesh(circle_path(radius, 160, "z", (0, 0, -gem_half_width(small) * 0.9)),
                               rounded_rect_profile(2.4 * gem_half_width(small), 1.2, 12)))
    return piece


def necklace(kind: str, gem: str, carat: float) -> Piece:
    piece = Piece()
    path = _u_path(width=60, depth=55)
    if kind == "pearls":
        radius = pearl_radius(carat)
        distances = np.cumsum(np.r_[0, np.linalg.norm(np.diff(path, axis=0), axis=1)])
        for d in np.arange(0, distances[-1], 2 * radius * 1.02):
            i = min(np.searchsorted(distances, d), len(path) - 1)
            piece.add_sphere("gem", path[i], radius)
        return piece
    piece.add_metal(_chain_mesh(path, 1.4))
    return piece


def _u_path(width: float, depth: float, count: int = 200) -> np.ndarray:
    t = np.linspace(-1, 1, count)
    return np.column_stack([width / 2 * np.sin(t * math.pi / 2), np.zeros(count), -depth * np.cos(t * math.pi / 2)])


def _v_path(start_z: float, spread: float, height: float, count: int = 80) -> np.ndarray:
    t = np.linspace(-1, 1, count)
    return np.column_stack([spread * t, np.zeros(count), start_z + height * np.abs(t) ** 1.3])


def _chain_mesh(path: np.ndarray, link: float) -> MeshData:
    """Interlocking oval links along a path (each link turned 90° from the last)."""
    distances = np.cumsum(np.r_[0, np.linalg.norm(np.diff(path, axis=0), axis=1)])
    meshes = []
    step = link * 1.6
    for k, d in enumerate(np.arange(0, distances[-1] - step, step)):
        i = np.searchsorted(distances, d)
        j = min(np.searchsorted(distances, d + step), len(path) - 1)
        a, b = path[i], path[j]
        centre = (a + b) / 2
        direction = (b - a) / max(np.linalg.norm(b - a), 1e-9)
        oval = np.array([(link * math.cos(2 * math.pi * s / 16), 0.6 * link * math.sin(2 * math.pi * s / 16), 0)
                         for s in range(16)])
        mesh = sweep_mesh(oval, circle_profile(0.22 * link, 6))
        angle = math.atan2(direction[2], direction[0])
        rot_y = np.array([[math.cos(angle), 0, -math.sin(angle)], [0, 1, 0], [math.sin(angle), 0, math.cos(angle)]])
        twist = rotation_x(math.pi / 2 if k % 2 else 0.0)
        meshes.append(transformed(mesh, rot_y @ twist, centre))
    return merge(meshes)
