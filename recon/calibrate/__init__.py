"""Builders that regenerate the shipped landmark tables in ``weights/`` (slow; never run at inference).

- ``python -m facecast.recon.calibrate.mediapipe_table``: ``mediapipe478_ict.npz``, MediaPipe's
  canonical face registered onto the ICT mesh;
- ``python -m facecast.recon.calibrate.calibrated_table``: ``mediapipe478_ict_calibrated.npz``, that
  table re-chosen on rendered faces of known shape (and its optional view offsets);
- ``python -m facecast.recon.calibrate.ibug_table``: ``ibug68_ict.npz``, the iBUG-68 points chosen
  against the annotated LFPW photos.

Each takes ``--help``.
"""
