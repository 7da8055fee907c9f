"""The contact sheet of ``benchmarks/avatar_quality.py``: saved reconstructions re-read as avatars and
rendered by our renderer (front / three-quarter / side under a soft key light) and, when Blender is
installed, by Blender's EEVEE from the GLB (``benchmarks/blender_views.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

MESH_FIELDS = ("vertices", "polygons", "uvs", "face_uvs", "face_material", "morph_deltas", "face_region",
               "source_vertex_ids")


def load_mesh(saved):
    """The saved :class:`AvatarMesh` (its colours as saved, its face texture re-encoded)."""
    from facecast.pipelines.commands.reconstruct import _png
    from facecast.pipelines.export.avatar import AvatarMesh, MaterialTexture

    names = tuple(str(n) for n in saved["material_names"])
    textures = tuple(MaterialTexture(str(m), _png(saved["texture"])) for m in saved["textured"])
    colours = tuple((n, tuple(float(x) for x in c)) for n, c in zip(names, saved["material_colours"]))
    return AvatarMesh(**{f: saved[f] for f in MESH_FIELDS}, material_names=names, morph_names=tuple(
        f"m{k}" for k in range(len(saved["morph_deltas"]))), region_names=tuple(
        f"r{k}" for k in range(int(saved["face_region"].max()) + 1)), textures=textures, colour_overrides=colours)


def views(saved, size: int = 256) -> list[np.ndarray]:
    """Front, three-quarter and side views of a saved avatar under a soft key light."""
    import torch

    from facecast.pipelines.export.avatar_view import render_avatar, turned, view_camera
    from facecast.render.shading import directional_light

    mesh = load_mesh(saved)
    light = directional_light(torch.tensor([[0.4, 0.3, 1.0]]), 0.6, 0.5)
    camera = view_camera((size, size), size * 60 / 32, (size / 2, size * 0.42))
    return [render_avatar(mesh, turned(mesh.vertices, yaw, 60.0), camera, light, (0.85, 0.85, 0.85))[0]
            for yaw in (0.0, 35.0, 75.0)]


def blender_views(saved_sets: list, size: int) -> list[list[np.ndarray]] | None:
    """EEVEE front and three-quarter renders of each saved avatar's GLB (``benchmarks/blender_views.py``);
    ``None`` when Blender is not installed."""
    import os
    import shutil
    import subprocess
    import tempfile

    from PIL import Image

    from facecast.pipelines.export.gltf import export_glb

    blender = shutil.which("blender")
    if blender is None:
        return None
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(repo / ".ci" / "blender-py"))  # its glTF importer needs numpy >= 2
    with tempfile.TemporaryDirectory() as tmp:
        args = []
        for k, saved in enumerate(saved_sets):
            glb = Path(tmp) / f"{k}.glb"
            glb.write_bytes(export_glb(load_mesh(saved)))
            args += [str(glb), str(Path(tmp) / str(k))]
        subprocess.run([blender, "-b", "--factory-startup", "--python", str(repo / "benchmarks" / "blender_views.py"),
                        "--", str(size), *args], env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60 + 30 * len(saved_sets))
        return [[np.asarray(Image.open(Path(tmp) / f"{k}_{view}.png").convert("RGB")) / 255.0
                 for view in ("front", "threequarter")] for k in range(len(saved_sets))]


def cell(image: np.ndarray, box: np.ndarray | None, size: int) -> np.ndarray:
    import cv2

    if box is not None:  # a square around the face
        centre, side = (box.min(0) + box.max(0)) / 2, 1.5 * float((box.max(0) - box.min(0)).max())
        x0, y0 = np.round(centre - side / 2).astype(int)
        pad = int(side)
        padded = cv2.copyMakeBorder((image * 255).astype(np.uint8), pad, pad, pad, pad, cv2.BORDER_CONSTANT)
        image = padded[y0 + pad:y0 + pad + int(side), x0 + pad:x0 + pad + int(side)] / 255.0
    return cv2.resize(image.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
