"""2D landmarks: detectors, and landmark schemes as points on the ICT mesh.

- :mod:`.detector`: ``DetectedFace``, the ``LandmarkDetector`` interface, face selection, the pixel
  convention; backends :mod:`.mediapipe_mesh` (478 points, default, offline) and :mod:`.fan` (68);
- :mod:`.correspondence`: MediaPipe-478 and iBUG-68 schemes as barycentric points on the mesh
  (``LandmarkMapping``), the jaw contour, the shipped tables;
- :mod:`.ibug`: the shipped iBUG-68 table chosen against 2D annotations;
- :mod:`.sparse`: ``SparseLandmarks``, evaluating only the vertices a mapping touches;
- :mod:`.evaluation`: annotation readers (``.pts``, AFLW2000 ``.mat``) and the NME;
- :mod:`.native_logs`: MediaPipe's native log lines kept off stderr."""

from facecast.recon.exports import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "facecast.recon.landmarks.detector": ["DetectedFace", "LandmarkDetector", "NoFaceError", "select_faces",
                                          "sort_faces", "faces_from_points"],
    "facecast.recon.landmarks.mediapipe_mesh": ["MediaPipeDetector", "MediaPipeConfig"],
    "facecast.recon.landmarks.fan": ["FanDetector", "FanConfig"],
    "facecast.recon.landmarks.correspondence": ["LandmarkMapping", "mediapipe478_mapping"],
    "facecast.recon.landmarks.sparse": ["SparseLandmarks"],
})
