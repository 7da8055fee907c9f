"""Expected avatar data, computed from the model independently of the exporter."""

from __future__ import annotations

import numpy as np


def expected_morphs(model, identity) -> np.ndarray:
    """``(53, V, 3)`` cm: the model's expression basis, with the eyeballs turned by the gaze shapes."""
    import torch

    from facecast.recon.model.eyes import gaze_deltas

    basis = model.expression_basis.numpy().astype(np.float64)
    neutral = model(torch.as_tensor(identity, dtype=torch.float32)[None], torch.zeros(1, 53)).vertices[0]
    for name, delta in gaze_deltas(model.data, neutral.numpy().astype(np.float64)).items():
        basis[model.expression_names.index(name)] += delta
    return basis


def expected_arkit_morphs(model, identity) -> np.ndarray:
    """``(52, V, 3)`` cm: :func:`expected_morphs` under the 52 ARKit names: each ICT shape as it is, a split
    pair (browInnerUp, cheekPuff) as the sum of its halves; ``tongueOut`` (made by the exporter) zero."""
    from facecast.recon.model.arkit import ARKIT_52

    ict = expected_morphs(model, identity)
    names = list(model.expression_names)
    out = np.zeros((len(ARKIT_52), *ict.shape[1:]))
    for k, name in enumerate(ARKIT_52):
        if name in names:
            out[k] = ict[names.index(name)]
        elif name != "tongueOut":
            out[k] = ict[names.index(name + "Left")] + ict[names.index(name + "Right")]
    return out
