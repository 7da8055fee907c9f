"""Colour maths for skin textures: sRGB <-> linear, CIELAB, CIEDE2000 and a person's skin-colour model.

All arrays are numpy, colours along the last axis; sRGB and linear values in [0, 1], CIELAB under
D65 (L* in [0, 100]).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_SRGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                         [0.2126729, 0.7151522, 0.0721750],
                         [0.0193339, 0.1191920, 0.9503041]])
_WHITE = np.array([0.95047, 1.0, 1.08883])


def srgb_to_linear(srgb: np.ndarray) -> np.ndarray:
    """``(..., 3)`` sRGB in [0, 1] -> linear RGB."""
    c = np.clip(srgb, 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, np.power((c + 0.055) / 1.055, 2.4))


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """``(..., 3)`` linear RGB -> sRGB in [0, 1] (clipped)."""
    c = np.clip(linear, 0.0, 1.0)
    out = 1.055 * np.power(c, 1 / 2.4, dtype=c.dtype) - 0.055
    dark = c <= 0.0031308
    out[dark] = c[dark] * 12.92
    return out


def srgb_to_lab(srgb: np.ndarray) -> np.ndarray:
    """``(..., 3)`` sRGB in [0, 1] -> CIELAB (D65)."""
    xyz = srgb_to_linear(srgb) @ _SRGB_TO_XYZ.T / _WHITE
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference of ``(..., 3)`` CIELAB colours (kL = kC = kH = 1)."""
    l1, a1, b1 = np.moveaxis(np.asarray(lab1, np.float64), -1, 0)
    l2, a2, b2 = np.moveaxis(np.asarray(lab2, np.float64), -1, 0)
    c_mean = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_mean ** 7 / (c_mean ** 7 + 25.0 ** 7)))
    a1p, a2p = a1 * (1 + g), a2 * (1 + g)
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p, h2p = np.degrees(np.arctan2(b1, a1p)) % 360, np.degrees(np.arctan2(b2, a2p)) % 360
    dl, dc = l2 - l1, c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(c1p * c2p == 0, 0.0, dh)
    dhp = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    l_mean, cp_mean = (l1 + l2) / 2, (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_mean = np.where(c1p * c2p == 0, h_sum,
                      np.where(np.abs(h1p - h2p) <= 180, h_sum / 2,
                               np.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2)))
    t = (1 - 0.17 * np.cos(np.radians(h_mean - 30)) + 0.24 * np.cos(np.radians(2 * h_mean))
         + 0.32 * np.cos(np.radians(3 * h_mean + 6)) - 0.20 * np.cos(np.radians(4 * h_mean - 63)))
    sl = 1 + 0.015 * (l_mean - 50) ** 2 / np.sqrt(20 + (l_mean - 50) ** 2)
    sc, sh = 1 + 0.045 * cp_mean, 1 + 0.015 * cp_mean * t
    rt = (-2 * np.sqrt(cp_mean ** 7 / (cp_mean ** 7 + 25.0 ** 7))
          * np.sin(np.radians(60 * np.exp(-(((h_mean - 275) / 25) ** 2)))))
    return np.sqrt((dl / sl) ** 2 + (dc / sc) ** 2 + (dhp / sh) ** 2 + rt * (dc / sc) * (dhp / sh))


@dataclass(frozen=True)
class SkinColourModel:
    """A Gaussian over the chroma ``(a*, b*)`` of one person's skin and the range of its lightness.

    mean ``(2,)``, covariance ``(2, 2)``; lightness ``(low, high)`` L* (2nd and 98th percentile).
    Chroma is what shading leaves nearly alone and what neon de-lighting, clothes, hair and
    background change; lightness varies with shading, so it only gets a range (2nd to 98th percentile).
    """

    mean: np.ndarray
    covariance: np.ndarray
    lightness: tuple[float, float]

    @classmethod
    def fit(cls, lab: np.ndarray) -> SkinColourModel:
        """Fit to ``(N, 3)`` CIELAB samples of skin (N >= 8); outliers beyond 2.5 robust sigmas are dropped."""
        lab = np.asarray(lab, np.float64).reshape(-1, 3)
        if len(lab) < 8:
            raise ValueError(f"a skin colour model needs at least 8 samples, got {len(lab)}")
        chroma = lab[:, 1:]
        median = np.median(chroma, 0)
        spread = 1.4826 * np.median(np.abs(chroma - median), 0) + 0.5
        inliers = (np.abs(chroma - median) / spread < 2.5).all(1)
        kept = chroma[inliers] if inliers.sum() >= 8 else chroma
        covariance = np.cov(kept.T) + np.eye(2) * 1.0  # at least 1 unit of a*/b* spread
        low, high = np.percentile(lab[inliers, 0] if inliers.sum() >= 8 else lab[:, 0], [2, 98])
        return cls(kept.mean(0), covariance, (float(low), float(high)))

    def distance(self, lab: np.ndarray) -> np.ndarray:
        """``(...)`` Mahalanobis distance of the chroma of ``(..., 3)`` CIELAB colours."""
        offset = np.asarray(lab, np.float64)[..., 1:] - self.mean
        return np.sqrt(np.einsum("...i,ij,...j->...", offset, np.linalg.inv(self.covariance), offset))

    def outside(self, lab: np.ndarray, sigmas: float = 3.0, lightness_margin: float = 12.0) -> np.ndarray:
        """``(...)`` bool: chroma beyond ``sigmas`` or L* more than ``lightness_margin`` outside the range."""
        lab = np.asarray(lab, np.float64)
        low, high = self.lightness
        return ((self.distance(lab) > sigmas) | (lab[..., 0] < low - lightness_margin)
                | (lab[..., 0] > high + lightness_margin))

    def srgb(self) -> np.ndarray:
        """``(3,)`` sRGB in [0, 1] of the model's mean chroma at the middle of its lightness range."""
        return lab_to_srgb(np.array([sum(self.lightness) / 2, *self.mean]))


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """``(..., 3)`` CIELAB (D65) -> sRGB in [0, 1] (clipped)."""
    lab = np.asarray(lab, np.float64)
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], -1)
    xyz = np.where(f > 6 / 29, f ** 3, 3 * (6 / 29) ** 2 * (f - 4 / 29)) * _WHITE
    return linear_to_srgb(xyz @ np.linalg.inv(_SRGB_TO_XYZ).T)


def seam_difference(texture: np.ndarray, seen: np.ndarray, unseen: np.ndarray, band: int = 6) -> float:
    """Mean CIEDE2000 across the boundary between two texel sets of a texture.

    texture ``(S, S, 3)`` sRGB in [0, 1]; seen / unseen ``(S, S)`` bool (e.g. texels the photo showed
    and texels it did not). At every seen texel next to an unseen one, the mean colours of the seen
    and of the unseen texels within ``band`` texels are compared; ``nan`` without such a boundary.
    """
    import cv2

    seen, unseen = seen.astype(np.float32), unseen.astype(np.float32)
    window = (2 * band + 1, 2 * band + 1)
    count_s = cv2.boxFilter(seen, -1, window, normalize=False)
    count_u = cv2.boxFilter(unseen, -1, window, normalize=False)
    colour = texture.astype(np.float32)
    mean_s = cv2.boxFilter(colour * seen[..., None], -1, window, normalize=False)
    mean_u = cv2.boxFilter(colour * unseen[..., None], -1, window, normalize=False)
    minimum = band * band / 4
    boundary = ((seen > 0) & (cv2.dilate(unseen, np.ones((3, 3), np.uint8)) > 0)
                & (count_s >= minimum) & (count_u >= minimum))
    if not boundary.any():
        return float("nan")
    inside = mean_s[boundary] / count_s[boundary, None]
    outside = mean_u[boundary] / count_u[boundary, None]
    return float(ciede2000(srgb_to_lab(inside), srgb_to_lab(outside)).mean())
