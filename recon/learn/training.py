"""Training the regressor as the generator of a GAN (issue #5), sized to run on a CPU.

Each step draws a batch of synthetic faces with known truth
(:mod:`facecast.recon.learn.train_data`), predicts their coefficients, and takes:

1. one generator (regressor) step on
   ``supervised + landmark + prior + adversarial + image_adversarial + photometric``
   (:class:`~facecast.recon.learn.losses.LossWeights`; 0 switches a term off);
2. one critic step (hinge loss) when an adversarial weight is > 0: the coefficient
   critic sees the batch's predicted expression/identity against "real" ones (the
   synthetic prior or a file of fitted coefficients), the patch critic the rendered
   composites against the crops.

Progress is one line every ``log_every`` steps with every term of both players.
Checkpoints (``torch.save`` of the state dicts, random generator states, step and
config; written atomically) make a run resumable: a resumed run continues exactly as
an uninterrupted one would. :func:`training_metadata` describes a run for the
weights file (:func:`facecast.recon.learn.regressor.save_regressor`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from facecast.recon.landmarks.sparse import SparseLandmarks
from facecast.recon.learn.checkpoints import load_checkpoint, save_checkpoint, start_from
from facecast.recon.learn.critics import (
    CoefficientCritic,
    DomainCritic,
    FittedCoefficients,
    PatchCritic,
    PriorCoefficients,
    critic_hinge_loss,
    generator_hinge_loss,
)
from facecast.recon.learn.losses import PhotometricTerm, PoseTargets, prior_loss, reprojection_loss, supervised_loss
from facecast.recon.learn.regressor import Regressor, coeffs_from_output
from facecast.recon.learn.train_config import TrainConfig, TrainConfigError, config_differences
from facecast.recon.learn.train_data import SyntheticFaces, TrainBatch
from facecast.recon.model.morphable import MorphableModel

CHECKPOINT_FORMAT = "facecast-train-checkpoint-1"
WHITENING_FACES = 4096  # synthetic faces whose landmarks set the regressor's input whitening


@dataclass
class StepStats:
    """Losses of one step: the generator's terms (unweighted), its weighted total, the critic's loss."""

    step: int
    total: float
    supervised: float
    identity: float
    expression: float
    pose: float
    landmark: float
    prior: float
    adversarial: float
    image_adversarial: float
    photometric: float
    domain: float
    critic: float
    domain_critic: float
    lr: float
    seconds: float

    def line(self, steps: int) -> str:
        return (f"step {self.step}/{steps}  total {self.total:.4f}  sup {self.supervised:.4f} "
                f"(id {self.identity:.4f} expr {self.expression:.4f} pose {self.pose:.4f})  "
                f"lmk {self.landmark:.4f}  prior {self.prior:.4f}  adv_g {self.adversarial:+.4f}  "
                f"img_adv_g {self.image_adversarial:+.4f}  photo {self.photometric:.4f}  "
                f"dom_g {self.domain:+.4f}  critic {self.critic:.4f}  dom_critic {self.domain_critic:.4f}  "
                f"lr {self.lr:.2e}  {self.seconds:.3f} s/step")


@dataclass
class TrainResult:
    """The trained regressor (eval mode), the step reached and the stats of every step of this run."""

    regressor: Regressor
    step: int
    history: list[StepStats]


class Trainer:
    """One training run's networks, optimisers, data and random streams (see :func:`train`)."""

    def __init__(self, config: TrainConfig, model: MorphableModel, texture: np.ndarray | None, mapping) -> None:
        self.config = config
        torch.manual_seed(config.seed)
        self.regressor = Regressor(config.regressor)
        w = config.weights
        self.critic = CoefficientCritic() if w.adversarial > 0 else None
        self.patch = PatchCritic() if w.image_adversarial > 0 else None
        self.domain = DomainCritic(config.regressor.features) if w.domain > 0 else None
        self.g_opt = torch.optim.Adam(self.regressor.parameters(), lr=config.lr)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.g_opt, config.steps, eta_min=config.lr * 0.05)
        critics = [p for c in (self.critic, self.patch, self.domain) if c is not None for p in c.parameters()]
        self.d_opt = torch.optim.Adam(critics, lr=config.critic_lr, betas=(0.5, 0.999)) if critics else None
        self.sparse = SparseLandmarks.build(model, mapping)
        self.photometric = PhotometricTerm(model) if w.photometric > 0 or w.image_adversarial > 0 else None
        renderer = None
        if config.needs_renders:
            if texture is None:
                raise TrainConfigError("this config renders crops (image branch, photometric or image critic): "
                                       "a texture is needed")
            from facecast.recon.learn.synthetic import SyntheticRenderer

            renderer = SyntheticRenderer(model, texture)
        r = config.regressor
        self.data = SyntheticFaces(self.sparse, renderer, config.data, r.crop_size, r.crop_scale, r.focal_factor,
                                   r.anchor)
        self.data_gen = torch.Generator().manual_seed(config.seed + 1)
        self.real_gen = torch.Generator().manual_seed(config.seed + 2)
        self.real = real_samples(config)
        self.pool, self.real_crops = rendered_pool(config)
        if r.landmark_branch and config.init_weights is None:  # init weights bring their whitening
            if self.pool is not None and self.pool.batch_size >= WHITENING_FACES // 4:  # the detector's points
                self.regressor.fit_landmark_whitening(self.pool.inputs.landmarks)
            else:
                whitening = self.data.sample(WHITENING_FACES, torch.Generator().manual_seed(config.seed + 4),
                                             render=False)
                self.regressor.fit_landmark_whitening(whitening.inputs.landmarks)
        if self.pool is None and config.pool_size:
            self.pool = self.data.sample(config.pool_size, torch.Generator().manual_seed(config.seed + 3))
        self.pseudo = pseudo_batch(config)
        if config.init_weights is not None:
            start_from(self.regressor, config.init_weights)
        self.step = 0

    def batch(self) -> TrainBatch:
        """The next batch: synthetic faces (fresh, or drawn from the pool), plus pseudo-labelled real ones."""
        real = 0 if self.pseudo is None else round(self.config.batch * self.config.pseudo_fraction)
        synthetic = self._synthetic(self.config.batch - real)
        if not real:
            return synthetic
        rows = torch.randint(0, self.pseudo.batch_size, (real,), generator=self.data_gen)
        return TrainBatch.cat([synthetic, self.pseudo.select(rows)])

    def _synthetic(self, count: int) -> TrainBatch:
        if self.pool is None:
            return self.data.sample(count, self.data_gen)
        size = self.pool.batch_size
        if count <= size:  # without replacement
            rows = torch.randperm(size, generator=self.data_gen)[:count]
        else:
            rows = torch.randint(0, size, (count,), generator=self.data_gen)
        batch = self.pool.select(rows)
        a = self.config.augment
        if a and self.config.render_pool is not None:  # brightness / contrast jitter of the rendered crops
            crops = batch.inputs.crops
            gain = 1 + a * (2 * torch.rand(count, 1, 1, 1, generator=self.data_gen) - 1)
            shift = a * 0.25 * (2 * torch.rand(count, 3, 1, 1, generator=self.data_gen) - 1)
            mean = crops.mean(dim=(1, 2, 3), keepdim=True)
            crops = ((crops - mean) * gain + mean + shift).clamp(0, 1)
            batch = TrainBatch(batch.truth, replace(batch.inputs, crops=crops), batch.points)
        return batch

    def train_step(self) -> StepStats:
        """One generator step and (when adversarial) one critic step."""
        start = time.perf_counter()
        w, batch = self.config.weights, self.batch()
        self.regressor.train()
        inputs = batch.inputs
        features = self.regressor.encode(inputs.crops, inputs.landmarks)
        drop = self.config.landmark_dropout
        if drop and len(features) == 2:  # modality dropout: these faces are seen through the crop alone
            keep = torch.rand(len(features[1]), 1, generator=self.data_gen) >= drop
            features = [features[0], features[1] * keep]
        output = self.regressor.split(self.regressor.decode(features))
        coeffs = coeffs_from_output(output, inputs, self.config.regressor)
        zero = coeffs.identity.new_zeros(())
        parts = supervised_loss(output, batch.truth, PoseTargets.from_truth(batch.truth, inputs.frame,
                                                                            self.config.regressor))
        sup = parts.weighted(w)
        lmk = reprojection_loss(self.sparse, coeffs, batch.points, inputs.frame.image_size)
        prior = prior_loss(coeffs)
        adv = generator_hinge_loss(self.critic(coeffs.expression, coeffs.identity)) if self.critic else zero
        photo, img_adv, composite = zero, zero, None
        if self.photometric is not None:
            rendered = self.photometric.render(coeffs, inputs.frame, inputs.crops.permute(0, 2, 3, 1))
            photo = self.photometric.loss(rendered, inputs.crops)
            composite = rendered.image.permute(0, 3, 1, 2)
            img_adv = generator_hinge_loss(self.patch(composite)) if self.patch else zero
        dom = generator_hinge_loss(self.domain(features[0])) if self.domain else zero
        total = (sup + w.landmark * lmk + w.prior * prior + w.adversarial * adv
                 + w.image_adversarial * img_adv + w.photometric * photo + w.domain * dom)
        self.g_opt.zero_grad(set_to_none=True)
        total.backward()
        self.g_opt.step()
        lr = self.schedule.get_last_lr()[0]
        self.schedule.step()
        critic = self._critic_step(coeffs.expression.detach(), coeffs.identity.detach(), inputs.crops,
                                   None if composite is None else composite.detach())
        domain_critic = self._domain_step(features[0].detach()) if self.domain else 0.0
        self.step += 1
        values = [float(v.detach()) for v in (total, sup, parts.identity, parts.expression, parts.pose, lmk, prior,
                                               adv, img_adv, photo, dom)]
        return StepStats(self.step, *values, critic, domain_critic, lr, time.perf_counter() - start)

    def _domain_step(self, synthetic: torch.Tensor) -> float:
        """One step of the domain critic: real crops' features (no gradient to the regressor) vs rendered ones."""
        real = self.real_crops
        rows = torch.randint(0, len(real), (synthetic.shape[0],), generator=self.real_gen)
        with torch.no_grad():
            real_features = self.regressor.encode(real.crops[rows], real.landmarks[rows])[0]
        loss = critic_hinge_loss(self.domain(real_features), self.domain(synthetic))
        self.d_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.d_opt.step()
        return float(loss.detach())

    def _critic_step(self, expression, identity, crops, composite) -> float:
        if self.critic is None and self.patch is None:
            return 0.0
        loss = expression.new_zeros(())
        if self.critic is not None:
            real_e, real_i = self.real.sample(expression.shape[0], self.real_gen)
            loss = loss + critic_hinge_loss(self.critic(real_e, real_i), self.critic(expression, identity))
        if self.patch is not None:
            loss = loss + critic_hinge_loss(self.patch(crops), self.patch(composite))
        self.d_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.d_opt.step()
        return float(loss.detach())

    def state(self) -> dict:
        """Everything a resumed run needs (tensors, numbers and strings only: loads with ``weights_only``)."""
        return {
            "format": CHECKPOINT_FORMAT, "step": self.step, "config": self.config.to_json(),
            "regressor": self.regressor.state_dict(), "g_opt": self.g_opt.state_dict(),
            "schedule": self.schedule.state_dict(),
            "critic": self.critic.state_dict() if self.critic else {},
            "patch": self.patch.state_dict() if self.patch else {},
            "domain": self.domain.state_dict() if self.domain else {},
            "d_opt": self.d_opt.state_dict() if self.d_opt else {},
            "data_gen": self.data_gen.get_state(), "real_gen": self.real_gen.get_state(),
        }

    def load_state(self, state: dict, source: Path) -> None:
        """Continue from :meth:`state` output (raises :class:`TrainConfigError` on a different config)."""
        import json

        if state.get("format") != CHECKPOINT_FORMAT:
            raise TrainConfigError(f"{source} is not a facecast training checkpoint")
        changed = config_differences(json.loads(state["config"]), self.config)
        if changed:
            raise TrainConfigError(f"{source} was written with a different config ({', '.join(changed)} differ); "
                                   f"use the same config to resume, or start a new run without --resume")
        self.regressor.load_state_dict(state["regressor"])
        self.g_opt.load_state_dict(state["g_opt"])
        self.schedule.load_state_dict(state["schedule"])
        for name, part in (("critic", self.critic), ("patch", self.patch), ("domain", self.domain),
                           ("d_opt", self.d_opt)):
            if part is not None:
                part.load_state_dict(state[name])
        self.data_gen.set_state(state["data_gen"])
        self.real_gen.set_state(state["real_gen"])
        self.step = int(state["step"])


def real_samples(config: TrainConfig) -> FittedCoefficients | PriorCoefficients:
    """The coefficient critic's "real" samples: the configured file, else the synthetic prior."""
    if config.real_coefficients is None:
        return PriorCoefficients(config.data.identity_std, config.data.expression_channels)
    try:
        return FittedCoefficients.load(config.real_coefficients)
    except (OSError, ValueError, KeyError) as exc:
        raise TrainConfigError(f"real_coefficients: {exc}") from None


def rendered_pool(config: TrainConfig):
    """The configured render pool as one :class:`TrainBatch` and the real crops (each ``None`` when unset)."""
    from facecast.recon.learn.pool_files import PoolError, RealCrops, load_pool

    r = config.regressor
    try:
        pool = None if config.render_pool is None else load_pool(config.render_pool, r.crop_size, r.crop_scale)[0]
        real = None if config.real_crops is None else RealCrops.load(config.real_crops, r.crop_size)
    except PoolError as exc:
        raise TrainConfigError(str(exc)) from None
    return pool, real


def pseudo_batch(config: TrainConfig) -> TrainBatch | None:
    """The configured pseudo-labels as one landmark-only batch (``None`` without them)."""
    if config.pseudo_labels is None:
        return None
    from facecast.recon.learn.pseudo_labels import PseudoLabels

    try:
        labels = PseudoLabels.load(config.pseudo_labels)
    except ValueError as exc:
        raise TrainConfigError(f"pseudo_labels: {exc}") from None
    r = config.regressor
    return labels.training_batch(r.crop_size, r.crop_scale, r.focal_factor)


def train(config: TrainConfig, model: MorphableModel, texture: np.ndarray | None = None, mapping=None,
          log: Callable[[str], None] = print, resume: bool = False, stop_at: int | None = None) -> TrainResult:
    """Train a regressor on synthetic faces (see the module docstring).

    model: the full ICT model (float32). texture: ``(S, S, 3)`` uint8 ICT UV texture for the
    renders (S >= 512), needed when ``config.needs_renders``. mapping: the MediaPipe-478
    :class:`~facecast.recon.landmarks.correspondence.LandmarkMapping` (default: the shipped one).
    log: receives the progress lines. resume: continue from ``config.checkpoint`` when it
    exists. stop_at: stop after this step (as if interrupted; the learning-rate schedule
    still spans ``config.steps``).
    """
    if mapping is None:
        from facecast.recon.landmarks.correspondence import mediapipe478_mapping

        mapping = mediapipe478_mapping()
    trainer = Trainer(config, model, texture, mapping)
    checkpoint = Path(config.checkpoint) if config.checkpoint else None
    if resume and checkpoint is not None and checkpoint.is_file():
        trainer.load_state(load_checkpoint(checkpoint), checkpoint)
        log(f"resumed from {checkpoint} at step {trainer.step}")
    last = config.steps if stop_at is None else min(stop_at, config.steps)
    history: list[StepStats] = []
    while trainer.step < last:
        stats = trainer.train_step()
        history.append(stats)
        if stats.step % config.log_every == 0 or stats.step == last:
            log(stats.line(config.steps))
        if checkpoint is not None and (stats.step % config.checkpoint_every == 0 or stats.step == last):
            save_checkpoint(trainer.state(), checkpoint)
    return TrainResult(trainer.regressor.eval(), trainer.step, history)


