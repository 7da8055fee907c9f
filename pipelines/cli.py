"""The ``facecast`` command line.

Every command follows the user-error convention of :mod:`facecast.pipelines.errors`
(one ``error: ...`` line, exit status 2, no traceback); decorate commands with
:func:`~facecast.pipelines.errors.user_errors`.

Heavy modules (torch, the model, exporters) are imported inside the commands so
that ``facecast --help`` stays fast.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import Annotated

import typer

from facecast.pipelines.errors import (USER_ERROR_EXIT, UserError, is_user_error, report_user_error,
                                       user_errors)
from facecast.recon.topology import DEFAULT_AVATAR_REGIONS, REGION_GROUPS, REGION_STARTS

app = typer.Typer(
    name="facecast", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    help="Turn face photos and video into animated 3D heads (ICT Face Model Light, "
         "53 ARKit-named blendshapes).",
)


@app.callback()
def _root() -> None:
    """Turn face photos and video into animated 3D heads (ICT Face Model Light, 53 ARKit blendshapes)."""


_REGION_HELP = (
    "Comma-separated parts of the head to export. Regions: " + ", ".join(REGION_STARTS)
    + ". Groups: " + "; ".join(f"{g} = {'+'.join(r)}" for g, r in REGION_GROUPS.items() if g != "all")
    + "; all = every region."
)
_OUTPUT_HELP = "File to write: .glb, .obj (+ .mtl beside it) or .ply."
_IDENTITY_HELP = "'random' or a JSON file holding {\"identity\": [100 numbers]}."
_SEED_HELP = "Seed of a random identity (printed when not given)."
_ASSETS_HELP = ("Folder or .npz of the ICT model (default: $FACECAST_ASSETS, then the cache, "
                "then a download).")


@app.command()
@user_errors
def avatar(
    output: Annotated[Path, typer.Option("-o", "--output", help=_OUTPUT_HELP)],
    identity: Annotated[str, typer.Option(help=_IDENTITY_HELP)] = "random",
    seed: Annotated[int | None, typer.Option(help=_SEED_HELP)] = None,
    regions: Annotated[str, typer.Option(help=_REGION_HELP)] = ",".join(DEFAULT_AVATAR_REGIONS),
    assets: Annotated[Path | None, typer.Option(help=_ASSETS_HELP)] = None,
) -> None:
    """Export a neutral head of one identity with its 53 expression blendshapes.

    .glb (glTF 2.0, metres, +y up): one mesh with a primitive and a material per ICT
    material (skin, back of head, gums/tongue, teeth, sclera, iris, lashes), normals,
    UVs, and the 53 ARKit-named expressions as morph targets (weights 0; names in
    extras.targetNames), ready for Blender, Unity, three.js and other ARKit-driven tools.

    .obj/.ply: centimetres, +y up, quads kept; OBJ adds UVs and materials (.mtl).
    Blendshapes are only in GLB.

    Random identities draw each of the 100 shape weights from N(0, 0.8^2), clipped to +-2.
    """
    from facecast.pipelines.avatar import build_avatar, identity_from
    from facecast.pipelines.export import check_output, write_mesh
    from facecast.recon.topology import expand_regions

    chosen = expand_regions([r for r in regions.split(",") if r.strip()])
    check_output(output)
    announce_seed = identity == "random" and seed is None
    if announce_seed:
        seed = secrets.randbelow(2**31)
    elif identity != "random" and seed is not None:
        raise UserError("--seed only applies to --identity random; drop it or use random")
    weights = identity_from(identity, seed)

    from facecast.recon.model import MorphableModel

    model = MorphableModel.load(assets)
    mesh = build_avatar(model, weights, chosen)
    written = write_mesh(mesh, output)
    shapes = (f"{len(mesh.morph_names)} blendshapes as morph targets" if output.suffix.lower() == ".glb"
              else "no blendshapes (export .glb for them)")
    typer.echo(f"wrote {', '.join(str(p) for p in written)}: {mesh.n_vertices} vertices, "
               f"{mesh.n_polygons} polygons, {shapes}")
    if announce_seed:
        typer.echo(f"identity: random, seed {seed} (pass --seed {seed} to repeat it)")


def _register_commands() -> None:
    from facecast.pipelines import commands

    app.command("reconstruct")(commands.reconstruct)
    app.command("track")(commands.track)
    app.command("transfer")(commands.transfer)
    app.command("train")(commands.train)
    app.command("label")(commands.label)
    from facecast.pipelines.batch import batch_command

    app.command("batch")(user_errors(batch_command))


_register_commands()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``facecast = facecast.pipelines.cli:main``)."""
    try:
        app(args=argv, prog_name="facecast")
    except Exception as exc:
        if not is_user_error(exc):
            raise
        report_user_error(exc)
        sys.exit(USER_ERROR_EXIT)
