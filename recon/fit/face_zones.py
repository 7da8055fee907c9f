"""Zones of the neutral ICT head that the texture baker treats apart, one weight per vertex.

Each zone is measured on the neutral head from its 68 landmark vertices (cm, y up, z towards the
viewer), so it follows the person's identity and expression when interpolated on the fitted mesh.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from facecast.recon.model.albedo import diffuse


@dataclass(frozen=True)
class FaceZones:
    """``(V,)`` float weights in [0, 1] per vertex of the full model.

    border: a band along the back of the head (``M_BackHead``), a few polygons wide; core: the face
    proper, where skin shows in nearly every photo (chin to brows, inside the eyes' width);
    above_jaw: :func:`jaw_weight`; beard: below the nose, where facial hair grows; feature: the
    eyelids and nostrils (:func:`feature_weight`); bridge: the top of the nose between the eyes,
    where a pair of glasses rests; spectacles: what a pair of glasses covers (:func:`spectacle_weight`).
    """

    border: np.ndarray
    core: np.ndarray
    above_jaw: np.ndarray
    beard: np.ndarray
    feature: np.ndarray
    bridge: np.ndarray
    spectacles: np.ndarray

    @classmethod
    def of(cls, data) -> FaceZones:
        """The zones of one :class:`~facecast.recon.model.topology.ICTData`."""
        neutral, marks = data.neutral.astype(np.float64), data.neutral[data.landmarks68].astype(np.float64)
        border = data.back_of_head_vertices()[:, None].astype(np.float64)
        border = np.clip(diffuse(border, data, 6)[:, 0] * 2.0, 0.0, 1.0)
        core = ((neutral[:, 1] > marks[8, 1] + 1.0) & (neutral[:, 1] < marks[19, 1])
                & (np.abs(neutral[:, 0]) < np.abs(marks[36, 0] - marks[45, 0]) / 2))
        beard = neutral[:, 1] < marks[33, 1] - 0.3
        corners = max(marks[39, 1], marks[42, 1])  # the eyes' inner corners
        bridge = ((np.abs(neutral[:, 0]) < 0.5) & (neutral[:, 1] > corners - 1.0) & (neutral[:, 1] < corners + 1.2)
                  & (neutral[:, 2] > marks[39, 2]))
        return cls(border, core.astype(np.float64), jaw_weight(data), beard.astype(np.float64),
                   feature_weight(data), bridge.astype(np.float64), spectacle_weight(data))

    def stacked(self) -> np.ndarray:
        """``(V, 7)``: the zones as columns, in field order."""
        return np.stack([getattr(self, f.name) for f in fields(self)], -1)


def _near_contours(neutral: np.ndarray, loops: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """``(V,)`` bool: vertices within each loop's radius (cm) of its closed contour ``(K, 3)``."""
    steps = np.linspace(0.0, 1.0, 8)[:, None, None]
    near = np.zeros(len(neutral), bool)
    for ring, radius in loops:
        dense = (ring + steps * (np.roll(ring, -1, 0) - ring)).reshape(-1, 3)  # points along the contour
        near |= np.sqrt(((neutral[:, None] - dense[None]) ** 2).sum(-1)).min(1) < radius
    return near


def feature_weight(data, eyelid: float = 0.6, nostril: float = 0.4) -> np.ndarray:
    """``(V,)`` 1 on the eyelids (within ``eyelid`` cm of the 68-point eye contours of the neutral head:
    lashes, lid creases, their shadow) and around the nostrils (within ``nostril`` cm of points 31-35),
    else 0: dark there is the face, not glasses or hair over it."""
    neutral = data.neutral.astype(np.float64)
    marks = neutral[data.landmarks68]
    return _near_contours(neutral, [(marks[36:42], eyelid), (marks[42:48], eyelid),
                                    (marks[31:36], nostril)]).astype(np.float64)


def spectacle_weight(data, margin: float = 1.6, below: float = 2.3, above: float = 1.8) -> np.ndarray:
    """``(V,)`` 1 where a pair of glasses covers the face: around each eye to ``margin`` cm beyond its
    corners, from ``below`` cm under to ``above`` cm over its centre (to the brows), and the nose
    between them; the front of the face only."""
    neutral = data.neutral.astype(np.float64)
    marks = neutral[data.landmarks68]
    zone = np.zeros(len(neutral), bool)
    for eye in (marks[36:42], marks[42:48]):
        centre, half = eye.mean(0), np.abs(eye[3, 0] - eye[0, 0]) / 2
        zone |= ((np.abs(neutral[:, 0] - centre[0]) < half + margin) & (neutral[:, 1] > centre[1] - below)
                 & (neutral[:, 1] < centre[1] + above))
    inner = min(abs(marks[39, 0]), abs(marks[42, 0]))
    centre_y = marks[36:48, 1].mean()
    zone |= (np.abs(neutral[:, 0]) < inner) & (neutral[:, 1] > centre_y - 0.8) & (neutral[:, 1] < centre_y + above)
    return (zone & (neutral[:, 2] > marks[0, 2])).astype(np.float64)


def jaw_weight(data) -> np.ndarray:
    """``(V,)`` in [0, 1]: 1 on the face, fading to 0 from 0.7 cm above the jaw line to 0.3 cm below it
    (the jaw's underside is in shadow in nearly every photo, which the SH light does not model) on the neutral
    head: its 68-point contour as a height over x, and behind the jaw's angle (landmark 12) a line
    rising back to below the ear lobe (y 0.5 cm at z -1 cm), so the sides of the neck fade too."""
    neutral = data.neutral.astype(np.float64)
    contour = neutral[data.landmarks68[8:17]]  # chin to the right ear (the head is symmetric)
    jaw = np.interp(np.abs(neutral[:, 0]), contour[:, 0], contour[:, 1])
    angle, lobe = contour[4, 1:], np.array([0.5, -1.0])  # (y, z)
    behind = angle[0] + (neutral[:, 2] - angle[1]) * (lobe[0] - angle[0]) / (lobe[1] - angle[1])
    jaw = np.maximum(jaw, np.where(neutral[:, 2] < angle[1], behind, -np.inf))
    return np.clip(neutral[:, 1] - jaw + 0.3, 0.0, 1.0)


def wears_glasses(dark: np.ndarray, bridge: np.ndarray, seen: np.ndarray, height: np.ndarray,
                  min_seen: float = 0.5, min_rows: int = 4) -> bool:
    """Whether the photo shows glasses: across the well-``seen`` ``(N,)`` bool texels of the nose's
    bridge (``bridge`` ``(N,)`` bool, their neutral height ``height`` ``(N,)`` cm), at least
    ``min_rows`` rows (0.1 cm) mostly ``dark`` ``(N,)`` bool (much darker than the face's skin): a
    frame's bridge lies across the nose, which hair and shadow seldom do (highlights and reddened skin
    there are not dark). ``False`` when under ``min_seen`` of the bridge was seen."""
    chosen = bridge & seen
    if chosen.sum() < max(16, min_seen * bridge.sum()):
        return False
    rows = np.floor(height[chosen] / 0.1).astype(np.int64)
    rows -= rows.min()
    share = np.bincount(rows, dark[chosen]) / np.maximum(np.bincount(rows), 1)
    return int((share > 0.5).sum()) >= min_rows
