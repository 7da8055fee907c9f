"""What each ``facecast`` command does, one module each, callable from Python.

- :mod:`.reconstruct`: photo -> textured avatar (GLB/OBJ/PLY + JSON + preview);
- :mod:`.track`: video -> meshes, ARKit weights, head pose, landmarks (:mod:`.smoothing` for ``fast``);
- :mod:`.transfer`: a driver video's expressions onto a target avatar;
- :mod:`.train`: training the regressor; :mod:`.label`: pseudo-labels from real faces.

The command-line options of each are in :mod:`facecast.pipelines.cli`.
"""
