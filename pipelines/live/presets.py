"""VRM preset expressions derived from ARKit weights, for avatars without "perfect sync" (the 52 ARKit
shapes): every VRM avatar has the presets, and VMC receivers and the web viewer drive them.

Names are VRM 1.0's (``blink``, ``aa``, ``happy`` ...); :data:`VRM0_NAMES` gives VRM 0.x's (``Blink``,
``A``, ``Joy`` ...), which VMC receivers built for VRM 0 expect. What each is made of:

- ``blink``: both eyes closed, the smaller of the two blinks; ``blinkLeft`` / ``blinkRight``: what one
  eye closes beyond that (so a wink closes one eye and a blink both, never one eye twice);
- mouth shapes (visemes): ``aa`` jawOpen, ``ih`` the mean mouthStretch, ``ou`` mouthPucker, ``ee`` the
  mean mouthSmile with the jaw nearly shut (lips spread), ``oh`` mouthFunnel;
- emotions: ``happy`` the mean of mouthSmile and cheekSquint, ``angry`` the mean browDown, ``sad`` the
  mean mouthFrown, ``surprised`` browInnerUp with eyes wide. ``relaxed`` and ``neutral`` are not
  derivable from the face's channels and are not sent.
"""

from __future__ import annotations

import numpy as np

from facecast.recon.model.arkit import ARKIT_52

PRESETS: tuple[str, ...] = ("blink", "blinkLeft", "blinkRight", "aa", "ih", "ou", "ee", "oh",
                            "happy", "angry", "sad", "surprised")
VRM0_NAMES: dict[str, str] = {"blink": "Blink", "blinkLeft": "Blink_L", "blinkRight": "Blink_R", "aa": "A",
                              "ih": "I", "ou": "U", "ee": "E", "oh": "O", "happy": "Joy", "angry": "Angry",
                              "sad": "Sorrow", "surprised": "Surprised"}


def vrm_presets(arkit: np.ndarray) -> dict[str, float]:
    """``{preset: weight in [0, 1]}`` (:data:`PRESETS` order) from ARKit weights ``(52,)``."""
    arkit = np.asarray(arkit, dtype=np.float64)
    if arkit.shape != (len(ARKIT_52),):
        raise ValueError(f"arkit must have shape ({len(ARKIT_52)},), got {arkit.shape}")
    w = dict(zip(ARKIT_52, np.clip(arkit, 0.0, 1.0)))

    def mean(name: str) -> float:
        return (w[name + "Left"] + w[name + "Right"]) / 2

    both = min(w["eyeBlinkLeft"], w["eyeBlinkRight"])
    out = {
        "blink": both, "blinkLeft": w["eyeBlinkLeft"] - both, "blinkRight": w["eyeBlinkRight"] - both,
        "aa": w["jawOpen"], "ih": mean("mouthStretch"), "ou": w["mouthPucker"],
        "ee": mean("mouthSmile") * (1.0 - w["jawOpen"]), "oh": w["mouthFunnel"],
        "happy": (mean("mouthSmile") + mean("cheekSquint")) / 2, "angry": mean("browDown"),
        "sad": mean("mouthFrown"), "surprised": w["browInnerUp"] * mean("eyeWide") ** 0.5,
    }
    return {name: float(np.clip(out[name], 0.0, 1.0)) for name in PRESETS}
