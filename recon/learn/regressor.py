"""``Regressor``: the GAN's generator, a face crop + its landmarks -> :class:`FaceCoeffs` in one pass.

Two branches, sized for CPU inference (see :class:`RegressorConfig`):

- a small MobileNetV2-style CNN (depthwise-separable inverted residual blocks,
  GroupNorm) on the ``(B, 3, S, S)`` crop;
- an MLP on the 478 detected MediaPipe landmarks ``(B, 478, 2)`` in crop-normalised
  coordinates (they are computed anyway to make the crop; they carry pose and
  expression almost directly, which a CPU training budget needs), projected onto
  whitened principal components of training landmarks (buffers ``landmark_mean (956,)``
  and ``landmark_basis (956, K)``, set by :meth:`Regressor.fit_landmark_whitening`).

Fused features feed one linear head whose output is a flat parameter vector
(:data:`OUTPUT_LAYOUT`): identity, expression (sigmoid), crop-relative pose
(:mod:`facecast.recon.learn.inputs`), SH lighting (an offset from white ambient
light) and albedo region colours (sigmoid, starting at
:data:`facecast.recon.model.albedo.DEFAULT_COLOURS`). The flat vector is what the ONNX
twin (:mod:`facecast.recon.learn.onnx_twin`) computes; :func:`coeffs_from_output`
turns it into :class:`FaceCoeffs` with the fitter's camera.

Weights are stored as safetensors with the config in the metadata
(:func:`save_regressor`, :func:`load_regressor`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facecast.recon.fit.landmark_fit import FOCAL_FACTOR
from facecast.recon.learn.inputs import N_LANDMARKS, RegressorInputs, pose_from_crop, prepare_inputs
from facecast.recon.learn.nets import CropEncoder, LandmarkEncoder
from facecast.recon.model.albedo import DEFAULT_COLOURS
from facecast.recon.model.coeffs import N_EXPRESSION, N_IDENTITY, FaceCoeffs

#: names and sizes of the slices of the flat output, in order (albedo: 3 per region)
OUTPUT_LAYOUT: tuple[tuple[str, int], ...] = (
    ("identity", N_IDENTITY), ("expression", N_EXPRESSION), ("rotation_local", 3), ("position", 2),
    ("log_depth", 1), ("lighting", 27), ("albedo", -1),
)
FORMAT = "facecast-regressor-1"
SHIPPED_WEIGHTS = "regressor.safetensors"
EXPRESSION_BIAS = -3.0  # sigmoid(-3) = 0.05: most blendshapes are off most of the time


class WeightsError(ValueError):
    """A weights file that is not a facecast regressor (or from an incompatible version)."""


@dataclass(frozen=True)
class RegressorConfig:
    """Architecture and input geometry of :class:`Regressor` (stored with the weights).

    crop_size / crop_scale: crop side in pixels and its size relative to the landmark
    box (see :meth:`CropFrame.around`). widths: channels of the CNN stem and of each
    stride-2 stage; blocks: inverted residual blocks per stage; expand: their expansion
    factor. image_branch / landmark_branch: which inputs are used (at least one).
    landmark_components: the landmark MLP sees the landmarks projected onto this many
    whitened principal components of the training landmarks
    (:meth:`Regressor.fit_landmark_whitening`): pose dominates raw coordinates, and
    whitening makes expression and identity learnable in a CPU budget (held-out
    expression MSE 0.0063 vs 0.021 raw after the same 1,500 steps).
    anchor (cm, model space) and depth_unit (cm): the pose parametrisation of
    :mod:`facecast.recon.learn.inputs`; focal_factor: the image camera.
    """

    crop_size: int = 96
    crop_scale: float = 1.6
    image_branch: bool = True
    landmark_branch: bool = True
    widths: tuple[int, ...] = (16, 24, 40, 80, 128)
    blocks: tuple[int, ...] = (1, 2, 2, 2)
    expand: int = 4
    features: int = 256
    landmark_hidden: int = 256
    landmark_components: int = 128
    norm_groups: int = 8
    albedo_regions: int = len(DEFAULT_COLOURS)
    anchor: tuple[float, float, float] = (0.0, 0.2, 9.8)
    depth_unit: float = 12.0
    focal_factor: float = FOCAL_FACTOR

    def __post_init__(self) -> None:
        for name in ("widths", "blocks", "anchor"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not (self.image_branch or self.landmark_branch):
            raise ValueError("the regressor needs image_branch or landmark_branch (or both)")
        if len(self.blocks) != len(self.widths) - 1:
            raise ValueError(f"blocks needs one count per stage ({len(self.widths) - 1}), got {len(self.blocks)}")
        if not 1 <= self.landmark_components <= 2 * N_LANDMARKS:
            raise ValueError(f"landmark_components must be in [1, {2 * N_LANDMARKS}], got {self.landmark_components}")
        if self.crop_size < 16 or self.crop_scale <= 1.0 or len(self.anchor) != 3 or self.depth_unit <= 0:
            raise ValueError("crop_size must be >= 16, crop_scale > 1, anchor 3 numbers and depth_unit > 0")
        if self.albedo_regions != len(DEFAULT_COLOURS):
            raise ValueError(f"albedo_regions must be {len(DEFAULT_COLOURS)} (the AlbedoModel's regions)")

    @property
    def output_size(self) -> int:
        """Length P of the flat output vector."""
        return sum(3 * self.albedo_regions if n < 0 else n for _, n in OUTPUT_LAYOUT)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RegressorConfig:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise WeightsError(f"unknown regressor config keys {unknown} (weights from a newer facecast?)")
        return cls(**data)


@dataclass
class RegressorOutput:
    """The flat output split into its parts (B faces).

    identity ``(B, 100)``, expression ``(B, 53)`` in [0, 1], rotation_local ``(B, 3)``,
    position ``(B, 2)``, log_depth ``(B,)``, lighting ``(B, 9, 3)``, albedo ``(B, A, 3)``.
    """

    identity: torch.Tensor
    expression: torch.Tensor
    rotation_local: torch.Tensor
    position: torch.Tensor
    log_depth: torch.Tensor
    lighting: torch.Tensor
    albedo: torch.Tensor

    @classmethod
    def from_flat(cls, flat: torch.Tensor, albedo_regions: int) -> RegressorOutput:
        """Split ``(B, P)`` (see :data:`OUTPUT_LAYOUT`)."""
        sizes = [3 * albedo_regions if n < 0 else n for _, n in OUTPUT_LAYOUT]
        if flat.ndim != 2 or flat.shape[1] != sum(sizes):
            raise ValueError(f"output must have shape (B, {sum(sizes)}), got {tuple(flat.shape)}")
        parts = dict(zip((name for name, _ in OUTPUT_LAYOUT), torch.split(flat, sizes, dim=1)))
        b = flat.shape[0]
        return cls(parts["identity"], parts["expression"], parts["rotation_local"], parts["position"],
                   parts["log_depth"][:, 0], parts["lighting"].reshape(b, 9, 3),
                   parts["albedo"].reshape(b, albedo_regions, 3))


def coeffs_from_output(output: RegressorOutput, inputs: RegressorInputs, config: RegressorConfig) -> FaceCoeffs:
    """Network output -> :class:`FaceCoeffs` in the image camera (differentiable).

    The camera is the fitter's: focal ``focal_factor * max(H, W)``, principal point at
    the image centre (renderer pixel convention).
    """
    frame = inputs.frame
    anchor = torch.tensor(config.anchor, dtype=output.position.dtype)
    rotation, translation = pose_from_crop(output.rotation_local, output.position, output.log_depth, frame,
                                           anchor, config.depth_unit, config.focal_factor)
    focal, principal = frame.camera(config.focal_factor, output.position.dtype)
    return FaceCoeffs(output.identity, output.expression, rotation, translation, focal, principal,
                      output.lighting, output.albedo)


def _ambient_dc() -> float:
    from facecast.render.shading import ambient_light

    return float(ambient_light(1)[0, 0, 0])


class Regressor(nn.Module):
    """Crop ``(B, 3, S, S)`` in [0, 1] + landmarks ``(B, 478, 2)`` (crop-normalised) -> flat ``(B, P)``."""

    def __init__(self, config: RegressorConfig = RegressorConfig()) -> None:
        super().__init__()
        self.config = config
        width = 0
        self.crop_encoder = None
        if config.image_branch:
            self.crop_encoder = CropEncoder(config.widths, config.blocks, config.expand, config.features,
                                            config.norm_groups)
            width += config.features
        self.landmark_encoder = None
        if config.landmark_branch:
            self.landmark_encoder = LandmarkEncoder(config.landmark_components, config.landmark_hidden,
                                                    config.features)
            width += config.features
        k = config.landmark_components
        self.register_buffer("landmark_mean", torch.zeros(2 * N_LANDMARKS))
        self.register_buffer("landmark_basis", torch.eye(2 * N_LANDMARKS, k))
        self.fuse = nn.Sequential(nn.Linear(width, config.features), nn.SiLU())
        self.head = nn.Linear(config.features, config.output_size)
        lighting = torch.zeros(27)
        lighting[0:3] = _ambient_dc()  # (9, 3) flattened: the DC band of every channel
        self.register_buffer("lighting_base", lighting, persistent=False)
        colours = torch.as_tensor(DEFAULT_COLOURS, dtype=torch.float32).clamp(0.02, 0.98)
        self.register_buffer("albedo_logit", torch.logit(colours).reshape(-1), persistent=False)
        self._init_head()

    def _init_head(self) -> None:
        config = self.config
        with torch.no_grad():
            self.head.weight.mul_(0.1)
            self.head.bias.zero_()
            start = N_IDENTITY
            self.head.bias[start:start + N_EXPRESSION] = EXPRESSION_BIAS
            light = config.output_size - 3 * config.albedo_regions - 27
            self.head.weight[light:].zero_()  # lighting and albedo start at their defaults

    def forward(self, crops: torch.Tensor | None, landmarks: torch.Tensor) -> torch.Tensor:
        """crops ``(B, 3, S, S)`` RGB in [0, 1] (``None`` without an image branch), landmarks
        ``(B, 478, 2)`` -> flat parameters ``(B, P)`` (:data:`OUTPUT_LAYOUT`)."""
        return self.decode(self.encode(crops, landmarks))

    def encode(self, crops: torch.Tensor | None, landmarks: torch.Tensor) -> list[torch.Tensor]:
        """Branch features ``[(B, F) crop][, (B, F) landmarks]`` (inputs as :meth:`forward`)."""
        self._check(crops, landmarks)
        parts = []
        if self.crop_encoder is not None:
            parts.append(self.crop_encoder((crops - 0.5) * 4.0))
        if self.landmark_encoder is not None:
            flat = landmarks.reshape(landmarks.shape[0], -1)
            parts.append(self.landmark_encoder((flat - self.landmark_mean) @ self.landmark_basis))
        return parts

    def decode(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """:meth:`encode` features -> flat parameters ``(B, P)``."""
        raw = self.head(self.fuse(torch.cat(parts, dim=1)))
        light_start = self.config.output_size - 3 * self.config.albedo_regions - 27
        identity = raw[:, :N_IDENTITY]
        expression = torch.sigmoid(raw[:, N_IDENTITY:N_IDENTITY + N_EXPRESSION])
        pose = raw[:, N_IDENTITY + N_EXPRESSION:light_start]
        lighting = raw[:, light_start:light_start + 27] + self.lighting_base
        albedo = torch.sigmoid(raw[:, light_start + 27:] + self.albedo_logit)
        return torch.cat([identity, expression, pose, lighting, albedo], dim=1)

    @torch.no_grad()
    def fit_landmark_whitening(self, landmarks: torch.Tensor) -> None:
        """Set the landmark input transform from training landmarks ``(N, 478, 2)`` (crop-normalised).

        ``mean`` and the top ``landmark_components`` principal axes scaled to unit variance
        (PCA whitening); stored as buffers, so they travel with the weights and the ONNX export.
        """
        k = self.config.landmark_components
        if landmarks.ndim != 3 or landmarks.shape[1:] != (N_LANDMARKS, 2) or landmarks.shape[0] <= k:
            raise ValueError(f"need landmarks (N, {N_LANDMARKS}, 2) with N > {k}, got {tuple(landmarks.shape)}")
        flat = landmarks.reshape(landmarks.shape[0], -1).double()
        mean = flat.mean(0)
        values, vectors = torch.linalg.eigh(torch.cov((flat - mean).T))
        values, vectors = values.flip(0)[:k], vectors.flip(1)[:, :k]
        vectors = vectors * torch.where(vectors.sum(0) < 0, -1.0, 1.0)  # a fixed sign per axis
        self.landmark_mean.copy_(mean)
        self.landmark_basis.copy_(vectors / values.clamp_min(float(values[0]) * 1e-9).sqrt())

    def _check(self, crops: torch.Tensor | None, landmarks: torch.Tensor) -> None:
        if not isinstance(landmarks, torch.Tensor) or landmarks.ndim != 3 or landmarks.shape[1:] != (N_LANDMARKS, 2):
            shape = tuple(landmarks.shape) if isinstance(landmarks, torch.Tensor) else type(landmarks).__name__
            raise ValueError(f"landmarks must have shape (B, {N_LANDMARKS}, 2), got {shape}")
        if self.crop_encoder is None:
            return
        s = self.config.crop_size
        if crops is None:
            raise ValueError(f"this regressor has an image branch: crops (B, 3, {s}, {s}) are required")
        if crops.ndim != 4 or tuple(crops.shape[1:]) != (3, s, s) or crops.shape[0] != landmarks.shape[0]:
            raise ValueError(f"crops must have shape ({landmarks.shape[0]}, 3, {s}, {s}), got {tuple(crops.shape)}")

    def split(self, flat: torch.Tensor) -> RegressorOutput:
        """Flat ``(B, P)`` -> :class:`RegressorOutput`."""
        return RegressorOutput.from_flat(flat, self.config.albedo_regions)

    def regress(self, inputs: RegressorInputs) -> FaceCoeffs:
        """Prepared inputs -> :class:`FaceCoeffs` (differentiable; call under ``no_grad`` to infer)."""
        if inputs.frame.size != self.config.crop_size:
            raise ValueError(f"crops are {inputs.frame.size} px but the regressor takes {self.config.crop_size} px")
        return coeffs_from_output(self.split(self(inputs.crops, inputs.landmarks)), inputs, self.config)

    def prepare(self, faces: list, images: list[np.ndarray] | None,
                sizes: list[tuple[int, int]] | None = None) -> RegressorInputs:
        """Crops and normalised landmarks of detector faces (see :func:`prepare_inputs`)."""
        return prepare_inputs(faces, images, self.config.crop_size, self.config.crop_scale,
                              with_crops=self.config.image_branch, sizes=sizes)

    @torch.no_grad()
    def predict(self, faces: list, images: list[np.ndarray] | None,
                sizes: list[tuple[int, int]] | None = None, crops: torch.Tensor | None = None) -> FaceCoeffs:
        """:class:`FaceCoeffs` of B faces, one per image, in one batch.

        faces: :class:`~facecast.recon.landmarks.detector.DetectedFace` with ``mediapipe478`` points
        (detector pixel convention); images: RGB uint8 ``(H, W, 3)``, the images the faces
        were found in (sizes may differ). The coefficients use the fitter's camera
        (:func:`facecast.recon.fit.landmark_fit.default_camera`), so they can warm-start
        :func:`facecast.recon.fit.landmark_fit.fit_landmarks` (``init=``) for the refine path.
        A landmark-only regressor needs no images: ``images=None`` with ``sizes`` (H, W); nor
        does one given the faces' ``crops`` ``(B, 3, S, S)`` (cut from the images by :meth:`prepare`).
        """
        if crops is None:
            return self.regress(self.prepare(faces, images, sizes)).detach()
        c = self.config
        inputs = prepare_inputs(faces, images, c.crop_size, c.crop_scale, with_crops=False, sizes=sizes)
        return self.regress(RegressorInputs(crops, inputs.landmarks, inputs.frame)).detach()


def save_regressor(regressor: Regressor, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write ``path`` (.safetensors): the weights, the config and ``metadata`` (strings)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in regressor.state_dict().items()}
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta.update({"format": FORMAT, "regressor_config": regressor.config.to_json()})
    path = Path(path)
    save_file(tensors, str(path), metadata=meta)
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata strings of a weights file written by :func:`save_regressor`."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata() or {})


def shipped_regressor_path() -> Path:
    """Path of the shipped ``weights/regressor.safetensors`` (what trained it: its metadata)."""
    from importlib import resources

    return Path(str(resources.files("facecast.weights").joinpath(SHIPPED_WEIGHTS)))


def load_regressor(path: str | Path, device: torch.device | str = "cpu") -> Regressor:
    """A :class:`Regressor` in eval mode from :func:`save_regressor` output (no pickle involved)."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"regressor weights {path} do not exist")
    try:
        meta = read_metadata(path)
        tensors = load_file(str(path), device=str(device))
    except Exception as exc:  # safetensors raises its own error types for foreign files
        raise WeightsError(f"{path} is not a safetensors file: {exc}") from None
    if meta.get("format") != FORMAT:
        raise WeightsError(f"{path} is not facecast regressor weights (format {meta.get('format')!r}, "
                           f"expected {FORMAT!r})")
    regressor = Regressor(RegressorConfig.from_json(meta["regressor_config"]))
    try:
        regressor.load_state_dict(tensors)
    except RuntimeError as exc:
        raise WeightsError(f"{path}: weights do not match their config: {exc}") from None
    return regressor.to(device).eval()
