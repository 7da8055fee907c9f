"""Render the ICT head reference images that ``test_render_reference_images.py`` compares against.

Run once (and again only when a rendering change is intended, then review the PNGs):

    python tests/render/make_reference_images.py

It writes ``tests/data/render/<scene>.png`` (128 x 128). The scenes and the
rendering settings are defined here and imported by the test, so both always agree.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
OUTPUT = REPO / "tests" / "data" / "render"
SIZE = 128

#: name -> rotation (axis-angle), expression weights by ARKit name, identity weights by mode,
#: camera kind, soft silhouette sigma.
SCENES: dict[str, dict] = {
    "neutral_front": dict(rotation=(0.0, 0.0, 0.0)),
    "yaw_left": dict(rotation=(0.0, 0.6, 0.0)),
    "yaw_left_soft": dict(rotation=(0.0, 0.6, 0.0), soft_sigma=0.6),
    "pitch_jaw_open": dict(rotation=(0.35, -0.25, 0.0), expression={"jawOpen": 0.8, "eyeBlinkLeft": 1.0}),
    "identity_ortho": dict(rotation=(-0.15, 0.3, 0.1), identity={0: 1.5, 1: -1.0, 2: 0.8, 3: 1.0},
                           orthographic=True),
}


def _vertices(model, scene: dict) -> torch.Tensor:
    identity = torch.zeros(1, 100)
    for mode, value in scene.get("identity", {}).items():
        identity[0, mode] = value
    expression = torch.zeros(1, 53)
    for name, value in scene.get("expression", {}).items():
        expression[0, model.expression_names.index(name)] = value
    rotation = torch.tensor([scene["rotation"]])
    return model(identity, expression, rotation, torch.zeros(1, 3)).vertices


def _albedo(model) -> torch.Tensor:
    """A smooth per-vertex colour pattern (so interpolation changes show)."""
    p = model.neutral
    colour = torch.stack([0.6 + 0.25 * torch.sin(0.45 * p[:, 0]), 0.5 + 0.2 * torch.cos(0.3 * p[:, 1]),
                          0.45 + 0.2 * torch.sin(0.25 * (p[:, 2] + p[:, 1]))], dim=-1)
    return colour[None]


def _light() -> torch.Tensor:
    from facecast.render.shading import directional_light

    light = directional_light(torch.tensor([[0.5, 0.6, 1.0]]), intensity=0.6, ambient=0.35)
    light[:, :, 2] *= 0.85  # a warm light
    light[:, 4, 0] += 0.3   # and a band-2 term in red only
    return light


def render_scene(model, name: str) -> np.ndarray:
    """``uint8 (SIZE, SIZE, 3)`` image of scene ``name``."""
    from facecast.render.cameras import OrthographicCamera, PerspectiveCamera
    from facecast.render.preview import to_uint8
    from facecast.render.renderer import Renderer, RendererConfig

    scene = SCENES[name]
    if scene.get("orthographic"):
        camera = OrthographicCamera.front((SIZE, SIZE), scale=4.0)
    else:
        camera = PerspectiveCamera.front((SIZE, SIZE), distance=80.0, focal=320.0)
    renderer = Renderer(RendererConfig(backend="torch", soft_sigma=scene.get("soft_sigma")))
    with torch.no_grad():
        out = renderer(_vertices(model, scene), model.triangles(("head",)), camera, _albedo(model), _light(),
                       torch.tensor([0.08, 0.08, 0.12]))
    return to_uint8(out.image[0])


def main() -> None:
    os.environ.setdefault("FACECAST_ASSETS", str(REPO.parent / "shared" / "assets"))
    from facecast.recon.model.morphable import MorphableModel
    from facecast.render.preview import write_png

    model = MorphableModel.load()
    OUTPUT.mkdir(parents=True, exist_ok=True)
    for name in SCENES:
        path = write_png(OUTPUT / f"{name}.png", render_scene(model, name))
        print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
