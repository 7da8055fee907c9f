"""``facecast avatar``: a neutral head of one identity with its blendshapes (registered by
:mod:`facecast.pipelines.cli`)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated

import typer

from facecast.pipelines.cli_help import (
    ASSETS_HELP,
    IDENTITY_HELP,
    NAMES_HELP,
    OUTPUT_HELP,
    QUADS_HELP,
    REGION_HELP,
    SEED_HELP,
    UNITS_HELP,
    mesh_options,
)
from facecast.pipelines.errors import UserError
from facecast.recon.model.topology import DEFAULT_AVATAR_REGIONS


def avatar_command(
    output: Annotated[Path, typer.Option("-o", "--output", help=OUTPUT_HELP)],
    identity: Annotated[str, typer.Option(help=IDENTITY_HELP)] = "random",
    seed: Annotated[int | None, typer.Option(help=SEED_HELP)] = None,
    regions: Annotated[str, typer.Option(help=REGION_HELP)] = ",".join(DEFAULT_AVATAR_REGIONS),
    units: Annotated[str, typer.Option(help=UNITS_HELP)] = "m",
    quads: Annotated[bool, typer.Option("--quads", help=QUADS_HELP)] = False,
    names: Annotated[str, typer.Option(help=NAMES_HELP)] = "arkit",
    assets: Annotated[Path | None, typer.Option(help=ASSETS_HELP)] = None,
) -> None:
    """Export a neutral head of one identity with its expression blendshapes.

    .glb (glTF 2.0, metres, +y up): one mesh with a primitive and a material per ICT
    material (skin, back of head, gums/tongue, teeth, sclera, iris, lashes), normals,
    UVs, and the 52 ARKit expressions as morph targets (weights 0; names in extras.targetNames;
    --names ict: ICT's 53), ready for Blender, Unity, three.js and other ARKit-driven tools.

    .obj/.ply: metres (--units), +y up, triangles (--quads keeps quads), normals and UVs; OBJ adds
    materials (.mtl), PLY a colour per vertex. Blendshapes are only in GLB.

    Random identities draw each of the 100 shape weights from N(0, 0.8^2), clipped to +-2.
    """
    from facecast.pipelines.export import check_output, write_mesh
    from facecast.pipelines.export.avatar import build_avatar, identity_from
    from facecast.recon.model.topology import expand_regions

    chosen = expand_regions([r for r in regions.split(",") if r.strip()])
    check_output(output)
    announce_seed = identity == "random" and seed is None
    if announce_seed:
        seed = secrets.randbelow(2**31)
    elif identity != "random" and seed is not None:
        raise UserError("--seed only applies to --identity random; drop it or use random")
    weights = identity_from(identity, seed)

    from facecast.recon.model.morphable import MorphableModel

    model = MorphableModel.load(assets)
    mesh = build_avatar(model, weights, chosen)
    written = write_mesh(mesh, output, mesh_options(units, quads, names))
    shapes = (f"{52 if names == 'arkit' else len(mesh.morph_names)} blendshapes as morph targets ({names} names)"
              if output.suffix.lower() == ".glb"
              else "no blendshapes (export .glb for them)")
    faces = f"{mesh.n_polygons} polygons" if quads and output.suffix.lower() != ".glb" else \
        f"{mesh.n_polygons + int(mesh.is_quad.sum())} triangles"
    typer.echo(f"wrote {', '.join(str(p) for p in written)}: {mesh.n_vertices} vertices, {faces}, {shapes}")
    if announce_seed:
        typer.echo(f"identity: random, seed {seed} (pass --seed {seed} to repeat it)")
