"""The ICT Face Model Light (26,719 vertices in cm, 100 identity modes, 53 ARKit-named expressions).

- :mod:`.morphable`: ``MorphableModel``, coefficients -> vertices (a differentiable ``nn.Module``);
- :mod:`.coeffs`: ``FaceCoeffs``, everything that describes one face in one image, and the camera
  and pixel conventions every other module follows;
- :mod:`.topology`: the mesh as data (``ICTData``), regions, triangulation;
- :mod:`.arkit`: ARKit names and the map between ICT's 53 shapes and ARKit's 52;
- :mod:`.albedo`: a low-dimensional albedo (skin, lips, brows, eyes, ...) for the ICT head;
- :mod:`.geometry`: differentiable rotations."""

from facecast.recon.exports import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "facecast.recon.model.morphable": ["MorphableModel", "FaceOutput"],
    "facecast.recon.model.coeffs": ["FaceCoeffs", "PIXEL_OFFSET", "project_points", "coeffs_camera"],
    "facecast.recon.model.topology": ["ICTData", "load_ict_data", "triangulate", "REGION_STARTS",
                                      "DEFAULT_AVATAR_REGIONS"],
    "facecast.recon.model.arkit": ["ARKIT_52", "to_arkit", "from_arkit"],
    "facecast.recon.model.albedo": ["AlbedoModel"],
})
