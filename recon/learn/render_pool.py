"""A rendered training pool: synthetic photos of ICT heads, seen through MediaPipe as at inference.

Each face of the pool is drawn from :class:`PoolConfig` (random identity, a sparse
expression over every ARKit channel with symmetric pairs, pose, SH light with a
colour tint, one of the pool's photo textures), rendered by our renderer into a
``image x image`` photo over a real-photo background, degraded (Gaussian blur, noise,
JPEG), and run through the MediaPipe detector. The regressor's crop and landmarks are
made from the *detected* points exactly as at inference (:func:`prepare_inputs`), so
training sees the detector's real errors (its lids, its pitch bias). Faces the detector
misses are dropped (counted per shard).

Shard ``k`` is deterministic: its random streams derive from ``(seed, k)`` only, so a
pool can be built in pieces, in parallel, and resumed (:mod:`facecast.recon.learn.pool_files`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from facecast.recon.learn.inputs import CropFrame, prepare_inputs
from facecast.recon.learn.train_data import SyntheticConfig, random_rotations
from facecast.recon.model.coeffs import PIXEL_OFFSET, coeffs_camera
from facecast.recon.model.geometry import axis_angle_to_matrix
from facecast.render.shading import directional_light

GREEN = (0.0, 1.0, 0.0)
RENDER_CHUNK = 16  # faces rendered at once, all with one texture


@dataclass(frozen=True)
class PoolConfig:
    """How a pool's faces are drawn (stored in the pool's ``pool.json``).

    faces / shard: faces drawn in all, and per shard file. image: side of the square
    render (px; the fitter's camera, focal ``focal_factor * image``). crop_size /
    crop_scale: the regressor crop (must match :class:`RegressorConfig`). identity_std:
    identity ~ N(0, std^2). yaw / pitch / roll: uniform in +- degrees. depth: cm of the
    head anchor. placement: the anchor projects within +- placement * image of the centre.
    neutral: fraction of faces with every channel 0. channels: active channels per other
    face (uniform in [low, high]), values uniform in [0, 1]; symmetric: chance that an
    active channel's mirror partner moves too (at 0.8-1.2 x its value). blur / noise:
    largest Gaussian blur sigma (px) and pixel noise sigma (8-bit); jpeg: quality range.
    """

    faces: int = 32768
    shard: int = 512
    seed: int = 0
    image: int = 256
    crop_size: int = 96
    crop_scale: float = 1.6
    focal_factor: float = 1.2
    identity_std: float = 0.8
    yaw: float = 45.0
    pitch: float = 25.0
    roll: float = 12.0
    depth: tuple[float, float] = (32.0, 60.0)
    placement: float = 0.12
    neutral: float = 0.1
    channels: tuple[int, int] = (1, 6)
    symmetric: float = 0.6
    blur: float = 1.5
    noise: float = 6.0
    jpeg: tuple[int, int] = (35, 95)

    def __post_init__(self) -> None:
        for name in ("depth", "channels", "jpeg"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.faces < 1 or self.shard < 1 or self.image < 64:
            raise ValueError("faces and shard must be >= 1 and image >= 64 px")
        if not (0 <= self.channels[0] <= self.channels[1] <= 53) or not 0 <= self.neutral <= 1:
            raise ValueError(f"channels must be 0 <= low <= high <= 53 and neutral in [0, 1], got {self.channels}")
        if not (1 <= self.jpeg[0] <= self.jpeg[1] <= 100) or not 0 < self.depth[0] <= self.depth[1]:
            raise ValueError("jpeg must be 1 <= low <= high <= 100 and depth 0 < low <= high")

    @property
    def shards(self) -> int:
        return -(-self.faces // self.shard)

    def shard_faces(self, index: int) -> int:
        """Faces drawn for shard ``index`` (the last one may be short)."""
        return min(self.shard, self.faces - index * self.shard)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def mirror_partners(names: list[str]) -> np.ndarray:
    """``(53,)`` index of each channel's mirror partner moving with it (-1: none).

    eyeBlinkLeft <-> eyeBlinkRight and the like; gaze pairs so that both eyes look one
    way (eyeLookInLeft <-> eyeLookOutRight); jaw/mouth Left/Right (sideways moves) have none.
    """
    index = {n: k for k, n in enumerate(names)}
    partners = np.full(len(names), -1)
    for k, name in enumerate(names):
        if name in ("jawLeft", "jawRight", "mouthLeft", "mouthRight"):
            continue
        other = None
        for side, opposite in (("Left", "Right"), ("Right", "Left")):
            if name.endswith(side):
                other = name[: -len(side)] + opposite
                if other.startswith("eyeLookIn"):
                    other = "eyeLookOut" + other[len("eyeLookIn"):]
                elif other.startswith("eyeLookOut"):
                    other = "eyeLookIn" + other[len("eyeLookOut"):]
        if other in index:
            partners[k] = index[other]
    return partners


def draw_expressions(count: int, config: PoolConfig, partners: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``(count, 53)`` float32 expressions (see :class:`PoolConfig`)."""
    out = np.zeros((count, len(partners)), dtype=np.float32)
    low, high = config.channels
    for row in out:
        if rng.random() < config.neutral:
            continue
        chosen = rng.choice(len(partners), size=rng.integers(low, high + 1), replace=False)
        row[chosen] = rng.random(len(chosen))
        for k in chosen:
            if partners[k] >= 0 and rng.random() < config.symmetric:
                row[partners[k]] = min(1.0, row[k] * rng.uniform(0.8, 1.2))
    return out


@dataclass
class PoolShard:
    """One shard's faces (N kept of ``drawn``).

    crops ``(N, S, S, 3)`` uint8 (the regressor crop of the render); points ``(N, 478, 2)``
    detected MediaPipe points, renderer pixels; origin ``(N, 2)`` / scale ``(N,)``: the
    crop frame; truth: identity ``(N, 100)``, expression ``(N, 53)``, rotation /
    translation ``(N, 3)``, focal ``(N,)``, principal ``(N, 2)`` (image camera); image:
    render side (px); texture ``(N,)``: index of the texture used.
    """

    crops: np.ndarray
    points: np.ndarray
    origin: np.ndarray
    scale: np.ndarray
    identity: np.ndarray
    expression: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    focal: np.ndarray
    principal: np.ndarray
    texture: np.ndarray
    image: int
    drawn: int

    def __len__(self) -> int:
        return int(self.crops.shape[0])


def _background(photos: list[np.ndarray], side: int, rng: np.random.Generator) -> np.ndarray:
    """A random square part of a random photo, resized to ``side``, maybe mirrored and blurred."""
    import cv2

    photo = photos[rng.integers(len(photos))]
    h, w = photo.shape[:2]
    part = int(min(h, w) * rng.uniform(0.35, 1.0))
    y, x = rng.integers(0, h - part + 1), rng.integers(0, w - part + 1)
    out = cv2.resize(photo[y:y + part, x:x + part], (side, side), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    sigma = rng.uniform(0.0, 3.0)
    return cv2.GaussianBlur(out, (0, 0), sigma) if sigma > 0.3 else np.ascontiguousarray(out)


def degrade(image: np.ndarray, config: PoolConfig, rng: np.random.Generator) -> np.ndarray:
    """Blur, noise and JPEG round trip of an RGB uint8 image (each at a random strength)."""
    import cv2

    sigma = rng.uniform(0.0, config.blur)
    if sigma > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    noisy = image.astype(np.float32) + rng.normal(0.0, rng.uniform(0.0, config.noise), image.shape)
    image = np.clip(noisy + 0.5, 0, 255).astype(np.uint8)
    quality = int(rng.integers(config.jpeg[0], config.jpeg[1] + 1))
    ok, data = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return np.ascontiguousarray(cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]) if ok else image


def rendered_face(faces: list, mask: np.ndarray, coverage: float = 0.6):
    """The detected face that is the rendered head (not one in the background photo), or None.

    mask ``(H, W)``: the render's coverage. A face counts when at least ``coverage`` of its
    landmark box lies on the render; of those, the largest.
    """
    h, w = mask.shape
    ours = []
    for face in faces:
        x0, y0, x1, y1 = np.clip(np.round(face.box).astype(int), 0, [w - 1, h - 1, w - 1, h - 1])
        if x1 > x0 and y1 > y0 and mask[y0:y1 + 1, x0:x1 + 1].mean() >= coverage:
            ours.append(face)
    return max(ours, key=lambda f: f.area, default=None)


class ShardRenderer:
    """Renders and detects the faces of one shard at a time.

    model: the ICT :class:`MorphableModel`; textures: :class:`SyntheticRenderer` s, one per
    photo texture (their atlas, faces and rasterizer are used); backgrounds: RGB uint8
    photos; detector: a :class:`MediaPipeDetector` (image mode); anchor: the regressor's
    anchor point (cm, model space).
    """

    def __init__(self, config: PoolConfig, model, textures: list, backgrounds: list[np.ndarray], detector,
                 anchor: tuple[float, float, float]) -> None:
        if not textures or not backgrounds:
            raise ValueError("a pool needs at least one texture and one background photo")
        self.config, self.model, self.textures, self.backgrounds = config, model, textures, backgrounds
        self.detector, self.anchor = detector, torch.tensor(anchor)
        self.partners = mirror_partners(list(model.expression_names))

    def _draw(self, count: int, rng: np.random.Generator, gen: torch.Generator):
        c = self.config
        identity = torch.as_tensor(np.clip(rng.normal(0, c.identity_std, (count, 100)), -2.5, 2.5), dtype=torch.float32)
        expression = torch.as_tensor(draw_expressions(count, c, self.partners, rng))
        rotation = random_rotations(count, SyntheticConfig(pitch=c.pitch, yaw=c.yaw, roll=c.roll), gen)
        image_size = torch.tensor([[c.image, c.image]] * count)
        focal, principal = CropFrame(torch.zeros(count, 2), torch.ones(count), c.crop_size,
                                     image_size).camera(c.focal_factor)
        depth = torch.as_tensor(rng.uniform(*c.depth, count), dtype=torch.float32)
        pixel = principal + torch.as_tensor(rng.uniform(-c.placement, c.placement, (count, 2)) * c.image,
                                            dtype=torch.float32)
        offset = (pixel - principal) * (depth / focal)[:, None]
        anchor_cam = torch.stack([offset[:, 0], -offset[:, 1], -depth], dim=1)
        translation = anchor_cam - axis_angle_to_matrix(rotation) @ self.anchor
        return identity, expression, rotation, translation, focal, principal

    def _light(self, count: int, rng: np.random.Generator) -> torch.Tensor:
        direction = torch.as_tensor(np.stack([rng.uniform(-0.8, 0.8, count), rng.uniform(-0.3, 0.9, count),
                                              np.ones(count)], 1), dtype=torch.float32)
        light = torch.cat([directional_light(direction[b:b + 1], float(rng.uniform(0.2, 0.8)),
                                             float(rng.uniform(0.2, 0.7))) for b in range(count)])
        tint = torch.as_tensor(rng.uniform(0.92, 1.08, (count, 1, 3)), dtype=torch.float32)
        return light * tint

    def render(self, index: int) -> PoolShard:
        """Shard ``index`` of the pool (deterministic in ``(config.seed, index)``)."""
        c = self.config
        count = c.shard_faces(index)
        rng = np.random.default_rng([c.seed, index])
        gen = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
        identity, expression, rotation, translation, focal, principal = self._draw(count, rng, gen)
        light = self._light(count, rng)
        kept: dict[str, list] = {k: [] for k in ("crops", "points", "origin", "scale", "rows", "texture")}
        green = torch.tensor(GREEN)
        for start in range(0, count, RENDER_CHUNK):
            part = slice(start, min(start + RENDER_CHUNK, count))
            which = int(rng.integers(len(self.textures)))
            r = self.textures[which]
            n = part.stop - part.start
            with torch.no_grad():
                vertices = self.model(identity[part], expression[part], rotation[part], translation[part]).vertices
                out = r.renderer(vertices, r.faces, coeffs_camera(focal[part], principal[part], (c.image, c.image)),
                                 r.texture, light[part], background=green)
            colour = (out.image.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
            mask = out.mask.numpy()[..., None]
            for k in range(n):
                back = _background(self.backgrounds, c.image, rng)
                photo = (colour[k] * mask[k] + back * (1 - mask[k]) + 0.5).astype(np.uint8)
                photo = degrade(photo, c, rng)
                face = rendered_face(self.detector.detect(photo), mask[k, ..., 0])
                if face is None:
                    continue
                inputs = prepare_inputs([face], [photo], c.crop_size, c.crop_scale)
                kept["crops"].append((inputs.crops[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
                kept["points"].append((face.points + PIXEL_OFFSET).astype(np.float32))
                kept["origin"].append(inputs.frame.origin[0].numpy())
                kept["scale"].append(float(inputs.frame.scale[0]))
                kept["rows"].append(part.start + k)
                kept["texture"].append(which)
        rows = np.array(kept["rows"], dtype=np.int64)
        s = c.crop_size

        def stack(name, shape, dtype=np.float32):
            return np.stack(kept[name]).astype(dtype) if len(rows) else np.zeros((0, *shape), dtype)

        return PoolShard(stack("crops", (s, s, 3), np.uint8), stack("points", (478, 2)), stack("origin", (2,)),
                         np.array(kept["scale"], dtype=np.float32), identity[rows].numpy(), expression[rows].numpy(),
                         rotation[rows].numpy(), translation[rows].numpy(), focal[rows].numpy(),
                         principal[rows].numpy(), np.array(kept["texture"], dtype=np.int16), c.image, count)
