"""The GAN's critics and adversarial losses.

- :class:`CoefficientCritic` (HMR-style): is a predicted expression / identity
  plausible? One spectral-normalised MLP per coefficient group plus one on both, so
  an implausible expression cannot hide behind a typical identity. "Real" samples come
  from a prior (:class:`PriorCoefficients`) or from coefficients fitted to real photos
  (:class:`FittedCoefficients`, a file).
- :class:`DomainCritic`: are the regressor's crop features ``(B, F)`` those of a real
  face crop or of a rendered one? The generator is pushed to make rendered crops'
  features look real (domain-adversarial), so what it learns on renders holds on photos.
- :class:`PatchCritic` (PatchGAN): is a rendered-and-composited crop ``(B, 3, S, S)``
  indistinguishable from the photo crop, patch by patch?

Losses are the hinge loss (:func:`critic_hinge_loss`, :func:`generator_hinge_loss`);
spectral normalisation on every critic layer keeps them 1-Lipschitz-ish, and
:func:`r1_penalty` is there for runs that want more.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from facecast.recon.learn.train_data import random_expressions
from facecast.recon.model.coeffs import N_EXPRESSION, N_IDENTITY


def _sn_mlp(inputs: int, hidden: int, layers: int) -> nn.Sequential:
    """``layers`` spectral-normalised Linear + LeakyReLU layers, then a linear score."""
    body: list[nn.Module] = []
    width = inputs
    for _ in range(layers):
        body += [spectral_norm(nn.Linear(width, hidden)), nn.LeakyReLU(0.2)]
        width = hidden
    body.append(spectral_norm(nn.Linear(width, 1)))
    return nn.Sequential(*body)


class CoefficientCritic(nn.Module):
    """expression ``(B, 53)`` and identity ``(B, 100)`` -> scores ``(B, 3)`` (expression, identity, joint)."""

    def __init__(self, hidden: int = 128, layers: int = 2) -> None:
        super().__init__()
        self.expression = _sn_mlp(N_EXPRESSION, hidden, layers)
        self.identity = _sn_mlp(N_IDENTITY, hidden, layers)
        self.joint = _sn_mlp(N_EXPRESSION + N_IDENTITY, hidden, layers)

    def forward(self, expression: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        if expression.ndim != 2 or expression.shape[1] != N_EXPRESSION:
            raise ValueError(f"expression must have shape (B, {N_EXPRESSION}), got {tuple(expression.shape)}")
        if identity.shape != (expression.shape[0], N_IDENTITY):
            raise ValueError(f"identity must have shape ({expression.shape[0]}, {N_IDENTITY}), "
                             f"got {tuple(identity.shape)}")
        both = torch.cat([expression, identity], dim=1)
        return torch.cat([self.expression(expression), self.identity(identity), self.joint(both)], dim=1)


class DomainCritic(nn.Module):
    """Crop features ``(B, F)`` -> scores ``(B, 1)`` (high: real photo, low: render)."""

    def __init__(self, features: int, hidden: int = 128, layers: int = 2) -> None:
        super().__init__()
        self.features = features
        self.body = _sn_mlp(features, hidden, layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.ndim != 2 or features.shape[1] != self.features:
            raise ValueError(f"features must have shape (B, {self.features}), got {tuple(features.shape)}")
        return self.body(features)


class PatchCritic(nn.Module):
    """crops ``(B, 3, S, S)`` in [0, 1] -> patch scores ``(B, 1, S / 8, S / 8)`` (three stride-2 convs)."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for cout in (width, width * 2, width * 4):
            layers += [spectral_norm(nn.Conv2d(cin, cout, 4, 2, 1)), nn.LeakyReLU(0.2)]
            cin = cout
        layers.append(spectral_norm(nn.Conv2d(cin, 1, 3, 1, 1)))
        self.body = nn.Sequential(*layers)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        if crops.ndim != 4 or crops.shape[1] != 3:
            raise ValueError(f"crops must have shape (B, 3, S, S), got {tuple(crops.shape)}")
        return self.body((crops - 0.5) * 4.0)


def critic_hinge_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Scalar ``mean(relu(1 - real)) + mean(relu(1 + fake))`` over scores of any shape."""
    return torch.relu(1.0 - real).mean() + torch.relu(1.0 + fake).mean()


def generator_hinge_loss(fake: torch.Tensor) -> torch.Tensor:
    """Scalar ``-mean(fake)``: the generator raises the critic's score of its samples."""
    return -fake.mean()


def r1_penalty(scores: torch.Tensor, inputs: list[torch.Tensor]) -> torch.Tensor:
    """Scalar ``mean_b sum |d scores / d inputs|^2`` on real samples (inputs must require grad)."""
    grads = torch.autograd.grad(scores.sum(), inputs, create_graph=True)
    return sum(g.reshape(g.shape[0], -1).square().sum(1) for g in grads).mean()


@dataclass
class PriorCoefficients:
    """'Real' coefficients drawn from the synthetic prior (the training distribution).

    identity ``~ N(0, identity_std^2)`` clipped to +-2.5; ``expression_channels``
    random blendshapes uniform in [0, 1].
    """

    identity_std: float = 0.8
    expression_channels: int = 4

    def sample(self, count: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """expression ``(B, 53)``, identity ``(B, 100)``."""
        identity = (torch.randn(count, N_IDENTITY, generator=gen) * self.identity_std).clamp(-2.5, 2.5)
        return random_expressions(count, self.expression_channels, gen), identity


@dataclass
class FittedCoefficients:
    """'Real' coefficients from a file of faces fitted to real photos: expression ``(N, 53)``, identity ``(N, 100)``."""

    expression: torch.Tensor
    identity: torch.Tensor

    @classmethod
    def load(cls, path: str | Path) -> FittedCoefficients:
        """Read ``.npz`` (arrays ``expression``, ``identity``) or ``.json`` (a list of records with
        ``expression`` and ``identity``, as :meth:`FaceCoeffs.to_json` writes, or one such record)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"fitted coefficients {path} do not exist")
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                expression, identity = npz["expression"], npz["identity"]
        elif path.suffix.lower() == ".json":
            records = json.loads(path.read_text())
            records = [records] if isinstance(records, dict) else records
            try:
                expression = np.array([r["expression"] for r in records], dtype=np.float32)
                identity = np.array([r["identity"] for r in records], dtype=np.float32)
            except (KeyError, TypeError) as exc:
                raise ValueError(f"{path}: every record needs 'expression' and 'identity' lists ({exc})") from None
        else:
            raise ValueError(f"{path}: fitted coefficients must be .npz or .json")
        expression = torch.as_tensor(np.asarray(expression, dtype=np.float32))
        identity = torch.as_tensor(np.asarray(identity, dtype=np.float32))
        n = expression.shape[0] if expression.ndim else 0
        if tuple(expression.shape) != (n, N_EXPRESSION) or tuple(identity.shape) != (n, N_IDENTITY) or n == 0:
            raise ValueError(f"{path}: need expression (N, {N_EXPRESSION}) and identity (N, {N_IDENTITY}) with "
                             f"N >= 1, got {tuple(expression.shape)} and {tuple(identity.shape)}")
        return cls(expression, identity)

    def sample(self, count: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``count`` rows drawn with replacement: expression ``(B, 53)``, identity ``(B, 100)``."""
        rows = torch.randint(0, self.expression.shape[0], (count,), generator=gen)
        return self.expression[rows], self.identity[rows]
