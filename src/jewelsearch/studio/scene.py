"""A Mitsuba scene dict for a piece: studio lights, dark flags, backdrop, camera."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from jewelsearch.studio.geometry import MeshData
from jewelsearch.studio.materials import gem_bsdf, metal_bsdf
from jewelsearch.studio.pieces import Piece
from jewelsearch.studio.spec import JewelSpec

BACKGROUND_SETUP = {
    # backdrop reflectance, environment radiance, key light strength.  The white sweep
    # is a lit light-tent: the floor itself glows, so it photographs pure white while
    # the dim surroundings and flags still give metal its dark reflections.
    "white sweep": ((0.9, 0.9, 0.9), 0.1, 6.0),
    "black velvet": ((0.015, 0.015, 0.015), 0.015, 22.0),
    "gradient": (None, 0.35, 16.0),
    "marble": (None, 0.55, 16.0),
    "wood": (None, 0.45, 16.0),
}


def write_ply(mesh: MeshData, path: Path) -> None:
    """Binary little-endian PLY (positions and triangles only)."""
    header = (f"ply\nformat binary_little_endian 1.0\nelement vertex {len(mesh.vertices)}\n"
              "property float x\nproperty float y\nproperty float z\n"
              f"element face {len(mesh.faces)}\nproperty list uchar int vertex_indices\nend_header\n")
    with open(path, "wb") as fh:
        fh.write(header.encode())
        fh.write(np.ascontiguousarray(mesh.vertices, dtype="<f4").tobytes())
        rows = np.empty(len(mesh.faces), dtype=[("n", "u1"), ("i", "<i4", (3,))])
        rows["n"] = 3
        rows["i"] = mesh.faces
        fh.write(rows.tobytes())


def backdrop_texture(kind: str, seed: int, size: int = 256) -> np.ndarray:
    """Procedural gradient, marble or wood, as linear RGB float32 [size, size, 3]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    if kind == "gradient":
        top, bottom = rng.uniform(0.5, 0.85, 3), rng.uniform(0.05, 0.3, 3)
        t = y[..., None]
        return (bottom * (1 - t) + top * t).astype(np.float32)
    noise = np.zeros((size, size))
    for octave in range(5):  # value noise: upsampled random grids of rising frequency
        cells = 4 * 2 ** octave
        grid = rng.random((cells + 1, cells + 1))
        gx, gy = x * cells, y * cells
        ix, iy = gx.astype(int), gy.astype(int)
        fx, fy = gx - ix, gy - iy
        top = grid[iy, ix] * (1 - fx) + grid[iy, ix + 1] * fx
        low = grid[iy + 1, ix] * (1 - fx) + grid[iy + 1, ix + 1] * fx
        noise += (top * (1 - fy) + low * fy) / 2 ** octave
    if kind == "marble":
        veins = np.abs(np.sin(8 * x + 6 * y + 5 * noise)) ** 0.3
        base = np.array([0.78, 0.77, 0.75])
        return (base * (0.75 + 0.25 * veins)[..., None]).astype(np.float32)
    rings = np.sin(40 * (y + 0.15 * noise)) * 0.5 + 0.5
    wood = np.array([0.32, 0.18, 0.08]) * (0.7 + 0.3 * rings)[..., None]
    return wood.astype(np.float32)


def build_scene(spec: JewelSpec, piece: Piece, work_dir: Path, *, size: int, spp: int,
                integrator: dict | None = None) -> tuple[dict, dict[str, str]]:
    """(scene dict, shape id -> role) for Mitsuba's load_dict."""
    import mitsuba as mi

    work_dir.mkdir(parents=True, exist_ok=True)
    lo, hi = piece.bounds()
    centre = (lo + hi) / 2
    radius = float(np.linalg.norm(hi - lo) / 2)
    fov = 28.0
    distance = radius / math.tan(math.radians(fov / 2)) * 1.08
    elevation, azimuth = math.radians(spec.camera_elevation), math.radians(spec.camera_azimuth)
    direction = np.array([math.sin(azimuth) * math.cos(elevation), -math.cos(azimuth) * math.cos(elevation),
                          math.sin(elevation)])
    origin = centre + direction * distance
    scene: dict = {
        "type": "scene",
        "integrator": integrator or {"type": "path", "max_depth": 14, "rr_depth": 8},
        "sensor": {
            "type": "perspective", "fov": fov,
            "to_world": mi.ScalarTransform4f().look_at(origin=origin.tolist(), target=centre.tolist(),
                                                       up=[0, 0, 1]),
            "film": {"type": "hdrfilm", "width": size, "height": size, "rfilter": {"type": "gaussian"}},
            "sampler": {"type": "independent", "sample_count": spp},
        },
    }
    roles: dict[str, str] = {}
    reflectance, env, key = BACKGROUND_SETUP[spec.background]
    scene["environment"] = {"type": "constant", "radiance": {"type": "rgb", "value": env}}
    span = radius * 12
    if reflectance is None:
        texture = backdrop_texture(spec.background, spec.render_seed)
        floor_bsdf = {"type": "diffuse", "reflectance": {"type": "bitmap", "data": mi.TensorXf(texture), "raw": True}}
    else:
        floor_bsdf = {"type": "diffuse", "reflectance": {"type": "rgb", "value": list(reflectance)}}
    scene["floor"] = {"type": "rectangle", "bsdf": floor_bsdf,
                      "to_world": mi.ScalarTransform4f().translate([centre[0], centre[1], lo[2] - 0.05])
                      @ mi.ScalarTransform4f().scale([span, span, 1])}
    if spec.background == "white sweep":
        scene["floor"]["emitter"] = {"type": "area", "radiance": {"type": "rgb", "value": 0.9}}
        back = centre - direction * distance * 1.5
        scene["backdrop"] = {
            "type": "rectangle",
            "to_world": mi.ScalarTransform4f().look_at(origin=back.tolist(), target=origin.tolist(), up=[0, 0, 1])
            @ mi.ScalarTransform4f().scale([span, span, 1]),
            "emitter": {"type": "area", "radiance": {"type": "rgb", "value": 1.05}}}
        roles["backdrop"] = "background"
    roles["floor"] = "background"
    # Soft boxes: a key light above-front, a fill from the side; dark flags to the sides give
    # polished metal the black edges that make it read as metal rather than grey plastic.
    for name, pos, strength, scale in (("key", (-0.6, -0.8, 1.3), key, 0.9), ("fill", (1.0, -0.3, 0.6), key * 0.45, 0.7),
                                       ("top", (0.0, 0.3, 1.6), key * 0.5, 0.8)):
        p = centre + np.array(pos) * distance
        scene[f"light_{name}"] = {
            "type": "rectangle",
            "to_world": mi.ScalarTransform4f().look_at(origin=p.tolist(), target=centre.tolist(), up=[0, 0, 1])
            @ mi.ScalarTransform4f().scale([radius * scale * 2, radius * scale * 2, 1]),
            "emitter": {"type": "area", "radiance": {"type": "rgb", "value": strength}},
        }
        roles[f"light_{name}"] = "background"
    for name, pos in (("flag_left", (-1.3, 0.4, 0.3)), ("flag_right", (1.3, 0.5, 0.35))):
        p = centre + np.array(pos) * distance
        scene[name] = {"type": "rectangle",
                       "to_world": mi.ScalarTransform4f().look_at(origin=p.tolist(), target=centre.tolist(),
                                                                  up=[0, 0, 1])
                       @ mi.ScalarTransform4f().scale([radius * 1.5, radius * 1.5, 1]),
                       "bsdf": {"type": "diffuse", "reflectance": {"type": "rgb", "value": 0.01}}}
        roles[name] = "background"
    metal = metal_bsdf(spec.metal, spec.finish) if spec.metal else metal_bsdf("silver")
    for i, part in enumerate(piece.parts):
        key_name = f"{part.role}_{i:04d}"
        bsdf = metal if part.role == "metal" else gem_bsdf(spec.gemstone or "diamond")
        if part.mesh is not None:
            path = work_dir / f"{key_name}.ply"
            write_ply(part.mesh, path)
            scene[key_name] = {"type": "ply", "filename": str(path), "bsdf": bsdf,
                               "face_normals": part.role == "gem" and (spec.cut or "") != "cabochon"}
        else:
            centre_xyz, r = part.sphere
            scene[key_name] = {"type": "sphere", "center": list(centre_xyz), "radius": r, "bsdf": bsdf}
        roles[key_name] = part.role
    return scene, roles
