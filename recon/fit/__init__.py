"""Analysis by synthesis: coefficients fitted to landmarks and pixels.

- :mod:`.landmark_fit`: the landmark fit (PnP, rigid, then Adam on identity, expression and pose),
  ``LandmarkTarget``, ``FitConfig``, the default camera;
- :mod:`.levenberg_marquardt`: the ``refine`` mode's solver, warm-started from the regressor;
- :mod:`.photometric`: refinement through the differentiable renderer (light, albedo, shape);
- :mod:`.tracking`: ``VideoTracker``, one identity per clip and per-frame pose and expression;
- :mod:`.texture`: baking a UV face texture from the photo the face was fitted to."""

from facecast.recon.exports import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "facecast.recon.fit.landmark_fit": ["FitConfig", "LandmarkTarget", "fit_landmarks"],
    "facecast.recon.fit.levenberg_marquardt": ["SolverConfig", "refine_landmarks"],
    "facecast.recon.fit.photometric": ["PhotometricConfig", "PhotometricFitter"],
    "facecast.recon.fit.tracking": ["VideoTracker", "TrackConfig", "TrackedFrame", "FrameLandmarks"],
    "facecast.recon.fit.texture": ["TextureConfig", "TextureBaker", "bake_texture"],
})
