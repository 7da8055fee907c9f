"""Differentiable rendering of triangle meshes: it knows cameras, triangles and light, not faces.

- :mod:`.renderer`: ``Renderer`` (rasterize, interpolate, shade; pure PyTorch, or pytorch3d when
  installed, see :mod:`.backends`); :mod:`.rasterize` and :mod:`.rasterize_reference` the rasterizers;
- :mod:`.cameras`, :mod:`.interpolate`, :mod:`.shading` (SH Lambertian, UV textures),
  :mod:`.silhouette` (soft masks), :mod:`.validation` (shape checks at the boundary);
- :mod:`.preview`: PNG/MP4 previews.
"""
