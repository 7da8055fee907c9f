"""The GAN: a regressor (generator) from a face crop + landmarks to coefficients, and its training.

- :mod:`.regressor`: ``Regressor``, its config, weights on disk (safetensors); :mod:`.nets` its
  building blocks; :mod:`.inputs` what it sees and how its pose maps back to the image camera;
- :mod:`.critics`: the coefficient and patch critics and the adversarial losses; :mod:`.losses` the rest;
- :mod:`.synthetic`: ICT heads rendered with known truth; :mod:`.train_data` batches of them;
- :mod:`.training`, :mod:`.train_config`: resumable training on the CPU;
- :mod:`.pseudo_labels`: real faces with fitted coefficients, for self-supervised fine-tuning;
- :mod:`.onnx_twin`: the regressor exported to ONNX and run by onnxruntime."""

from facecast.recon.exports import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "facecast.recon.learn.regressor": ["Regressor", "RegressorConfig", "load_regressor", "save_regressor",
                                       "shipped_regressor_path"],
    "facecast.recon.learn.train_config": ["TrainConfig", "load_train_config"],
    "facecast.recon.learn.training": ["train"],
})
