"""Bake a UV albedo texture of the face from the photo it was fitted to.

For every texel of the face's UV tile (ICT material ``M_Face``, u in [0, 1]) the surface point is
found by rasterizing the mesh in UV space and projected into the photo. Then:

1. **seen weight**: visible (depth test against a render of the head with its eyeballs, away from its occlusion
   edges, where pixels mix in what lies behind) times a facing ramp, so grazing texels fade out,
   and fading out below the jaw line (the neck, where clothes, hands and hair are in most photos);
2. **de-lighting in linear colour, bounded**: the photo's linear colour divided by the fitted SH
   shading (converted to linear), with the shading's brightness held within 0.4-3x of the face's
   typical shading (shadows, where fits go wrong, are bounded hardest) and its chroma within +-5 %
   of the typical shading's, so shadows and coloured light cannot blow the result up into neon;
   texels in shadow deeper than the bound are not trusted (their seen weight falls to 0);
3. **this person's skin colour**: a chroma Gaussian (CIELAB) of the de-lit, well-seen skin texels
   between chin and brows (:class:`~facecast.recon.fit.skin_colour.SkinColourModel`); skin texels
   outside it, much lighter, or darker in thin features or very much darker (clothes, hands of
   another tone, hair strands, glasses frames, background by the jaw; :func:`occluded`) count as
   not seen, grown by a texel or two, but for dark, grey texels below the nose (a beard is kept)
   and the dark, redder lids and nostrils (:mod:`~facecast.recon.fit.face_zones`); when a dark band
   lies across the nose's bridge (:func:`~facecast.recon.fit.face_zones.wears_glasses`), milder
   outliers behind the lenses (tints, reflections) go too;
4. **mirror**: texels not seen take the colour of their mirror image (the UV tile is symmetric)
   where that was seen;
5. **fill**: texels seen on neither side take the fitted region colours (lips, brows) rescaled to
   this person's skin tone, shifted by a wide normalised blur of the photo-minus-fill difference so
   that they meet the photo texels without a step, and cross-faded into them over a few texels;
   near the border with the back of the head (``M_BackHead``) the texture fades to the skin tone,
   which :class:`BakedTexture` also returns for the scalp, ears and neck.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from facecast.recon.fit.face_zones import FaceZones, wears_glasses
from facecast.recon.fit.skin_colour import SkinColourModel, linear_to_srgb, srgb_to_lab, srgb_to_linear
from facecast.recon.model.albedo import AlbedoModel
from facecast.recon.model.coeffs import FaceCoeffs, coeffs_camera
from facecast.recon.model.morphable import MorphableModel
from facecast.recon.model.topology import REGION_STARTS, triangulate
from facecast.render.interpolate import foreground, vertex_attributes_at
from facecast.render.rasterize import rasterize
from facecast.render.renderer import Renderer, RendererConfig
from facecast.render.shading import irradiance, vertex_normals


@dataclass
class TextureConfig:
    """Texture size (pixels, square), the largest size it is baked at (finer is upsampled), facing
    threshold and depth tolerance (cm)."""

    size: int = 1024
    bake_limit: int = 1024
    min_facing: float = 0.15
    full_facing: float = 0.45
    depth_tolerance: float = 0.6
    shade_range: tuple[float, float] = (0.4, 3.0)  # shading brightness bounds, x the face's median
    shade_chroma: float = 0.05  # shading chroma bound, +- this fraction of the face's median
    outlier_sigmas: float = 3.5  # skin texels beyond this chroma distance count as occluded


@dataclass
class BakedTexture:
    """A baked face texture and what it was made of.

    texture ``(S, S, 3)`` uint8 sRGB (row 0 = v 1); seen ``(S, S)`` float in [0, 1]: how much of each
    texel comes from the photo; skin_tone ``(3,)`` sRGB in [0, 1] (for the back of the head);
    skin: the person's :class:`SkinColourModel` (``None`` when too little skin was seen).
    """

    texture: np.ndarray
    seen: np.ndarray
    skin_tone: np.ndarray
    skin: SkinColourModel | None


#: the visibility test renders the head at most this many pixels on its longest side
VISIBILITY_SIDE = 1024


def _uv_layout(model: MorphableModel, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """UV-space screen vertices ``(1, T, 3)``, UV triangles and matching mesh triangles ``(F, 3)``."""
    data = model.data
    face_polys = data.material_face_mask(["M_Face"])
    uv_tris = torch.as_tensor(triangulate(data.face_uvs[face_polys]))
    mesh_tris = torch.as_tensor(triangulate(data.face_vertices[face_polys]))
    uv = torch.as_tensor(data.uvs, dtype=torch.float64)
    screen = torch.stack([uv[:, 0] * size, (1.0 - uv[:, 1]) * size, torch.ones_like(uv[:, 0])], -1)
    return screen[None], uv_tris, mesh_tris


def texel_layout(model: MorphableModel, size: int):
    """The texels of the ``M_Face`` UV tile at ``size`` pixels: a :class:`~facecast.render.interpolate.Foreground`
    (``pixel`` = row-major texel index) and the mesh triangles ``(F, 3)`` its faces index."""
    screen, uv_tris, mesh_tris = _uv_layout(model, size)
    return foreground(rasterize(screen.to(torch.float32), uv_tris, (size, size), perspective=False)), mesh_tris


@functools.cache
def _linear_of_byte() -> np.ndarray:
    """``(256,)`` float32: linear value of each sRGB byte."""
    return srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)


def _sample_linear(image: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Linear RGB ``(N, 3)`` float32 of the photo at renderer-convention pixels ``(N, 2)`` (bilinear on
    the bytes, then a 256-entry table)."""
    import cv2

    n, width = len(pixels), 1024  # remap maps must be < 32767 rows: lay the points out in rows
    xy = np.zeros((-(-n // width) * width, 2), np.float32)
    xy[:n] = pixels - 0.5
    xy = xy.reshape(-1, width, 2)
    out = cv2.remap(image, xy[..., 0].copy(), xy[..., 1].copy(), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return _linear_of_byte()[out.reshape(-1, 3)[:n]]


class TextureBaker:
    """Bakes face textures for one model; the UV layout (rasterized once per texture size), the
    triangles and the albedo model are built on the first bake and reused for every photo after it."""

    def __init__(self, model: MorphableModel, config: TextureConfig = TextureConfig()) -> None:
        self.model, self.config = model, config
        self._shared: tuple | None = None
        self._layouts: dict[int, tuple] = {}

    def _prepared(self, size: int) -> tuple:
        if self._shared is None:
            albedo = AlbedoModel.from_data(self.model.data, torch.float32)
            data = self.model.data
            zones = FaceZones.of(data)
            extra = torch.as_tensor(np.c_[albedo.weights[:, :1].numpy(), zones.stacked(), data.neutral[:, 1]],
                                    dtype=torch.float32)
            # the visibility render has the eyeballs in their sockets: no false depth edge along the lids
            self._shared = self.model.triangles(("head",)), self.model.triangles(("head", "eyeballs")), albedo, extra
        if size not in self._layouts:
            self._layouts[size] = texel_layout(self.model, size)
        return (*self._layouts[size], *self._shared)

    def bake_size(self, face_pixels: torch.Tensor) -> int:
        """Texels the photo can fill: the smallest power of two >= the face's size in photo pixels
        (``face_pixels`` ``(N, 2)``: the projected face vertices), between 256 and ``config.size``
        and ``config.bake_limit`` (finer texels would only repeat pixels; they are upsampled). The
        face takes about 60 % of the tile's width, so a 500-pixel face gets ~300 texels across; the
        bake's time grows with the texels (~0.45 s at 512, ~1.5 s at 1024 on 2 cores)."""
        extent = _extent(face_pixels)
        size = 256
        limit = min(self.config.size, self.config.bake_limit)
        while size < extent and size < limit:
            size *= 2
        return min(size, limit)

    def bake(self, coeffs: FaceCoeffs, image: np.ndarray, hidden: np.ndarray | None = None) -> np.ndarray:
        """``(S, S, 3)`` uint8 sRGB albedo texture of the ``M_Face`` UV tile (row 0 = v 1).

        coeffs: one face (batch of one) fitted to ``image`` (RGB uint8 ``(H, W, 3)``),
        with lighting and albedo from :mod:`facecast.recon.fit.photometric`; hidden: see
        :meth:`bake_layers`.
        """
        return self.bake_layers(coeffs, image, hidden).texture

    def bake_layers(self, coeffs: FaceCoeffs, image: np.ndarray, hidden: np.ndarray | None = None) -> BakedTexture:
        """Like :meth:`bake`, with the seen weights and the skin tone (see the module docstring);
        ``hidden`` ``(H, W)`` bool: pixels of ``image`` not to take from the photo (hands in front of
        the face, :class:`~facecast.recon.landmarks.hands.HandDetector`; the background,
        :class:`~facecast.recon.landmarks.person.PersonSegmenter`)."""
        if hidden is not None and hidden.shape != image.shape[:2]:
            raise ValueError(f"hidden must be {image.shape[:2]} like the image, got {hidden.shape}")
        if coeffs.batch_size != 1:
            raise ValueError(f"bake_texture takes one face, got a batch of {coeffs.batch_size}")
        config, model = self.config, self.model
        c = coeffs.to(model.neutral.dtype)
        height, width = image.shape[:2]
        focal, principal = c.focal.to(torch.float32), c.principal.to(torch.float32)
        camera = coeffs_camera(focal, principal, (height, width))
        with torch.no_grad():
            vertices = model(c.identity, c.expression, c.rotation, c.translation).vertices.to(torch.float32)
            face_pixels = camera.project(vertices[:, :REGION_STARTS["head_neck"]])[0]
            size, extent = self.bake_size(face_pixels), _extent(face_pixels)
            fg, mesh_tris, head, occluders, albedo_model, extra = self._prepared(size)
            normals = vertex_normals(vertices, head)
            attrs = torch.cat([vertices, normals, albedo_model.vertex_albedo(c.albedo.to(torch.float32)),
                               extra[None]], -1)
            texel = vertex_attributes_at(attrs, mesh_tris, fg)
            position, fallback, skin, border = texel[:, :3], texel[:, 6:9], texel[:, 9], texel[:, 10]
            core, above_jaw, beard = texel[:, 11] > 0.99, texel[:, 12], texel[:, 13] > 0.5
            feature, bridge, spectacles = texel[:, 14] > 0.5, texel[:, 15] > 0.5, texel[:, 16] > 0.5
            neutral_y = texel[:, 17]
            normal = torch.nn.functional.normalize(texel[:, 3:6], dim=-1)
            pixels = camera.project(position[None])[0]
            # visibility: depth test against a render of the head, at most VISIBILITY_SIDE pixels wide
            scale = min(1.0, VISIBILITY_SIDE / max(height, width))
            shape = (max(1, round(height * scale)), max(1, round(width * scale)))
            small = coeffs_camera(focal * scale, principal * scale, shape)
            rendered = Renderer(RendererConfig(backend="torch", cull_backfaces=True))(
                vertices, occluders, small, torch.zeros_like(vertices)).depth[0]
            facing = (-normal * torch.nn.functional.normalize(position, dim=-1)).sum(-1)
            col = (pixels[:, 0] * scale).long().clamp(0, shape[1] - 1)
            row = (pixels[:, 1] * scale).long().clamp(0, shape[0] - 1)
            inside = (pixels[:, 0] >= 0) & (pixels[:, 0] < width) & (pixels[:, 1] >= 0) & (pixels[:, 1] < height)
            visible = inside & ((rendered[row, col] + position[:, 2]).abs() < config.depth_tolerance)
            visible &= ~torch.as_tensor(_near_depth_edges(rendered.numpy(), 0.006 * extent * scale))[row, col]
            seen = ((facing - config.min_facing) / (config.full_facing - config.min_facing)).clamp(0, 1) * visible
            seen = seen * above_jaw  # the neck: clothes, hands, hair and shadow in most photos
            shade = irradiance(normal[None], c.lighting.to(torch.float32))[0]
        seen, skin, border, core = seen.numpy(), skin.numpy(), border.numpy(), core.numpy()
        if hidden is not None and hidden.any():
            at = np.round(pixels.numpy() - 0.5).astype(np.int64)
            seen = np.where(hidden[at[:, 1].clip(0, height - 1), at[:, 0].clip(0, width - 1)], 0.0, seen)
        photo = _sample_linear(image, pixels.numpy())
        albedo, trust = delight(photo, shade.numpy(), seen, skin, config)
        seen = seen * trust  # texels in shadows deeper than the bound are not taken from the photo
        trusted = (seen > 0.8) & (skin > 0.95) & core
        candidates = np.flatnonzero((skin > 0.9) & (seen > 0))  # skin, not the brows' and lips' fringes
        lab = srgb_to_lab(albedo[candidates])
        skin_model = SkinColourModel.fit(lab[trusted[candidates]]) if trusted.sum() >= 64 else None
        if skin_model is not None:  # skin texels of another colour are occluders, and their edges: not seen
            rejected = np.zeros(len(seen), bool)
            thin = _thin_darkness(lab[:, 0], fg.pixel.numpy()[candidates], size, max(3, size // 40))
            rejected[candidates[occluded(lab, lab[trusted[candidates]], skin_model, beard.numpy()[candidates],
                                         thin, config.outlier_sigmas, feature.numpy()[candidates])]] = True
            typical = np.median(lab[trusted[candidates], 0])
            darker = np.zeros(len(seen), bool)  # a frame's bridge is dark (highlights and skin tints are not)
            darker[candidates] = lab[:, 0] < typical - 20.0
            glasses = wears_glasses(darker, bridge.numpy(), seen > 0.8, neutral_y.numpy())
            if glasses:  # lenses tint and mirror what is behind them: behind glasses, milder outliers go too
                lens = spectacles.numpy()[candidates]
                milder = (skin_model.distance(lab) > 2.0) | (np.abs(lab[:, 0] - typical) > 12.0)
                rejected[candidates[lens & milder]] = True
            grown = _grown(rejected, fg.pixel.numpy(), size, max(1, size // 256)) & (skin > 0.9)
            seen = np.where(grown, 0.0, seen)
        fallback = fallback.numpy().astype(np.float64)
        fitted_skin = np.median(fallback[skin > 0.95], 0) if (skin > 0.95).any() else fallback.mean(0)
        tone = np.median(albedo[trusted], 0) if trusted.sum() >= 64 else fitted_skin
        fill = (fallback * (tone / fitted_skin.clip(1e-3))).clip(0.0, 1.0)  # region colours in this skin tone
        texture, weight = _compose(albedo, fill, seen, border, tone, fg.pixel.numpy(), size)
        if size < config.size:
            import cv2

            texture = cv2.resize(texture, (config.size, config.size), interpolation=cv2.INTER_CUBIC)
            weight = cv2.resize(weight, (config.size, config.size), interpolation=cv2.INTER_LINEAR)
        return BakedTexture((np.clip(texture, 0, 1) * 255 + 0.5).astype(np.uint8), weight, tone, skin_model)


def occluded(lab: np.ndarray, trusted: np.ndarray, skin: SkinColourModel, beard: np.ndarray, thin: np.ndarray,
             sigmas: float, feature: np.ndarray | None = None) -> np.ndarray:
    """``(N,)`` bool: which skin texels ``(N, 3)`` CIELAB show something other than this person's skin.

    Chroma beyond ``sigmas`` of ``skin``, or lighter than its range by > 15 L*, or darker than the
    ``trusted`` texels' ``(M, 3)`` median by more than 20 L* where the darkness is thin (``thin``
    ``(N,)``: L* below the texel's surroundings, :func:`_thin_darkness`: glasses frames, hair
    strands) or by more than 35 L* anywhere; broad, milder shadow (eye sockets, under the brows),
    which the SH light does not model, stays. Below the nose (``beard`` ``(N,)`` bool) dark,
    greyer-than-skin texels are facial hair, which belongs to the person; on the eyelids and around
    the nostrils (``feature`` ``(N,)`` bool, :func:`~facecast.recon.fit.face_zones.feature_weight`)
    darkness is the face's own and chroma may be twice as far.
    """
    feature = np.zeros(len(lab), bool) if feature is None else feature
    chroma_off = skin.distance(lab) > np.where(feature, 2.0 * sigmas, sigmas)  # nostril wings are redder
    bright = lab[:, 0] > skin.lightness[1] + 15.0
    below = np.median(trusted[:, 0]) - lab[:, 0]
    dark = (((below > 20.0) & (thin > 8.0)) | (below > 35.0)) & ~feature
    greyer = np.hypot(lab[:, 1], lab[:, 2]) < np.hypot(*skin.mean)
    hair = beard & (dark | chroma_off) & greyer
    return (chroma_off | bright | dark) & ~hair


def _extent(pixels: torch.Tensor) -> float:
    """The longer side of the bounding box of ``pixels`` ``(N, 2)``."""
    return float((pixels.amax(0) - pixels.amin(0)).max())


def _texel_image(values: np.ndarray, pixel: np.ndarray, size: int, empty: float = 0.0,
                 dtype: type = np.float32) -> np.ndarray:
    """``(S, S, ...)`` image of per-texel ``values`` ``(N, ...)`` at row-major ``pixel`` ``(N,)``,
    ``empty`` elsewhere."""
    out = np.full((size * size,) + values.shape[1:], empty, dtype)
    out[pixel] = values
    return out.reshape((size, size) + values.shape[1:])


def _thin_darkness(lightness: np.ndarray, pixel: np.ndarray, size: int, width: int) -> np.ndarray:
    """``(N,)`` how much darker (L*) each texel is than its surroundings, for dark features narrower than
    ``width`` texels (a morphological black-hat of the L* image; the texels ``pixel`` ``(N,)`` hold
    ``lightness`` ``(N,)``, the rest of the tile their median)."""
    import cv2

    image = _texel_image(lightness, pixel, size, float(np.median(lightness)))
    kernel = np.ones((width | 1, width | 1), np.uint8)  # a square: separable, fast at any width
    closed = cv2.morphologyEx(image, cv2.MORPH_CLOSE, kernel)
    return closed.reshape(-1)[pixel] - lightness


def _near_depth_edges(depth: np.ndarray, radius: float, step: float = 3.0) -> np.ndarray:
    """``(H, W)`` bool: pixels within ``radius`` of an occlusion edge of a depth render ``(H, W)``
    (0 = empty): a jump of more than ``step`` cm, or the outline. Photo pixels there mix the surface
    with what is behind it (the neck under the jaw, the background)."""
    import cv2

    far = np.where(depth > 0, depth, 1e4).astype(np.float32)
    r = max(1, round(radius))
    kernel = np.ones((2 * r + 1, 2 * r + 1), np.uint8)
    return (cv2.dilate(far, kernel) - cv2.erode(far, kernel)) > step


def _grown(mask: np.ndarray, pixel: np.ndarray, size: int, radius: int) -> np.ndarray:
    """``(N,)`` bool: the texels ``mask`` ``(N,)`` marks, grown by ``radius`` texels in the UV image."""
    import cv2

    image = _texel_image(mask.astype(np.uint8), pixel, size, dtype=np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(image, kernel).reshape(-1)[pixel] > 0


def delight(photo: np.ndarray, shade: np.ndarray, seen: np.ndarray, skin: np.ndarray,
             config: TextureConfig) -> tuple[np.ndarray, np.ndarray]:
    """Albedo ``(N, 3)`` sRGB of linear photo colours ``(N, 3)`` under SH shading ``(N, 3)`` (fitted in
    sRGB units): divided in linear colour by the shading, bounded as :class:`TextureConfig` says; and
    ``(N,)`` trust in [0, 1]: 1 where the shading is within its bounds, falling to 0 at half the lower one."""
    reference = (seen > 0.5) & (skin > 0.9)
    if reference.sum() < 16:
        reference = seen > 0
    if not reference.any():
        reference = np.ones(len(shade), bool)
    shade = shade.astype(np.float32)
    typical = np.median(shade[reference], 0).clip(1e-3)
    brightness = shade.mean(1, keepdims=True).clip(1e-3)
    chroma = (shade / brightness).clip(typical / typical.mean() * (1 - config.shade_chroma),
                                       typical / typical.mean() * (1 + config.shade_chroma))
    low, high = config.shade_range
    bounded = chroma * brightness.clip(low * typical.mean(), high * typical.mean())
    trust = np.clip(2.0 * brightness[:, 0] / (low * typical.mean()) - 1.0, 0.0, 1.0)
    return linear_to_srgb(photo / bounded ** np.float32(2.2)), trust


def _compose(albedo: np.ndarray, fill: np.ndarray, seen: np.ndarray, border: np.ndarray, tone: np.ndarray,
             pixel: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Texture ``(S, S, 3)`` and its seen weights ``(S, S)`` from per-texel photo albedo and fill."""
    import cv2

    def image_of(values: np.ndarray) -> np.ndarray:
        return _texel_image(values, pixel, size)

    covered = image_of(np.ones(len(pixel)))
    weight, photo, base = image_of(seen), image_of(albedo), image_of(fill)
    # the M_Face tile is mirror-symmetric (u <-> 1 - u): texels the photo missed take the other side's
    mirrored = (1.0 - weight) * weight[:, ::-1]
    total = weight + mirrored
    photo = (weight[..., None] * photo + mirrored[..., None] * photo[:, ::-1]) / np.maximum(total, 1e-6)[..., None]
    weight = total
    # the fill's colour follows the photo's over ~1/32 of the texture: blurred at 1/8 of the size
    low = max(8, size // 8)
    down = cv2.resize(np.dstack([weight, weight[..., None] * (photo - base)]), (low, low),
                      interpolation=cv2.INTER_AREA)
    down = cv2.GaussianBlur(down, (0, 0), max(1.0, low / 32))
    blur_w = cv2.resize(down[..., 0], (size, size), interpolation=cv2.INTER_LINEAR)
    offset = cv2.resize(down[..., 1:] / np.maximum(down[..., :1], 1e-4), (size, size), interpolation=cv2.INTER_LINEAR)
    reach = np.clip(blur_w / 0.15, 0.0, 1.0)[..., None]
    base = base + offset * reach
    photo = np.where(weight[..., None] > 0, photo, base)  # nothing of the photo there: the blur reaches in
    soft = cv2.GaussianBlur(weight, (0, 0), max(1.0, size / 256)) * covered  # cross-fade over a few texels
    colour = soft[..., None] * photo + (1 - soft[..., None]) * base
    edge = image_of(border)[..., None]
    colour = edge * tone + (1 - edge) * colour
    return _fill_gutter(colour, covered, tone), soft


def bake_texture(model: MorphableModel, coeffs: FaceCoeffs, image: np.ndarray,
                 config: TextureConfig = TextureConfig()) -> np.ndarray:
    """``(S, S, 3)`` uint8 face texture of one face fitted to ``image`` (see :meth:`TextureBaker.bake`);
    keep a :class:`TextureBaker` to bake many photos of one model."""
    return TextureBaker(model, config).bake(coeffs, image)


def _fill_gutter(image: np.ndarray, covered: np.ndarray, background: np.ndarray, gutter: int = 8) -> np.ndarray:
    """Grow the covered texels of ``image`` ``(S, S, 3)`` ``gutter`` pixels into the empty seams (the
    mean of the covered texels within that distance, so mip-mapping does not bleed background into
    the face) and fill the rest with ``background``."""
    import cv2

    image = image * covered[..., None]
    window = (2 * gutter + 1, 2 * gutter + 1)
    total = cv2.boxFilter(image.astype(np.float32), -1, window, normalize=False, borderType=cv2.BORDER_CONSTANT)
    count = cv2.boxFilter(covered.astype(np.float32), -1, window, normalize=False, borderType=cv2.BORDER_CONSTANT)
    empty = covered == 0
    grown = empty & (count > 0.5)
    image[grown] = total[grown] / count[grown, None]
    image[empty & ~grown] = background
    return image
