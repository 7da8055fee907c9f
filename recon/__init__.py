"""Faces in, coefficients out: the morphable model, landmarks, fitting and the learnt regressor.

Sub-packages, bottom to top (each imports only from those below it; import-linter checks it):

- :mod:`~facecast.recon.model`: the ICT Face Model Light as data and as a differentiable module
  (``MorphableModel``, ``FaceCoeffs``, ARKit names, regions, albedo model, rotations);
- :mod:`~facecast.recon.landmarks`: face detectors (MediaPipe 478, FAN 68), landmark schemes as
  points on the mesh (MediaPipe, iBUG-68) and their sparse evaluation, annotation readers;
- :mod:`~facecast.recon.fit`: analysis by synthesis: landmark fit, Levenberg-Marquardt refine,
  photometric fit through the renderer, video tracking, texture baking;
- :mod:`~facecast.recon.learn`: the GAN: regressor (generator), critics, losses, synthetic data,
  training, pseudo-labels, ONNX twin;
- :mod:`facecast.recon.photo`: photo -> coefficients in the three modes (``fast``, ``refine``,
  ``accurate``), built from all of the above;
- :mod:`~facecast.recon.calibrate`: builders that regenerate the shipped landmark tables
  (``python -m facecast.recon.calibrate.<name>``); nothing at inference imports them.

The names below are importable from here (``from facecast.recon import MorphableModel``)."""

from facecast.recon.exports import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "facecast.recon.model.morphable": ["MorphableModel"],
    "facecast.recon.model.coeffs": ["FaceCoeffs"],
    "facecast.recon.model.arkit": ["ARKIT_52", "to_arkit", "from_arkit"],
    "facecast.recon.landmarks.detector": ["DetectedFace", "NoFaceError"],
    "facecast.recon.landmarks.mediapipe_mesh": ["MediaPipeDetector"],
    "facecast.recon.fit.tracking": ["VideoTracker", "TrackConfig"],
    "facecast.recon.photo": ["PhotoReconstructor", "PhotoConfig", "PhotoResult", "MODES"],
})
