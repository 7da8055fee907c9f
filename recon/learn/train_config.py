"""``TrainConfig``: everything a regressor training run depends on, and its JSON form.

A JSON config holds any subset of the fields; nested sections (``weights``,
``regressor``, ``data``) likewise. Unknown keys and wrongly typed values raise
:class:`TrainConfigError` naming the key and the known ones. Example::

    {"steps": 3000, "batch": 32, "pool_size": 2048,
     "weights": {"adversarial": 0.0},
     "regressor": {"crop_size": 96},
     "data": {"yaw": 40.0}}
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from facecast.recon.learn.losses import LossWeights
from facecast.recon.learn.regressor import RegressorConfig
from facecast.recon.learn.train_data import SyntheticConfig


class TrainConfigError(ValueError):
    """A training config that cannot be used (unknown key, wrong type, bad value)."""


@dataclass(frozen=True)
class TrainConfig:
    """A training run (see :func:`facecast.recon.learn.training.train`).

    steps / batch / lr / critic_lr: generator steps, faces per step, Adam learning rates
    (cosine decay to 5 % over ``steps``). pool_size: 0 draws fresh synthetic faces every
    step; N > 0 draws (and renders) N faces once and samples batches from them (much
    cheaper on a CPU when crops are rendered). seed: everything random derives from it.
    log_every: steps per progress line. checkpoint: path of the resumable checkpoint
    (``None`` = none) written every ``checkpoint_every`` steps and at the end.
    real_coefficients: ``.npz``/``.json`` of coefficients fitted to real photos, the
    critic's "real" samples (``None``: samples of the synthetic prior). texture: image
    file of an ICT UV texture for the renders (``None``: the caller's default, the
    astronaut texture on the command line). pseudo_labels: ``.npz`` of real faces with
    fitted coefficients (:mod:`facecast.recon.learn.pseudo_labels`, ``facecast label``), mixed
    into every batch at ``pseudo_fraction`` (self-supervised fine-tuning; landmark branch
    only). init_weights: ``.safetensors`` to start from (same regressor config), e.g. the
    shipped weights for a fine-tuning run.
    """

    steps: int = 2000
    batch: int = 32
    lr: float = 1e-3
    critic_lr: float = 2e-4
    pool_size: int = 0
    seed: int = 0
    log_every: int = 50
    checkpoint: str | None = None
    checkpoint_every: int = 200
    real_coefficients: str | None = None
    texture: str | None = None
    pseudo_labels: str | None = None
    pseudo_fraction: float = 0.5
    init_weights: str | None = None
    render_pool: str | None = None
    real_crops: str | None = None
    augment: float = 0.2
    landmark_dropout: float = 0.0
    weights: LossWeights = field(default_factory=LossWeights)
    regressor: RegressorConfig = field(default_factory=RegressorConfig)
    data: SyntheticConfig = field(default_factory=SyntheticConfig)

    def __post_init__(self) -> None:
        positive = {"steps": self.steps, "batch": self.batch, "lr": self.lr, "critic_lr": self.critic_lr,
                    "log_every": self.log_every, "checkpoint_every": self.checkpoint_every}
        for name, value in positive.items():
            if not value > 0:
                raise TrainConfigError(f"{name} must be > 0, got {value}")
        if self.pool_size < 0:
            raise TrainConfigError(f"pool_size must be >= 0, got {self.pool_size}")
        if not 0 < self.pseudo_fraction < 1:
            raise TrainConfigError(f"pseudo_fraction must be in (0, 1), got {self.pseudo_fraction}")
        if self.pseudo_labels is not None and self.regressor.image_branch:
            raise TrainConfigError("pseudo_labels hold landmarks only: use them with regressor.image_branch false")
        if self.weights.domain > 0 and (self.render_pool is None or self.real_crops is None
                                        or not self.regressor.image_branch):
            raise TrainConfigError("weights.domain needs render_pool, real_crops and regressor.image_branch")
        if self.render_pool is not None and self.pseudo_labels is not None:
            raise TrainConfigError("render_pool and pseudo_labels cannot be mixed (pseudo-labels have no crops)")
        if not 0 <= self.landmark_dropout < 1 or (self.landmark_dropout and not self.regressor.image_branch):
            raise TrainConfigError(f"landmark_dropout must be in [0, 1) and needs the image branch, "
                                   f"got {self.landmark_dropout}")
        if not 0 <= self.augment < 1:
            raise TrainConfigError(f"augment must be in [0, 1), got {self.augment}")

    @property
    def needs_renders(self) -> bool:
        """True when crops must be rendered here (image branch without a pool, photometric or image-critic terms)."""
        w = self.weights
        return ((self.regressor.image_branch and self.render_pool is None) or w.photometric > 0
                or w.image_adversarial > 0)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


#: fields that may differ between a checkpoint and the run resuming it
RESUMABLE_CHANGES = ("log_every", "checkpoint", "checkpoint_every")


def _check_value(where: str, default, value):
    """``value`` converted to the type of ``default`` (lists to tuples) or a :class:`TrainConfigError`."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, tuple):
        kind_of = type(default[0]) if default else float
        ok = isinstance(value, (list, tuple)) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and (kind_of is float or isinstance(v, int))
            for v in value)
        value = tuple(kind_of(v) for v in value) if ok else value
    elif default is None:
        ok = value is None or isinstance(value, str)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        kind = ("a string or null" if default is None else
                f"a list of {type(default[0]).__name__}" if isinstance(default, tuple) and default
                else type(default).__name__)
        raise TrainConfigError(f"{where} must be {kind}, got {value!r}")
    return value


def _build(cls, data, where: str):
    if not isinstance(data, dict):
        raise TrainConfigError(f"{where or 'the config'} must be a JSON object, got {type(data).__name__}")
    defaults = cls()
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise TrainConfigError(f"unknown key(s) {unknown} in {where or 'the config'}; known: {sorted(known)}")
    values = {}
    for name, value in data.items():
        default = getattr(defaults, name)
        key = f"{where}.{name}" if where else name
        if dataclasses.is_dataclass(default):
            values[name] = _build(type(default), value, key)
        else:
            values[name] = _check_value(key, default, value)
    try:
        return cls(**values)
    except TrainConfigError:
        raise
    except (ValueError, TypeError) as exc:
        raise TrainConfigError(f"{where or 'config'}: {exc}") from None


def train_config_from_dict(data: dict) -> TrainConfig:
    """A :class:`TrainConfig` from a (JSON) dict; missing keys keep their defaults."""
    return _build(TrainConfig, data, "")


def load_train_config(path: str | Path) -> TrainConfig:
    """Read a JSON training config (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise TrainConfigError(f"training config {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, RecursionError) as exc:
        raise TrainConfigError(f"{path} is not valid JSON: {exc}") from None
    return train_config_from_dict(data)


def config_differences(saved: dict, current: TrainConfig) -> list[str]:
    """Top-level keys whose values differ between a saved config dict and ``current`` (resumable ones ignored)."""
    now = json.loads(current.to_json())
    keys = set(saved) | set(now)
    return sorted(k for k in keys if k not in RESUMABLE_CHANGES and saved.get(k) != now.get(k))
