"""facecast: face photos and video to animated 3D heads (ICT Face Model Light, 53 ARKit blendshapes).

The short Python API (each call does what the command of the same name does)::

    import facecast
    facecast.reconstruct("photo.jpg", "head.glb", mode="refine")        # -> [Path, ...]
    facecast.track("clip.mp4", "take/", mode="fast")                     # -> TrackSummary
    facecast.transfer("clip.mp4", "avatar.glb", "animated.glb")          # -> ([Path, ...], DriverTrack)
    for frame in facecast.live(0): ...                                   # camera 0 -> LiveFrame, live

``facecast.transfer`` is also the sub-package of the retargeting layer; calling it runs the
whole job (:func:`facecast.pipelines.api.transfer`). Importing ``facecast`` imports neither torch
nor MediaPipe: each function imports what it needs when it is called.

Sub-packages, top to bottom: :mod:`facecast.pipelines` (commands, batch, exporters),
:mod:`facecast.transfer` (retargeting), :mod:`facecast.recon` (model, landmarks, fitting, learning),
:mod:`facecast.render` (differentiable renderer); :mod:`facecast.weights` finds and verifies files.
"""

from __future__ import annotations

__all__ = ["__version__", "live", "reconstruct", "track", "transfer"]


def __getattr__(name: str):
    if name in ("reconstruct", "track", "live"):
        from facecast.pipelines import api

        return getattr(api, name)
    if name == "transfer":
        import facecast.transfer as package  # callable: see facecast/transfer/__init__.py

        return package
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("facecast")
        except PackageNotFoundError:  # a source tree that is not installed
            return "0.0.0+unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
