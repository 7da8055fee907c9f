"""Calibrate the MediaPipe-478 -> ICT table on rendered faces of known shape (writes
``weights/mediapipe478_ict_calibrated.npz``).

Usage: FACECAST_ASSETS=../shared/assets python -m facecast.recon.calibrate.calibrated_table
       [--media ../shared/media] [--textures 16] [--faces 24] [--cache DIR] [--out PATH]

The registered table (:mod:`facecast.recon.calibrate.mediapipe_table`) puts each MediaPipe
point where the canonical face model lands on the ICT neutral. MediaPipe, however,
places its points where its training taught it to, and that differs by a few
millimetres in places (eyelid and lip contours, cheeks, forehead). Renders give the
truth that photos lack: for random ICT faces whose geometry is known,

1. textures are baked from real photos (the even LFPW-68 images, named by sorted
   position, and the first frame of each video in ``media/videos``) with the
   project's own reconstruction; the astronaut texture of the synthetic
   benchmarks is *not* used, so those benchmarks stay held out;
2. every texture dresses ``faces`` random heads (identity ~ N(0, 0.8), 0-4 random
   expression channels, yaw +-40, pitch +-20, roll +-10 degrees, random light),
   rendered by :class:`~facecast.recon.learn.synthetic.SyntheticRenderer` and detected by
   MediaPipe;
3. independently for every skin point, the surface point within ``radius`` cm of
   its registered position with the smallest mean projected error (in units of the
   true outer-eye-corner distance) over all renders is kept, if it beats the
   registered point (same search as :mod:`facecast.recon.calibrate.ibug_table`). Iris
   points keep their registered positions.

Baked textures and detections are cached (``--cache``) so reruns only search.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from facecast.recon.calibrate.ibug_table import FittedSet, SearchConfig, SurfaceSearch
from facecast.recon.fit.landmark_fit import FOCAL_FACTOR
from facecast.recon.landmarks.correspondence import (
    SURFACE_SKIN,
    LandmarkMapping,
    ViewOffsets,
    calibrated_table_path,
    load_mediapipe_table,
    view_direction,
    view_features,
)
from facecast.recon.model.coeffs import PIXEL_OFFSET, FaceCoeffs, project_points
from facecast.recon.model.morphable import MorphableModel

OUTER_EYE_CORNERS = (33, 263)  # MediaPipe indices of the outer eye corners


@dataclass
class RenderedSet:
    """Rendered faces: true coefficients (B faces, render camera) and detections ``(B, 478, 2)``."""

    coeffs: FaceCoeffs
    detections: np.ndarray


def first_frame(video: Path) -> np.ndarray:
    """The first frame of ``video`` as RGB uint8 ``(H, W, 3)``."""
    import av

    with av.open(str(video)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def photo_sources(media: Path, count: int) -> list[tuple[str, np.ndarray]]:
    """``count`` (name, RGB image) pairs: even LFPW-68 images, then first video frames."""
    from facecast.recon.landmarks.evaluation import lfpw_samples, read_rgb

    videos = sorted((media / "videos").glob("*.mp4"))
    sources = [(v.name, first_frame(v)) for v in videos]
    for sample in lfpw_samples(media)[0::2]:
        if len(sources) >= count:
            break
        sources.append((sample.image.name, read_rgb(sample.image)))
    return sources[:count]


def bake_textures(model: MorphableModel, sources: list[tuple[str, np.ndarray]], size: int = 512) -> np.ndarray:
    """``(T, S, S, 3)`` uint8 face textures baked from photos (photos without a face skipped)."""
    from facecast.recon.fit.texture import TextureBaker, TextureConfig
    from facecast.recon.landmarks.detector import NoFaceError
    from facecast.recon.photo import PhotoConfig, PhotoReconstructor

    # the registered table, so that the calibration does not depend on an earlier one
    photo = PhotoReconstructor(model, config=PhotoConfig(calibrated_mapping=False))
    baker = TextureBaker(model, TextureConfig(size=size))
    textures = []
    for name, image in sources:
        try:
            result = photo.reconstruct(image, name)
        except NoFaceError:
            print(f"  no face in {name}; skipped")
            continue
        textures.append(baker.bake(result.coeffs, image))
    return np.stack(textures)


def random_coeffs(count: int, size: int, generator: torch.Generator) -> FaceCoeffs:
    """``count`` random faces in front of the render camera (see the module docstring)."""
    from facecast.recon.model.geometry import axis_angle_to_matrix, matrix_to_axis_angle
    from facecast.render.shading import ambient_light

    identity = 0.8 * torch.randn(count, 100, generator=generator)
    expression = torch.zeros(count, 53)
    for b in range(count):
        active = int(torch.randint(0, 5, (1,), generator=generator))
        expression[b, torch.randperm(53, generator=generator)[:active]] = torch.rand(active, generator=generator)
    limits = torch.deg2rad(torch.tensor([20.0, 40.0, 10.0]))
    euler = (2 * torch.rand(count, 3, generator=generator) - 1) * limits
    zero = torch.zeros(count)
    matrices = (axis_angle_to_matrix(torch.stack([zero, zero, euler[:, 2]], 1))
                @ axis_angle_to_matrix(torch.stack([zero, euler[:, 1], zero], 1))
                @ axis_angle_to_matrix(torch.stack([euler[:, 0], zero, zero], 1)))
    translation = torch.cat([torch.randn(count, 2, generator=generator),
                             -(32.0 + 10.0 * torch.rand(count, 1, generator=generator))], dim=1)
    return FaceCoeffs(identity, expression, matrix_to_axis_angle(matrices), translation,
                      torch.full((count,), FOCAL_FACTOR * size), torch.full((count, 2), size / 2.0),
                      ambient_light(count, 1.0), torch.full((count, 1, 3), 0.6))


def render_and_detect(model: MorphableModel, textures: np.ndarray, faces: int, size: int = 320,
                      seed: int = 1000) -> RenderedSet:
    """Render ``faces`` random heads per texture, detect them; renders without a face are dropped."""
    from facecast.recon.landmarks.mediapipe_mesh import MediaPipeDetector
    from facecast.recon.learn.synthetic import SyntheticRenderer, SyntheticScene

    generator = torch.Generator().manual_seed(seed)
    scene = SyntheticScene(size=size, focal=FOCAL_FACTOR * size)
    kept, detections = [], []
    with MediaPipeDetector() as detector:
        for texture in textures:
            renderer = SyntheticRenderer(model, texture, scene)
            coeffs = random_coeffs(faces, size, generator)
            light = torch.nn.functional.normalize(torch.randn(faces, 3, generator=generator).abs()
                                                  * torch.tensor([1.0, 1.0, 2.0]), dim=1)
            images = renderer.render(coeffs.identity, coeffs.expression, coeffs.rotation,
                                     coeffs.translation, light)
            for b, image in enumerate(images):
                found = detector.detect(image)
                if found:
                    kept.append(coeffs.select(b))
                    detections.append(found[0].points)
    return RenderedSet(FaceCoeffs.cat(kept), np.stack(detections))


def choose_mapping(model: MorphableModel, rendered: RenderedSet, registered: LandmarkMapping,
                   config: SearchConfig) -> tuple[LandmarkMapping, np.ndarray, np.ndarray]:
    """The calibrated mapping and each point's cost ``(478,)`` before and after (NaN: iris, kept)."""
    c = rendered.coeffs
    with torch.no_grad():
        points = registered.evaluate(model(c.identity, c.expression, c.rotation, c.translation).vertices)
        pixels = project_points(points, c.focal, c.principal).numpy() - PIXEL_OFFSET
    scale = np.linalg.norm(pixels[:, OUTER_EYE_CORNERS[0]] - pixels[:, OUTER_EYE_CORNERS[1]], axis=-1)
    before = (np.linalg.norm(pixels - rendered.detections, axis=-1) / scale[:, None]).mean(0)
    search = SurfaceSearch(model, FittedSet(c.to(torch.float64), rendered.detections, scale))
    ids, weights = registered.vertex_ids.copy(), registered.barycentric.copy()
    after = before.copy()
    neutral = model.data.neutral.astype(np.float64)
    starts = (neutral[ids] * weights[..., None]).sum(1)
    for k in np.flatnonzero(registered.surface == SURFACE_SKIN):
        tri, bary, cost = search.best_point(int(k), starts[k], config.radius, config)
        if cost < before[k]:
            ids[k], weights[k], after[k] = tri, bary, cost
    skin = registered.surface == SURFACE_SKIN
    before[~skin], after[~skin] = np.nan, np.nan
    return LandmarkMapping(registered.scheme, ids, weights, registered.surface), before, after


def projection_jacobians(points: torch.Tensor, rotation: torch.Tensor, focal: torch.Tensor) -> torch.Tensor:
    """``(B, N, 2, 3)`` d pixel / d model-frame offset at camera-frame ``points`` ``(B, N, 3)``."""
    from facecast.recon.model.geometry import axis_angle_to_matrix

    x, y, z = points.unbind(-1)
    w = -z
    f = focal[:, None]
    zero = torch.zeros_like(x)
    du = torch.stack([f / w, zero, f * x / w ** 2], dim=-1)
    dv = torch.stack([zero, -f / w, -f * y / w ** 2], dim=-1)
    return torch.stack([du, dv], dim=-2) @ axis_angle_to_matrix(rotation)[:, None]


def fit_view_offsets(model: MorphableModel, rendered: RenderedSet, mapping: LandmarkMapping,
                     ridge: float) -> ViewOffsets:
    """Least-squares :class:`ViewOffsets` for ``mapping`` on the renders (linearised projection, ridge)."""
    from facecast.recon.model.geometry import axis_angle_to_matrix

    c = rendered.coeffs.to(model.neutral.dtype)
    with torch.no_grad():
        points = mapping.evaluate(model(c.identity, c.expression, c.rotation, c.translation).vertices.double())
    c = c.to(torch.float64)
    with torch.no_grad():
        pixels = project_points(points, c.focal, c.principal) - PIXEL_OFFSET
        jac = projection_jacobians(points, c.rotation, c.focal)  # (B, N, 2, 3)
        view = view_direction(axis_angle_to_matrix(c.rotation), c.translation)  # (B, 2)
    scale = (pixels[:, OUTER_EYE_CORNERS[0]] - pixels[:, OUTER_EYE_CORNERS[1]]).norm(dim=-1)
    residual = (torch.as_tensor(rendered.detections, dtype=torch.float64) - pixels) / scale[:, None, None]
    features = torch.cat([torch.ones_like(view[:, :1]), view_features(view)], dim=1)  # (B, 1 + F)
    design = torch.einsum("bnij,bf->bnifj", jac / scale[:, None, None, None], features).flatten(3)  # (B,N,2,3(1+F))
    normal = torch.einsum("bnia,bnic->nac", design, design)
    normal = normal + ridge * len(view) * torch.eye(normal.shape[-1], dtype=torch.float64)
    theta = torch.linalg.solve(normal, torch.einsum("bnia,bni->na", design, residual))
    theta = theta.reshape(theta.shape[0], -1, 3)  # (N, 1 + F, xyz)
    return ViewOffsets(base=theta[:, 0].numpy(), gain=theta[:, 1:].transpose(1, 2).numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--media", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "media")
    parser.add_argument("--textures", type=int, default=16, help="photos to bake textures from")
    parser.add_argument("--faces", type=int, default=24, help="random heads rendered per texture")
    parser.add_argument("--radius", type=float, default=1.0, help="search radius on the neutral (cm)")
    parser.add_argument("--ridge", type=float, default=1e-4, help="ridge weight of the view-offset fit")
    parser.add_argument("--cache", type=Path, default=Path(".cache/calibration"))
    parser.add_argument("--out", type=Path, default=calibrated_table_path())
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = MorphableModel.load()
    args.cache.mkdir(parents=True, exist_ok=True)
    textures_file = args.cache / f"textures{args.textures}.npy"
    if not textures_file.exists():
        np.save(textures_file, bake_textures(model, photo_sources(args.media, args.textures)))
    textures = np.load(textures_file)
    renders_file = args.cache / f"renders{len(textures)}x{args.faces}.pt"
    if not renders_file.exists():
        torch.save(render_and_detect(model, textures, args.faces).__dict__, renders_file)
    rendered = RenderedSet(**torch.load(renders_file, weights_only=False))
    registered = load_mediapipe_table(None).mapping
    mapping, before, after = choose_mapping(model, rendered, registered, SearchConfig(radius=args.radius))
    mapping = replace(mapping, view=fit_view_offsets(model, rendered, mapping, args.ridge))
    final = point_costs(model, rendered, mapping)
    save_calibrated_table(mapping, args.out, np.stack([before, after, final]), len(textures), len(rendered.detections))
    print(f"wrote {args.out}: mean point cost {100 * np.nanmean(before):.2f}% (registered) -> "
          f"{100 * np.nanmean(after):.2f}% (surface search) -> {100 * final.mean():.2f}% (view offsets) "
          f"on {len(rendered.detections)} renders of {len(textures)} textures")


def point_costs(model: MorphableModel, rendered: RenderedSet, mapping: LandmarkMapping) -> np.ndarray:
    """``(N,)`` mean projected error of each point (outer-eye-corner units), view offsets included."""
    from facecast.recon.landmarks.sparse import SparseLandmarks

    c = rendered.coeffs
    with torch.no_grad():
        points = SparseLandmarks.build(model, mapping).evaluate(c.identity, c.expression, c.rotation, c.translation)
        pixels = project_points(points, c.focal, c.principal).numpy() - PIXEL_OFFSET
    scale = np.linalg.norm(pixels[:, OUTER_EYE_CORNERS[0]] - pixels[:, OUTER_EYE_CORNERS[1]], axis=-1)
    return (np.linalg.norm(pixels - rendered.detections, axis=-1) / scale[:, None]).mean(0)


def save_calibrated_table(mapping: LandmarkMapping, path: Path, costs: np.ndarray, textures: int,
                          renders: int) -> None:
    """Write the calibrated table atomically (``.npz``); costs ``(3, N)``: registered, searched, final."""
    import os

    path = Path(path)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, vertex_ids=mapping.vertex_ids.astype(np.int32),
                        barycentric=mapping.barycentric.astype(np.float32), surface=mapping.surface,
                        view_base=mapping.view.base.astype(np.float32),
                        view_gain=mapping.view.gain.astype(np.float32), costs=costs.astype(np.float32),
                        chosen_on=np.array(f"{renders} renders, {textures} textures (LFPW-68 even, videos)"))
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
