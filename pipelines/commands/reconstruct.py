"""Photo -> textured avatar: detect, fit (landmarks, then photometric), bake, export.

Outputs of ``reconstruct(photo, output="head.glb")``, all written together
(temporary files renamed into place, so a failure leaves none of them):

- ``head.glb``: the fitted head with the photo texture on the face and all 53 ARKit
  morph targets (expressions at 0: the neutral face of this person), in metres;
- ``head.obj`` (+ ``.mtl`` + texture PNG) / ``head.ply`` on request, in metres (``ReconstructConfig.mesh``);
- ``head.json``: coefficients, camera, head pose, ARKit weights of the photo's
  expression, and landmarks in input-image pixels (:func:`describe`);
- ``head_preview.png``: the fitted mesh drawn over the photo.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from facecast.pipelines.export import EXPORTERS, ExportError, check_output, write_files
from facecast.pipelines.export.avatar import AvatarMesh, MaterialTexture, build_avatar
from facecast.pipelines.export.coefficients import yaw_pitch_roll
from facecast.pipelines.export.layout import MeshOptions
from facecast.pipelines.media import check_input_file, read_image
from facecast.recon.fit.texture import TextureBaker, TextureConfig
from facecast.recon.landmarks.hands import HandDetector
from facecast.recon.landmarks.person import PersonSegmenter
from facecast.recon.model.albedo import REGIONS
from facecast.recon.model.arkit import ARKIT_52, to_arkit
from facecast.recon.model.coeffs import PIXEL_OFFSET
from facecast.recon.model.eyes import iris_colour
from facecast.recon.model.morphable import MorphableModel
from facecast.recon.model.topology import DEFAULT_AVATAR_REGIONS
from facecast.recon.photo import PhotoConfig, PhotoReconstructor, PhotoResult

LANDMARK_CONVENTION = ("pixels, x right, y down, OpenCV integer-centre convention: "
                       "the centre of the top-left pixel is (0, 0)")


#: the largest texture bake of the fast and refine modes (upsampled to the texture size)
FAST_BAKE_LIMIT = 512


@dataclass
class ReconstructConfig:
    """What ``facecast reconstruct`` does."""

    photo: PhotoConfig = field(default_factory=PhotoConfig)  # mode, fit, photometric pass
    texture: TextureConfig = field(default_factory=TextureConfig)
    regions: tuple[str, ...] = DEFAULT_AVATAR_REGIONS
    bake_texture: bool = True
    hide_hands: bool = True  # hands found in the photo (MediaPipe Hands) are left out of the texture
    hide_background: bool = True  # so is the background (MediaPipe selfie segmentation) where the fit overhangs
    mesh: MeshOptions = field(default_factory=MeshOptions)  # units and quads of OBJ / PLY outputs



@dataclass
class Reconstruction:
    """A fitted photo and what is exported from it."""

    source: str
    result: PhotoResult
    mesh: AvatarMesh
    texture: np.ndarray | None  # (S, S, 3) uint8


def _png(image: np.ndarray) -> bytes:
    """PNG bytes of an RGB uint8 image; zlib level 1 (a 1024-pixel texture in ~0.05 s instead of ~0.3 s
    at PIL's default 6, for files ~15 % larger)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


class PhotoPipeline:
    """Holds the model, detector and fitters so that many photos share one load."""

    def __init__(self, model: MorphableModel, config: ReconstructConfig = ReconstructConfig()):
        self.model, self.config = model, config
        self.photo = PhotoReconstructor(model, config=config.photo)
        texture = config.texture
        if config.photo.mode != "accurate":  # the quick modes bake at most 512 texels (0.45 s, not 1.5)
            texture = replace(texture, bake_limit=min(texture.bake_limit, FAST_BAKE_LIMIT))
        self.baker = TextureBaker(model, texture)
        self.hands = HandDetector()
        self.segmenter = PersonSegmenter()

    def close(self) -> None:
        """Free the detectors' graphs."""
        self.photo.close()
        self.hands.close()
        self.segmenter.close()

    def __enter__(self) -> PhotoPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, image: np.ndarray, source: str = "image") -> Reconstruction:
        """Reconstruct the configured face of ``image`` (RGB uint8 ``(H, W, 3)``)."""
        return self.run_faces(image, source, self.config.photo.face_index)[0]

    def run_faces(self, image: np.ndarray, source: str = "image", face_index: int | None = 0) -> list[Reconstruction]:
        """Reconstruct face ``face_index`` of ``image`` (0 = the largest), or all of them (``None``,
        largest first), fitted together in one batch."""
        results = self.photo.reconstruct_faces(image, source, face_index)
        hidden = self.hidden(image) if results else None
        return [self._export(result, image, source, hidden) for result in results]

    def hidden(self, image: np.ndarray) -> np.ndarray | None:
        """``(H, W)`` bool: the pixels of ``image`` the texture leaves out (hands, background), or ``None``."""
        config = self.config
        if not config.bake_texture or not (config.hide_hands or config.hide_background):
            return None
        hidden = np.zeros(image.shape[:2], bool)
        if config.hide_hands:
            hidden |= self.hands.mask(image)
        if config.hide_background:
            hidden |= self.segmenter.background(image)
        return hidden

    def _export(self, result: PhotoResult, image: np.ndarray, source: str,
                hidden: np.ndarray | None = None) -> Reconstruction:
        coeffs = result.coeffs
        baked = self.baker.bake_layers(coeffs, image, hidden) if self.config.bake_texture else None
        texture = None if baked is None else baked.texture
        mesh = build_avatar(self.model, coeffs.identity[0].numpy(), self.config.regions)
        if baked is not None and "M_Face" in mesh.material_names:
            mesh = _with_texture(mesh, MaterialTexture("M_Face", _png(texture)))
            mesh = mesh.with_colours({"M_BackHead": tuple(baked.skin_tone)})  # scalp, ears, neck: this skin
        iris = iris_colour(image, result.detected.points) if result.detected.scheme == "mediapipe478" else None
        if iris is not None:
            mesh = mesh.with_colours({"M_IrisLeft": iris, "M_IrisRight": iris})
        return Reconstruction(source, result, mesh, texture)


def _with_texture(mesh: AvatarMesh, texture: MaterialTexture) -> AvatarMesh:
    return replace(mesh, textures=(*mesh.textures, texture))


def describe(rec: Reconstruction, expression_names: list[str]) -> dict:
    """The JSON record of a reconstruction (see the module docstring)."""
    c = rec.result.coeffs
    expression = c.expression[0]
    arkit = to_arkit(expression[None].double(), expression_names)[0]
    rotation = c.rotation[0].double().numpy()
    return {
        "source": rec.source,
        "image_size": list(rec.result.image_size),
        "units": {"translation": "cm", "rotation": "axis-angle radians", "landmarks": LANDMARK_CONVENTION},
        "camera": {"model": "pinhole at the origin looking down -z, y up (see facecast.recon.model.coeffs)",
                   "focal_px": float(c.focal[0]),
                   "principal_px": (c.principal[0].double().numpy() - PIXEL_OFFSET).tolist()},
        "head_pose": {"rotation": rotation.tolist(),
                      "yaw_pitch_roll_deg": np.degrees(yaw_pitch_roll(rotation[None])[0]).tolist(),
                      "translation_cm": c.translation[0].tolist()},
        "expression": dict(zip(expression_names, expression.tolist())),
        "arkit": dict(zip(ARKIT_52, arkit.tolist())),
        "identity": c.identity[0].tolist(),
        "lighting_sh": c.lighting[0].tolist(),
        "albedo": dict(zip(REGIONS, c.albedo[0].tolist())),
        "landmarks": {"ibug68": rec.result.landmarks68.tolist(),
                      "mediapipe478": rec.result.landmarks478.tolist(),
                      "detected_mediapipe478": rec.result.detected.points.tolist()},
        "coeffs": c.to_json()[0],
    }


def output_files(rec: Reconstruction, output: Path, extra_formats: tuple[str, ...],
                 expression_names: list[str], preview: bytes | None,
                 mesh_options: MeshOptions = MeshOptions()) -> dict[str, bytes]:
    """``{file name: bytes}`` of everything ``reconstruct`` writes beside ``output``."""
    stem = output.stem
    files: dict[str, bytes] = {}
    for suffix in (output.suffix.lower(), *extra_formats):
        files.update(EXPORTERS[suffix](rec.mesh, stem, mesh_options))
    files[f"{stem}.json"] = json.dumps(describe(rec, expression_names), indent=1).encode()
    if preview is not None:
        files[f"{stem}_preview.png"] = preview
    return files


#: Name of the built-in example photo (scikit-image's public-domain astronaut, NASA).
DEFAULT_PHOTO = "astronaut (scikit-image sample, public domain)"


def load_photo(photo: str | Path | None) -> tuple[np.ndarray, str]:
    """RGB image and its name; ``None`` gives the built-in astronaut photo."""
    if photo is None:
        from skimage import data

        return np.ascontiguousarray(data.astronaut()), DEFAULT_PHOTO
    return read_image(photo), str(photo)


def reconstruct(photo: str | Path | None, output: str | Path, extra_formats: tuple[str, ...] = (),
                config: ReconstructConfig = ReconstructConfig(), model: MorphableModel | None = None,
                assets: str | Path | None = None, preview: bool = True, all_faces: bool = False,
                pipeline: PhotoPipeline | None = None) -> list[Path]:
    """Reconstruct the face of ``photo`` (``None``: the built-in astronaut) and write ``output``
    (.glb/.obj/.ply) and its companions.

    extra_formats: more mesh formats (``(".obj", ".ply")``) written beside ``output``.
    all_faces: every face found, largest first, as ``NAME_0.glb``, ``NAME_1.glb``, ... (each with
    its JSON and preview) instead of ``config.photo.face_index`` alone.
    pipeline: a :class:`PhotoPipeline` to reuse for many photos (its model and config are used; the
    caller closes it); without one, a pipeline is built for this photo and closed after it.
    Returns the paths written. Raises user errors (``MediaError``, ``NoFaceError``,
    ``ExportError``, ``AssetError``) before anything is written.
    """
    output = check_output(output)
    for suffix in extra_formats:
        check_output(output.with_suffix(suffix))
    if photo is not None:
        check_input_file(photo)
    _keep_input(photo, output.parent, dict.fromkeys(_companions(output.stem, extra_formats, output.suffix)))
    image, source = load_photo(photo)
    own = pipeline is None
    if own:
        pipeline = PhotoPipeline(model or MorphableModel.load(assets), config)
    model = pipeline.model
    try:
        if not all_faces:
            named = [(output, pipeline.run(image, source))]
        else:
            recs = pipeline.run_faces(image, source, None)
            named = [(output.with_name(f"{output.stem}_{k}{output.suffix}"), rec) for k, rec in enumerate(recs)]
    finally:
        if own:
            pipeline.close()
    files: dict[str, bytes] = {}
    triangles = model.triangles(("head", "eyeballs")) if preview else None
    for path, rec in named:
        picture = None
        if preview:
            from facecast.pipelines.overlay import draw_fit

            picture = _png(draw_fit(model, triangles, rec.result.coeffs, image, rec.result.landmarks68))
        files.update(output_files(rec, path, extra_formats, model.expression_names, picture, pipeline.config.mesh))
    _keep_input(photo, output.parent, files)
    return write_files(output.parent, files)


def _companions(stem: str, extra_formats: tuple[str, ...], suffix: str) -> list[str]:
    """The names one reconstruction called ``stem`` may write (before the work: checked against the input)."""
    return [f"{stem}{suffix}", f"{stem}.json", f"{stem}_preview.png", f"{stem}_M_Face.png", f"{stem}.mtl",
            *(f"{stem}{extra}" for extra in extra_formats)]


def _keep_input(photo: str | Path | None, folder: Path, files: dict[str, bytes]) -> None:
    """:class:`ExportError` when one of the outputs would overwrite the photo (``head_preview.png`` as input
    and ``-o head.glb`` writes its preview there)."""
    if photo is None:
        return
    source = Path(photo).resolve()
    for name in files:
        if (folder / name).resolve() == source:
            raise ExportError(f"{folder / name} would overwrite the input photo {photo}; choose another -o name")
