"""ARKit blendshape names and the map between ICT's 53 shapes and ARKit's 52.

ICT names its shapes like ARKit with ``_L``/``_R`` suffixes (``eyeBlink_L``).
facecast exposes them in ARKit camelCase (``eyeBlinkLeft``) and in ARKit order
(the order of ``ARFaceAnchor.BlendShapeLocation`` as Live Link Face writes it).

One-to-many cases: ARKit has a single ``browInnerUp`` and a single
``cheekPuff``; ICT splits each into a left and a right shape. facecast keeps both
halves as ``browInnerUpLeft``/``browInnerUpRight`` and
``cheekPuffLeft``/``cheekPuffRight`` (53 channels = 52 ARKit - ``tongueOut``
+ 2 splits). Going to ARKit, a split pair becomes the mean of its halves; coming
from ARKit, both halves take the ARKit weight. ``tongueOut`` has no ICT shape:
it is 0 going to ARKit and ignored coming from it.
"""

from __future__ import annotations

import numpy as np
import torch

#: The 52 ARKit blendshapes in Apple's / Live Link Face order.
ARKIT_52: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight",
    "eyeLookOutRight", "eyeLookUpRight", "eyeSquintRight", "eyeWideRight", "jawForward",
    "jawLeft", "jawRight", "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft",
    "mouthRight", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthPressLeft",
    "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft",
    "mouthUpperUpRight", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft",
    "noseSneerRight", "tongueOut",
)

#: ARKit shapes that ICT splits into a left and a right half.
SPLIT_SHAPES: tuple[str, ...] = ("browInnerUp", "cheekPuff")


def camel_from_ict(name: str) -> str:
    """``eyeBlink_L`` -> ``eyeBlinkLeft``; names without a suffix are unchanged."""
    if name.endswith("_L"):
        return name[:-2] + "Left"
    if name.endswith("_R"):
        return name[:-2] + "Right"
    return name


def arkit_from_camel(name: str) -> str:
    """Our channel name -> the ARKit shape it drives (``browInnerUpLeft`` -> ``browInnerUp``)."""
    for shape in SPLIT_SHAPES:
        if name in (shape + "Left", shape + "Right"):
            return shape
    return name


def facecast_order(ict_names: list[str]) -> list[int]:
    """Permutation putting ICT shapes in ARKit order: ``ours[k] = ict[perm[k]]``.

    Split halves sit at their ARKit shape's position, left before right.
    Raises ``ValueError`` naming any ICT shape that maps to no ARKit name.
    """
    camel = [camel_from_ict(n) for n in ict_names]
    rank = {name: k for k, name in enumerate(ARKIT_52)}
    unknown = [n for n, c in zip(ict_names, camel) if arkit_from_camel(c) not in rank]
    if unknown:
        raise ValueError(f"ICT shapes with no ARKit name: {unknown}")
    keys = [(rank[arkit_from_camel(c)], c.endswith("Right")) for c in camel]
    return sorted(range(len(ict_names)), key=lambda k: keys[k])


def arkit_matrix(names: list[str]) -> np.ndarray:
    """``(52, C)`` matrix M with ``arkit = expression @ M.T`` for our C channel names."""
    matrix = np.zeros((len(ARKIT_52), len(names)), dtype=np.float64)
    for c, name in enumerate(names):
        target = arkit_from_camel(name)
        if target not in ARKIT_52:
            raise ValueError(f"channel {name!r} has no ARKit shape")
        matrix[ARKIT_52.index(target), c] = 1.0
    counts = matrix.sum(axis=1, keepdims=True)
    return matrix / np.maximum(counts, 1.0)


def to_arkit(expression: torch.Tensor, names: list[str]) -> torch.Tensor:
    """Our expression weights ``(..., C)`` -> ARKit 52 weights ``(..., 52)``."""
    if expression.shape[-1] != len(names):
        raise ValueError(f"expression has {expression.shape[-1]} channels, expected {len(names)}")
    matrix = torch.as_tensor(arkit_matrix(names), dtype=expression.dtype, device=expression.device)
    return expression @ matrix.T


def from_arkit(arkit: torch.Tensor, names: list[str]) -> torch.Tensor:
    """ARKit 52 weights ``(..., 52)`` -> our channels ``(..., C)`` (split halves copied)."""
    if arkit.shape[-1] != len(ARKIT_52):
        raise ValueError(f"ARKit weights need 52 channels, got {arkit.shape[-1]}")
    binary = (arkit_matrix(names) > 0).astype(np.float64)
    matrix = torch.as_tensor(binary, dtype=arkit.dtype, device=arkit.device)
    return arkit @ matrix
