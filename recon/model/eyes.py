"""The ICT eyes made readable in any viewer: an opening in the sclera over the iris, and a pupil.

ICT's eyeball is two closed spheres: the sclera, whose front bulge is the cornea (the original
asset renders it transparent), and the iris sphere 0.6-1.9 mm inside it. Exported opaque, the
cornea hides the iris and the eye is blank white. :func:`eye_layout` finds, on the template mesh
and so once for every identity, per eye:

- the eye's centre (least-squares sphere through the sclera) and forward axis (towards the most
  protruding sclera vertices, the cornea's apex);
- the limbus angle: how far from the axis the iris's front surface reaches (the iris vertices that
  lie outside the sclera's base sphere);
- the **cornea** polygons: sclera polygons whose centre lies within the limbus angle (dropped from
  exported avatars, so nothing opaque sits in front of the iris);
- the **pupil** polygons: iris polygons within ``PUPIL_FRACTION`` of the limbus angle, and the iris
  ball's inside beyond the limbus, which shows only through ICT's small pupil hole (exported with a
  material of their own, near black).

Gaze morphs rotate the iris and sclera vertices together, so the opening and the pupil follow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facecast.recon.model.topology import ICTData

#: pupil radius / iris radius, as angles from the eye's axis (a daylight pupil is ~0.35-0.45).
PUPIL_FRACTION = 0.4
#: (sclera material, iris material) of the subject's left and right eye.
EYE_MATERIALS = (("M_ScleraLeft", "M_IrisLeft"), ("M_ScleraRight", "M_IrisRight"))
#: material given to the pupil polygons of both eyes.
PUPIL_MATERIAL = "M_Pupil"


@dataclass(frozen=True)
class EyeLayout:
    """Per-eye geometry of the template and the polygon masks it gives.

    centres ``(2, 3)`` cm and axes ``(2, 3)`` unit vectors (left eye first); limbus_deg ``(2,)``.
    cornea ``(F,)`` / pupil ``(F,)`` bool over the mesh's polygons.
    """

    centres: np.ndarray
    axes: np.ndarray
    limbus_deg: np.ndarray
    cornea: np.ndarray
    pupil: np.ndarray


def fit_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares sphere through ``(N, 3)`` points: ``(centre (3,), radius)``."""
    a = np.c_[2 * points, np.ones(len(points))]
    solution = np.linalg.lstsq(a, (points ** 2).sum(1), rcond=None)[0]
    centre = solution[:3]
    return centre, float(np.sqrt(solution[3] + centre @ centre))


def _polygon_centres(data: ICTData, vertices: np.ndarray, mask: np.ndarray) -> np.ndarray:
    polygons = data.face_vertices[mask]
    valid = polygons >= 0
    corners = vertices[np.where(valid, polygons, 0)] * valid[..., None]
    return corners.sum(1) / valid.sum(1, keepdims=True)


def _angles(points: np.ndarray, centre: np.ndarray, axis: np.ndarray) -> np.ndarray:
    offsets = points - centre
    cosine = offsets @ axis / np.linalg.norm(offsets, axis=1).clip(1e-12)
    return np.degrees(np.arccos(cosine.clip(-1.0, 1.0)))


def eye_layout(data: ICTData, vertices: np.ndarray | None = None) -> EyeLayout:
    """The eyes of ``vertices`` ``(V, 3)`` (default: the template's neutral), see the module docstring."""
    vertices = data.neutral.astype(np.float64) if vertices is None else np.asarray(vertices, np.float64)
    cornea = np.zeros(len(data.face_vertices), bool)
    pupil = np.zeros_like(cornea)
    centres, axes, limbus = [], [], []
    for sclera_name, iris_name in EYE_MATERIALS:
        sclera_mask = data.material_face_mask([sclera_name])
        iris_mask = data.material_face_mask([iris_name])
        sclera_ids, iris_ids = (np.flatnonzero(data.polygon_vertex_mask(m)) for m in (sclera_mask, iris_mask))
        sclera, iris = vertices[sclera_ids], vertices[iris_ids]
        centre, _ = fit_sphere(sclera)
        radius = np.linalg.norm(sclera - centre, axis=1)
        apex = sclera[radius >= np.quantile(radius, 0.95)].mean(0)
        axis = (apex - centre) / np.linalg.norm(apex - centre)
        base = float(np.median(radius[_angles(sclera, centre, axis) > 40.0]))  # the sclera behind the cornea
        iris_radius = np.linalg.norm(iris - centre, axis=1)
        front = iris_radius > base  # the iris's front surface bulges out of the base sphere
        if not front.any():
            raise ValueError(f"{iris_name}: no iris vertex lies in front of the sclera's base sphere")
        angle = float(_angles(iris[front], centre, axis).max())
        sclera_polys, iris_polys = np.flatnonzero(sclera_mask), np.flatnonzero(iris_mask)
        cornea[sclera_polys[_angles(_polygon_centres(data, vertices, sclera_mask), centre, axis) < angle]] = True
        iris_angle = _angles(_polygon_centres(data, vertices, iris_mask), centre, axis)
        pupil[iris_polys[(iris_angle < PUPIL_FRACTION * angle) | (iris_angle > angle)]] = True
        centres.append(centre)
        axes.append(axis)
        limbus.append(angle)
    return EyeLayout(np.array(centres), np.array(axes), np.array(limbus), cornea, pupil)


def iris_colour(image: np.ndarray, points: np.ndarray) -> tuple[float, float, float] | None:
    """Median sRGB colour in [0, 1] of the irises of ``image`` (RGB uint8 ``(H, W, 3)``).

    points: MediaPipe's 478 points ``(478, 2)`` in pixels (468 and 473: iris centres, 469-472 and
    474-477: points on each iris's rim). Pixels between 0.45 and 0.9 of the iris radius are used
    (no pupil, no limbus); the brightest and darkest quarter (sclera, glints, lashes, eyelid
    shadow) are dropped. ``None`` when the irises are under 2 pixels wide.
    """
    samples = []
    height, width = image.shape[:2]
    for centre_id in (468, 473):
        centre = points[centre_id]
        radius = float(np.linalg.norm(points[centre_id + 1:centre_id + 5] - centre, axis=1).mean())
        if not radius >= 1.0:
            continue
        x0, y0 = np.floor(centre - radius).astype(int).clip(0, (width - 1, height - 1))
        x1, y1 = np.ceil(centre + radius).astype(int).clip(0, (width - 1, height - 1))
        ys, xs = np.mgrid[y0:y1 + 1, x0:x1 + 1]
        distance = np.hypot(xs - centre[0], ys - centre[1]) / radius
        ring = (distance >= 0.45) & (distance <= 0.9)
        samples.append(image[ys[ring], xs[ring]].astype(np.float64) / 255.0)
    if not samples or sum(len(s) for s in samples) < 4:
        return None
    colours = np.concatenate(samples)
    luminance = colours @ np.array([0.2126, 0.7152, 0.0722])
    low, high = np.quantile(luminance, [0.25, 0.75])
    kept = colours[(luminance >= low) & (luminance <= high)]
    return tuple(float(c) for c in np.median(kept if len(kept) else colours, axis=0))


#: (pitch, yaw) degrees of each ARKit gaze shape at weight 1, for the subject's left eye (the right
#: eye mirrors yaw). ICT Light's eyeLook* shapes move only the eyelids; these turn the eyeball too.
GAZE_DEGREES = {"eyeLookUp": (-25.0, 0.0), "eyeLookDown": (30.0, 0.0), "eyeLookOut": (0.0, 30.0),
                "eyeLookIn": (0.0, -30.0)}


def _rotation(pitch: float, yaw: float) -> np.ndarray:
    p, y = np.radians(pitch), np.radians(yaw)
    about_x = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    about_y = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    return about_y @ about_x


def gaze_deltas(data: ICTData, vertices: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """``{ARKit gaze shape: (V, 3) cm offsets}`` that turn each eyeball about its centre.

    vertices: the neutral head ``(V, 3)`` the offsets are for (default: the template). Sclera, iris
    and pupil of ``eyeLook<Dir>Left`` / ``Right`` turn by :data:`GAZE_DEGREES` at weight 1 (a linear
    morph: at weight 0.5 the eye turns about half as far).
    """
    vertices = data.neutral.astype(np.float64) if vertices is None else np.asarray(vertices, np.float64)
    layout = eye_layout(data, vertices)
    out = {}
    for eye, (side, (sclera_name, iris_name)) in enumerate(zip(("Left", "Right"), EYE_MATERIALS)):
        ids = np.flatnonzero(data.polygon_vertex_mask(data.material_face_mask([sclera_name, iris_name])))
        points = vertices[ids] - layout.centres[eye]
        for shape, (pitch, yaw) in GAZE_DEGREES.items():
            delta = np.zeros_like(vertices)
            delta[ids] = points @ _rotation(pitch, yaw if side == "Left" else -yaw).T - points
            out[f"{shape}{side}"] = delta
    return out
