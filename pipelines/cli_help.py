"""The help texts ``facecast``'s commands share (:mod:`facecast.pipelines.cli`): what each option does and
what it costs; and the parsing of the mesh options several commands take."""

from __future__ import annotations

from facecast.pipelines.errors import UserError
from facecast.recon.model.topology import REGION_GROUPS, REGION_STARTS

REGION_HELP = (
    "Comma-separated parts of the head to export. Regions: " + ", ".join(REGION_STARTS)
    + ". Groups: " + "; ".join(f"{g} = {'+'.join(r)}" for g, r in REGION_GROUPS.items() if g != "all")
    + "; all = every region."
)
OUTPUT_HELP = "File to write: .glb, .obj (+ .mtl beside it) or .ply."
IDENTITY_HELP = "'random' or a JSON file holding {\"identity\": [100 numbers]}."
SEED_HELP = "Seed of a random identity (printed when not given)."
UNITS_HELP = "Units of OBJ and PLY outputs: m, cm or mm (GLB is always metres)."
NAMES_HELP = ("Morph target names of a GLB: arkit (the 52 exact ARKit shapes, for apps that drive faces by "
              "them: browInnerUp and cheekPuff whole, tongueOut from the ICT tongue) or ict (the 53 ICT channels, "
              "browInnerUpLeft/Right ...). Same size and cost.")
QUADS_HELP = "Keep the model's quads in OBJ/PLY (default: triangles, which every reader reads alike)."
ASSETS_HELP = ("Folder or .npz of the ICT model (default: $FACECAST_ASSETS, then the cache, "
                "then a download).")


MODE_HELP = ("accurate: landmark fit + photometric refinement through the renderer (default; ~3.7 s a "
              "photo on 2 CPU cores, texture and GLB included; the texture baked at up to 1024 texels). "
              "fast: the trained regressor alone (one forward pass; ~1.6 s a photo, most of it texture and GLB). "
              "refine: the regressor + 8 Levenberg-Marquardt steps of the landmark fit (~1.5 s a photo, "
              "as accurate on the landmarks, no photometric pass). fast and refine bake the texture at up "
              "to 512 texels (softer on large photos). Start-up adds ~6 s to one run; "
              "`facecast batch --job reconstruct` pays it once for many photos.")
TRACK_MODE_HELP = ("accurate: the landmark fit, Levenberg-Marquardt per 16-frame chunk with one identity and "
                    "frames tied to their neighbours (default; ~20 frames/s on 2 CPU cores once started). "
                    "fast: the trained regressor per frame (one forward pass; ~70 frames/s). "
                    "refine: the regressor + a few fit steps per chunk.")
FACE_HELP = "Which face when there are several: 0 = the largest, 1 = the next, ..."


def mesh_options(units: str, quads: bool, names: str = "arkit"):
    """:class:`~facecast.pipelines.export.layout.MeshOptions` of ``--units``, ``--quads`` and ``--names``;
    :class:`UserError` naming a bad value."""
    from facecast.pipelines.export.layout import UNIT_SCALE, MeshOptions

    if units not in UNIT_SCALE:
        raise UserError(f"--units must be one of {', '.join(UNIT_SCALE)}, got {units!r}")
    if names not in ("arkit", "ict"):
        raise UserError(f"--names must be arkit or ict, got {names!r}")
    return MeshOptions(units, quads, names)
