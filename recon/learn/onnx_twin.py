"""The regressor's ONNX twin: same inputs, same :class:`FaceCoeffs`, no PyTorch graph at run time.

:func:`export_onnx` writes the network (crops + landmarks -> flat parameters, batch
dimension dynamic) with the :class:`RegressorConfig` in the model's metadata;
:class:`OnnxRegressor` runs it with onnxruntime and converts the flat output exactly as
:meth:`Regressor.regress` does. Needs ``pip install facecast[onnx]``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from facecast.recon.learn.inputs import N_LANDMARKS, RegressorInputs, prepare_inputs
from facecast.recon.learn.regressor import Regressor, RegressorConfig, RegressorOutput, WeightsError, coeffs_from_output
from facecast.recon.model.coeffs import FaceCoeffs

CONFIG_KEY = "facecast.regressor_config"
OPSET = 17


class _Export(torch.nn.Module):
    """The regressor with exactly the inputs it uses (ONNX has no optional inputs)."""

    def __init__(self, regressor: Regressor) -> None:
        super().__init__()
        self.regressor = regressor

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.regressor.config.image_branch:
            return self.regressor(*inputs)
        return self.regressor(None, inputs[0])


def input_names(config: RegressorConfig) -> list[str]:
    """``["crops", "landmarks"]``, or ``["landmarks"]`` for a landmark-only regressor."""
    return ["crops", "landmarks"] if config.image_branch else ["landmarks"]


def export_onnx(regressor: Regressor, path: str | Path, opset: int = OPSET) -> Path:
    """Write ``regressor`` as ONNX: inputs ``crops (B, 3, S, S)`` (image branch only) and
    ``landmarks (B, 478, 2)``, output ``params (B, P)``; ``B`` is dynamic."""
    import onnx

    config = regressor.config
    s = config.crop_size
    example = {"crops": torch.rand(1, 3, s, s), "landmarks": torch.rand(1, N_LANDMARKS, 2) * 2 - 1}
    names = input_names(config)
    path = Path(path)
    was_training = regressor.training
    regressor.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(_Export(regressor), tuple(example[n] for n in names), str(path), dynamo=False,
                              input_names=names, output_names=["params"], opset_version=opset,
                              dynamic_axes={n: {0: "batch"} for n in names + ["params"]})
    finally:
        regressor.train(was_training)
    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = CONFIG_KEY, config.to_json()
    onnx.save(model, str(path))
    return path


class OnnxRegressor:
    """An exported regressor run by onnxruntime, with the interface of :class:`Regressor` for inference."""

    def __init__(self, path: str | Path) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        if CONFIG_KEY not in meta:
            raise WeightsError(f"{path} is not a facecast regressor export (no {CONFIG_KEY} metadata)")
        self.config = RegressorConfig.from_json(meta[CONFIG_KEY])

    def __call__(self, crops: torch.Tensor | None, landmarks: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`Regressor.forward`: ``(B, 3, S, S)``, ``(B, 478, 2)`` -> ``(B, P)``."""
        feed = {"landmarks": landmarks.detach().cpu().numpy().astype(np.float32)}
        if self.config.image_branch:
            if crops is None:
                raise ValueError("this regressor has an image branch: crops are required")
            feed["crops"] = crops.detach().cpu().numpy().astype(np.float32)
        return torch.from_numpy(self.session.run(["params"], feed)[0])

    def regress(self, inputs: RegressorInputs) -> FaceCoeffs:
        """Prepared inputs -> :class:`FaceCoeffs` (see :meth:`Regressor.regress`)."""
        flat = self(inputs.crops, inputs.landmarks)
        return coeffs_from_output(RegressorOutput.from_flat(flat, self.config.albedo_regions), inputs, self.config)

    def predict(self, faces: list, images: list[np.ndarray]) -> FaceCoeffs:
        """See :meth:`Regressor.predict`."""
        inputs = prepare_inputs(faces, images, self.config.crop_size, self.config.crop_scale,
                                with_crops=self.config.image_branch)
        return self.regress(inputs)
