"""Photo -> :class:`FaceCoeffs`: detect landmarks, fit, and report model landmarks in pixels.

Pixel conventions: the detector (:mod:`facecast.recon.landmarks.detector`) and every
coordinate this module returns use OpenCV's integer-centre convention (pixel
(0, 0) centred at (0, 0)); the renderer and :mod:`facecast.recon.model.coeffs` put
pixel centres at +0.5. :data:`~facecast.recon.model.coeffs.PIXEL_OFFSET` converts between the two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from facecast.recon.fit.landmark_fit import FitConfig, LandmarkTarget, fit_landmarks
from facecast.recon.fit.levenberg_marquardt import SolverConfig, refine_landmarks
from facecast.recon.fit.photometric import PhotometricConfig, PhotometricFitter
from facecast.recon.fit.texture import TextureConfig, bake_texture
from facecast.recon.landmarks.correspondence import SURFACE_SKIN, LandmarkMapping, mediapipe478_mapping
from facecast.recon.landmarks.detector import DetectedFace, LandmarkDetector, select_faces
from facecast.recon.landmarks.ibug import shipped_landmarks
from facecast.recon.landmarks.mediapipe_mesh import MediaPipeDetector
from facecast.recon.landmarks.sparse import SparseLandmarks
from facecast.recon.model.coeffs import PIXEL_OFFSET, FaceCoeffs, project_points
from facecast.recon.model.morphable import MorphableModel

#: how a face is fitted: ``fast`` = the trained regressor alone (one forward pass),
#: ``refine`` = the regressor, then ``refine.iterations`` Levenberg-Marquardt iterations
#: of the landmark objective (:mod:`facecast.recon.fit.levenberg_marquardt`),
#: ``accurate`` = the full landmark fit (PnP, rigid, then ``FitConfig.steps`` Adam steps)
MODES = ("fast", "refine", "accurate")


@dataclass
class PhotoConfig:
    """What :class:`PhotoReconstructor` does: mode, fit schedule, iris weight, which face.

    photometric: the accurate mode's pass through the renderer after the landmark fit.
    regressor: weights of the fast / refine modes (``None``: the shipped
    :func:`facecast.recon.learn.regressor.shipped_regressor_path`).
    refine / refine_fit: the refine mode's solver and objective. Solved to convergence,
    the objective wants weaker priors than the Adam fit's early-stopped answer (chosen on
    the even LFPW images, see benchmarks/README.md).
    """

    mode: str = "accurate"
    regressor: str | Path | None = None
    refine: SolverConfig = field(default_factory=SolverConfig)
    refine_fit: FitConfig = field(default_factory=lambda: FitConfig(identity_prior=1e-5, huber_delta=0.005))
    fit: FitConfig = field(default_factory=FitConfig)
    photometric: PhotometricConfig = field(default_factory=PhotometricConfig)  # accurate mode's second pass
    iris_weight: float = 0.3
    face_index: int = 0  # 0 = largest face
    calibrated_mapping: bool = True  # False: the registered MediaPipe table
    view_offsets: bool = False  # calibrated table's view-dependent offsets (see mediapipe478_mapping)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.refine.iterations < 1:
            raise ValueError(f"refine.iterations must be >= 1, got {self.refine.iterations}")


@dataclass
class PhotoResult:
    """One reconstructed face.

    coeffs: batch of one. image_size: (H, W). detected: the detector's face.
    landmarks68 ``(68, 2)`` and landmarks478 ``(478, 2)``: the fitted model's
    landmarks projected into the input image (detector pixel convention).
    """

    coeffs: FaceCoeffs
    image_size: tuple[int, int]
    detected: DetectedFace
    landmarks68: np.ndarray
    landmarks478: np.ndarray


def target_from_faces(faces: list[DetectedFace], sizes: list[tuple[int, int]], mapping: LandmarkMapping,
                      iris_weight: float, dtype: torch.dtype) -> LandmarkTarget:
    """Detector faces (MediaPipe 478) -> :class:`LandmarkTarget` in renderer pixels."""
    points = torch.tensor(np.stack([f.points for f in faces]) + PIXEL_OFFSET, dtype=dtype)
    skin = torch.as_tensor(mapping.surface == SURFACE_SKIN)
    weight = torch.where(skin, 1.0, iris_weight).to(dtype).expand(len(faces), -1).clone()
    return LandmarkTarget(points, weight, torch.tensor(sizes))


def model_landmarks(sparse: SparseLandmarks, coeffs: FaceCoeffs) -> tuple[np.ndarray, np.ndarray]:
    """Projected model landmarks, detector convention: ``(B, 68, 2)`` iBUG and ``(B, 478, 2)`` MediaPipe.

    The 68 points are the shipped :mod:`facecast.recon.landmarks.ibug` table (points on the mesh
    chosen against 2D annotations; the jaw partly follows the silhouette).
    """
    with torch.no_grad():
        points = sparse.evaluate(coeffs.identity, coeffs.expression, coeffs.rotation, coeffs.translation)
        pixels = project_points(points, coeffs.focal, coeffs.principal).cpu().numpy() - PIXEL_OFFSET
    ibug68 = shipped_landmarks(sparse.model)(coeffs).astype(pixels.dtype)
    return ibug68, pixels


class PhotoReconstructor:
    """Reconstruct faces from photos with a detector and the landmark fit."""

    def __init__(self, model: MorphableModel, detector: LandmarkDetector | None = None,
                 config: PhotoConfig = PhotoConfig()) -> None:
        self.model, self.config = model, config
        self.detector = detector if detector is not None else MediaPipeDetector()
        self.mapping = mediapipe478_mapping(config.calibrated_mapping, config.view_offsets)
        self.sparse = SparseLandmarks.build(model, self.mapping)
        self._photometric: PhotometricFitter | None = None  # built on the first accurate reconstruction
        self.regressor = None
        if config.mode != "accurate":
            from facecast.recon.learn.regressor import load_regressor, shipped_regressor_path

            self.regressor = load_regressor(config.regressor or shipped_regressor_path())

    def close(self) -> None:
        """Free the detector's graphs (a reconstructor that is dropped without this keeps them)."""
        close = getattr(self.detector, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> PhotoReconstructor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def detect(self, image: np.ndarray, name: str = "image") -> DetectedFace:
        """The configured face of ``image`` (RGB uint8 ``(H, W, 3)``); :class:`NoFaceError` if none."""
        return self.detect_faces(image, name, self.config.face_index)[0]

    def detect_faces(self, image: np.ndarray, name: str = "image", face_index: int | None = 0) -> list[DetectedFace]:
        """Face ``face_index`` of ``image`` (0 = the largest) as a list of one, or all faces, largest
        first (``None``); :class:`NoFaceError` if none."""
        # every face of a group photo (face_index None) needs the tiled pass for the small ones too
        return select_faces(self.detector.detect(image, tiles=True if face_index is None else None), face_index,
                            source=name)

    def fit(self, faces: list[DetectedFace], sizes: list[tuple[int, int]],
            images: list[np.ndarray] | None = None) -> list[PhotoResult]:
        """Fit B detected faces (one per image) jointly in one batch, as ``config.mode`` says.

        images: the RGB uint8 images, needed only by a regressor with an image branch.
        """
        dtype = self.model.neutral.dtype
        target = target_from_faces(faces, sizes, self.mapping, self.config.iris_weight, dtype)
        if self.regressor is None:
            coeffs = fit_landmarks(self.sparse, target, self.config.fit)
        else:
            coeffs = self.regressor.predict(faces, images, sizes).to(dtype)
            if self.config.mode == "refine":
                coeffs = refine_landmarks(self.sparse, target, coeffs, self.config.refine_fit, self.config.refine)
        l68, l478 = model_landmarks(self.sparse, coeffs)
        return [PhotoResult(coeffs.select(b), sizes[b], faces[b], l68[b], l478[b]) for b in range(len(faces))]

    def reconstruct(self, image: np.ndarray, name: str = "image") -> PhotoResult:
        """Detect and reconstruct the configured face of ``image`` (RGB uint8 ``(H, W, 3)``)."""
        return self.reconstruct_faces(image, name, self.config.face_index)[0]

    def reconstruct_faces(self, image: np.ndarray, name: str = "image",
                          face_index: int | None = 0) -> list[PhotoResult]:
        """Face ``face_index`` of ``image`` (0 = the largest) or all faces (``None``, largest first),
        fitted together in one batch as ``config.mode`` says; ``accurate`` adds the photometric pass
        through the renderer. :class:`NoFaceError` if there is no face."""
        faces = self.detect_faces(image, name, face_index)
        sizes = [image.shape[:2]] * len(faces)
        results = self.fit(faces, sizes, [image] * len(faces))
        if self.config.mode != "accurate":  # fast / refine: no pass through the renderer
            return results
        if self._photometric is None:
            self._photometric = PhotometricFitter(self.model, self.sparse, self.config.photometric)
        target = target_from_faces(faces, sizes, self.mapping, self.config.iris_weight, self.model.neutral.dtype)
        coeffs = FaceCoeffs.cat([r.coeffs for r in results])
        coeffs = self._photometric.refine(coeffs, [image] * len(faces), target, self.config.fit)
        l68, l478 = model_landmarks(self.sparse, coeffs)
        return [PhotoResult(coeffs.select(b), sizes[b], faces[b], l68[b], l478[b]) for b in range(len(faces))]


def photo_texture(model: MorphableModel, image: np.ndarray, texture: TextureConfig = TextureConfig(),
                  config: PhotoConfig = PhotoConfig(), name: str = "image") -> np.ndarray:
    """``(S, S, 3)`` uint8 UV face texture baked from the configured face of ``image`` (RGB uint8 ``(H, W, 3)``)."""
    with PhotoReconstructor(model, config=config) as photo:
        result = photo.reconstruct(image, name)
    return bake_texture(model, result.coeffs, image, texture)


def astronaut_texture(model: MorphableModel, size: int = 512) -> np.ndarray:
    """``(S, S, 3)`` uint8 face texture baked from ``skimage.data.astronaut()`` (public domain)."""
    from skimage import data

    return photo_texture(model, data.astronaut(), TextureConfig(size=size), name="astronaut")
