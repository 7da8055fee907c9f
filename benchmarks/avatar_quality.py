"""Avatar quality as a viewer shows it: skin texture, seams and eyes of ``facecast reconstruct`` outputs.

Two steps, so that any version of facecast can be scored by the same code:

    # 1. reconstruct the photo set with the facecast on the path (accurate mode, as `facecast reconstruct`)
    FACECAST_ASSETS=../shared/assets python benchmarks/avatar_quality.py save out/after
    # 2. score one or more saved sets (e.g. a run of an older commit beside this one)
    FACECAST_ASSETS=../shared/assets python benchmarks/avatar_quality.py score out/before out/after \\
        --sheet avatar_quality.png --json avatar_quality.json

Per photo (``PHOTOS``: unevenly lit, turned > 30 degrees, a hand or hair over the face, dark and
light skin, glasses, and the built-in astronaut):

(a) ``photo_err``: mean absolute difference, 8-bit sRGB, between the photo and the avatar re-rendered
    in the photo's camera under the fitted light, over pixels of the face texture (``M_Face``) inside
    MediaPipe's face oval (occluders, which the texture leaves out, count); ``skin_err``: the same over
    the pixels that show the person's skin above the jaw line (their de-lit colour inside the skin
    colour model of (b); the neck is not taken from the photo by design);
(b) ``off_skin %``: share of the face texture's skin texels (albedo-model skin weight > 0.9, not
    lips or brows) whose chroma is more than 3 sigma from the person's skin colour, or whose L* lies
    over 15 outside its range; the person's skin colour is a
    :class:`~facecast.recon.fit.skin_colour.SkinColourModel` (chroma Gaussian, outliers beyond 2.5
    robust sigmas dropped: hands, hair, glasses; L* 2nd-98th percentile) of the photo's own skin: the
    photo at the skin texels seen inside MediaPipe's face oval, de-lit by the fitted shading with the
    baker's bounded de-lighting (:func:`facecast.recon.fit.texture.delight`, computed here from the
    geometry and the light, not taken from the baker), so that it is in the texture's units. A beard
    counts as off skin. Target <= 1 %;
(c) ``seam dE``: CIEDE2000 between the mean texture colour on the seen and the unseen side of the
    visibility boundary (texels visible from the photo's camera and facing it by > 0.3, computed here
    from the geometry, not taken from the baker), 6-texel bands, averaged along the boundary, over the
    skin texels of (b) less the eyelids and nostrils (:func:`~facecast.recon.fit.face_zones.feature_weight`:
    lash lines and nostrils are colour edges of their own, as lips and brows are); and
    ``back dE``: between the texture at the border with the back of the head and the back of the
    head's colour (target <= 3 for both);
(d) ``iris/sclera``: luminance ratio of the iris to the sclera in an unlit frontal render (target
    <= 0.6; 1.0 when no iris pixel shows) and ``iris dE``: CIEDE2000 of the rendered iris colour to
    the photo's iris colour (MediaPipe iris points).

``seconds``: the whole reconstruction of the photo in a warm pipeline (detect, fit, photometric pass,
texture, avatar; no file written); ``bake_s``: the texture bake alone (with the hand masks where
the version on the path finds hands and the background), timed again after it.

The contact sheet has one row per photo: the photo, the avatar over it, then front, three-quarter and
side views (lit by a soft key light) of each scored set by our renderer, and, when Blender is
installed, Blender's EEVEE front and three-quarter renders of the last set's GLB (its glTF importer,
its shaders: what a user opening the file sees).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from avatar_sheet import MESH_FIELDS, blender_views, cell, load_mesh, views  # benchmarks/ is sys.path[0]

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
PHOTOS = (
    "lfpw68-train/{0}", "lfpw68-train/{16}", "lfpw68-train/{27}", "lfpw68-train/{28}", "lfpw68-train/{29}",
    "lfpw68-train/{37}", "lfpw68-train/{48}", "lfpw68-train/{58}", "lfpw68-train/{70}", "lfpw68-train/{79}",
    "aflw2000/{3}", "aflw2000/{4}", "aflw2000/{8}", "aflw2000/{9}", "astronaut",
)
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
             148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)


def photo_paths(media: Path) -> list[tuple[str, Path | None]]:
    """``(name, path)`` of the set; ``{k}`` is the k-th photo of a folder by name; the astronaut has no path."""
    out = []
    for spec in PHOTOS:
        if spec == "astronaut":
            out.append(("astronaut", None))
            continue
        folder, index = spec.split("/")
        files = sorted((media / folder).glob("*.jpg"))
        path = files[int(index.strip("{}"))]
        out.append((f"{folder}-{path.stem}", path))
    return out


def save(folder: Path, media: Path) -> None:
    """Reconstruct every photo with the facecast on the path and save what scoring needs, one npz each."""
    import torch

    from facecast.pipelines.commands.reconstruct import PhotoPipeline, ReconstructConfig, load_photo
    from facecast.recon.model.morphable import MorphableModel

    folder.mkdir(parents=True, exist_ok=True)
    model = MorphableModel.load()
    with PhotoPipeline(model, ReconstructConfig()) as pipeline:
        for name, path in photo_paths(media):
            image, source = load_photo(path)
            start = time.perf_counter()
            rec = pipeline.run(image, source)
            seconds = time.perf_counter() - start
            start = time.perf_counter()
            # the texture bake alone, again, with the masks of what it leaves out (hands, background)
            if hasattr(pipeline, "hidden"):
                pipeline.baker.bake(rec.result.coeffs, image, pipeline.hidden(image))
            elif hasattr(pipeline, "hands"):
                pipeline.baker.bake(rec.result.coeffs, image, pipeline.hands.mask(image))
            else:
                pipeline.baker.bake(rec.result.coeffs, image)
            bake_seconds = time.perf_counter() - start
            mesh, c = rec.mesh, rec.result.coeffs
            with torch.no_grad():
                posed = (mesh.vertices + np.einsum("k,knd->nd", c.expression[0].double().numpy(),
                                                   mesh.morph_deltas.astype(np.float64)))
                from facecast.recon.model.geometry import apply_rigid

                posed = apply_rigid(torch.as_tensor(posed)[None], c.rotation.double(), c.translation.double())[0]
            colours = np.array([mesh.colour(k) for k in range(len(mesh.material_names))])
            np.savez_compressed(
                folder / f"{name}.npz", image=image, posed=posed.numpy(), material_colours=colours,
                material_names=np.array(mesh.material_names), texture=rec.texture,
                textured=np.array([t.material for t in mesh.textures]),
                points=rec.result.detected.points, focal=c.focal.numpy(), principal=c.principal.numpy(),
                lighting=c.lighting.numpy(), seconds=seconds, bake_seconds=bake_seconds,
                **{f: getattr(mesh, f) for f in MESH_FIELDS})
            print(f"{name}: {seconds:.1f} s, bake {bake_seconds:.2f} s", flush=True)


def _luminance(srgb: np.ndarray) -> np.ndarray:
    from facecast.recon.fit.skin_colour import srgb_to_linear

    return srgb_to_linear(srgb) @ np.array([0.2126, 0.7152, 0.0722])


def _lab(srgb: np.ndarray) -> np.ndarray:
    from facecast.recon.fit.skin_colour import srgb_to_lab

    return srgb_to_lab(np.asarray(srgb, np.float64))


class Scorer:
    """Scores saved reconstructions; holds the model and the texture's texel layout."""

    def __init__(self) -> None:
        import torch

        from facecast.recon.model.morphable import MorphableModel

        self.torch = torch
        self.model = MorphableModel.load()
        self._layouts: dict[int, tuple] = {}
        data = self.model.data
        from facecast.recon.fit.face_zones import feature_weight, jaw_weight
        from facecast.recon.model.albedo import region_weights

        self.vertex_extra = np.c_[region_weights(data)[:, 0], data.back_of_head_vertices(), jaw_weight(data),
                                  feature_weight(data)]

    def layout(self, size: int):
        from facecast.recon.fit.texture import texel_layout

        if size not in self._layouts:
            self._layouts[size] = texel_layout(self.model, size)
        return self._layouts[size]

    def score(self, saved) -> tuple[dict, dict]:
        """``(numbers, images)`` of one saved reconstruction."""
        import cv2

        from facecast.pipelines.export.avatar_view import render_avatar
        from facecast.recon.fit.skin_colour import SkinColourModel, ciede2000, srgb_to_linear
        from facecast.recon.fit.texture import TextureConfig, delight
        from facecast.recon.model.coeffs import coeffs_camera
        from facecast.recon.model.eyes import iris_colour

        torch = self.torch
        mesh, image, points = load_mesh(saved), saved["image"], saved["points"]
        names = list(mesh.material_names)
        height, width = image.shape[:2]
        camera = coeffs_camera(torch.as_tensor(saved["focal"]), torch.as_tensor(saved["principal"]), (height, width))
        posed = saved["posed"].astype(np.float32)
        lit, material = render_avatar(mesh, posed, camera, torch.as_tensor(saved["lighting"]))
        oval = np.zeros((height, width), np.uint8)
        cv2.fillPoly(oval, [np.round(points[list(FACE_OVAL)]).astype(np.int32)], 1)
        on_face = (material == names.index("M_Face")) & (oval > 0)
        photo_err = float(np.abs(lit[on_face] * 255 - image[on_face]).mean()) if on_face.any() else float("nan")
        box = points[list(FACE_OVAL)]
        texels = self.texels(saved, posed, camera, (height, width))
        texture = saved["texture"].reshape(-1, 3)[texels["pixel"]] / 255.0
        skin = texels["skin"] > 0.9
        # the person's skin colour, from the photo itself, in albedo units as the texture is: the photo at
        # the seen skin texels inside the face oval, de-lit by the fitted shading in linear colour and
        # bounded as the baker does it; the fit drops outliers (hands, hair, glasses) beyond 2.5 robust sigmas
        col, row = texels["image_pixel"].T
        photo = srgb_to_linear(image[row, col] / 255.0).astype(np.float32)
        seen = texels["seen"].astype(np.float64)
        delit, _ = delight(photo, texels["shade"], seen, texels["skin"], TextureConfig())
        reference = texels["seen"] & skin & (oval[row, col] > 0)
        skin_model = SkinColourModel.fit(_lab(np.clip(delit[reference], 0, 1)))
        off_skin = float(skin_model.outside(_lab(texture[skin]), 3.0, 15.0).mean())
        # (a) again on the photo's skin alone: pixels of seen skin texels whose de-lit colour is the person's
        shows_skin = np.zeros((height, width), bool)
        inside = reference & texels["above_jaw"] & ~skin_model.outside(_lab(np.clip(delit, 0, 1)), 3.0, 15.0)
        shows_skin[row[inside], col[inside]] = True
        shows_skin &= on_face
        skin_err = (float(np.abs(lit[shows_skin] * 255 - image[shows_skin]).mean()) if shows_skin.any()
                    else float("nan"))
        seam = self.seam(saved["texture"] / 255.0, texels, skin & ~texels["feature"])  # lashes are an edge too
        back_colour = np.array(mesh.colour(names.index("M_BackHead"))[:3]) if "M_BackHead" in names else None
        border = texels["border"] > 0.9
        back_de = (float(ciede2000(_lab(texture[border]), _lab(back_colour)).mean())
                   if back_colour is not None and border.any() else float("nan"))
        eye = self.eye(mesh, iris_colour(image, points))
        numbers = {"photo_err": photo_err, "skin_err": skin_err, "off_skin_pct": 100 * off_skin, "seam_de": seam,
                   "back_de": back_de, **eye, "seconds": float(saved["seconds"]),
                   "bake_s": float(saved["bake_seconds"]) if "bake_seconds" in saved else float("nan")}
        overlay = np.where((material >= 0)[..., None], lit, image / 255.0)
        return numbers, {"photo": image / 255.0, "overlay": overlay, "box": box}

    def texels(self, saved, posed: np.ndarray, camera, size: tuple[int, int]) -> dict:
        """Per-texel skin weight, border weight and whether the photo's camera saw it (geometry only)."""
        from facecast.render.interpolate import vertex_attributes_at
        from facecast.render.renderer import Renderer, RendererConfig
        from facecast.render.shading import irradiance, vertex_normals

        torch = self.torch
        fg, tris = self.layout(saved["texture"].shape[0])
        full = np.broadcast_to(posed.mean(0), (self.model.data.n_vertices, 3)).astype(np.float32)  # unused: finite
        full[saved["source_vertex_ids"]] = posed
        vertices = torch.as_tensor(full)[None]
        head = self.model.triangles(("head",))
        normals = vertex_normals(vertices, head)
        attrs = torch.cat([vertices, normals, torch.as_tensor(self.vertex_extra, dtype=torch.float32)[None]], -1)
        texel = vertex_attributes_at(attrs, tris, fg)
        position, normal = texel[:, :3], torch.nn.functional.normalize(texel[:, 3:6], dim=-1)
        pixels = camera.project(position[None])[0]
        depth = Renderer(RendererConfig(backend="torch", cull_backfaces=True))(
            vertices, head, camera, torch.zeros_like(vertices)).depth[0]
        col = pixels[:, 0].long().clamp(0, size[1] - 1)
        row = pixels[:, 1].long().clamp(0, size[0] - 1)
        visible = (depth[row, col] + position[:, 2]).abs() < 0.6
        facing = (-normal * torch.nn.functional.normalize(position, dim=-1)).sum(-1)
        shade = irradiance(normal[None], torch.as_tensor(saved["lighting"], dtype=torch.float32))[0]
        return {"pixel": fg.pixel.numpy(), "skin": texel[:, 6].numpy(), "border": texel[:, 7].numpy(),
                "above_jaw": texel[:, 8].numpy() > 0.99, "feature": texel[:, 9].numpy() > 0.5,
                "seen": (visible & (facing > 0.3)).numpy(), "image_pixel": torch.stack([col, row], -1).numpy(),
                "shade": shade.numpy()}

    def seam(self, texture: np.ndarray, texels: dict, skin: np.ndarray) -> float:
        """Mean CIEDE2000 across the seen / unseen boundary of the skin texels (6-texel bands)."""
        from facecast.recon.fit.skin_colour import seam_difference

        size = texture.shape[0]
        seen, unseen = np.zeros(size * size, bool), np.zeros(size * size, bool)
        seen[texels["pixel"][skin & texels["seen"]]] = True
        unseen[texels["pixel"][skin & ~texels["seen"]]] = True
        return seam_difference(texture, seen.reshape(size, size), unseen.reshape(size, size))

    def eye(self, mesh, photo_iris) -> dict:
        """Unlit frontal render: iris / sclera luminance ratio and iris colour difference to the photo."""
        from facecast.pipelines.export.avatar_view import render_avatar, turned, view_camera
        from facecast.recon.fit.skin_colour import ciede2000

        names = list(mesh.material_names)
        iris_ids = [names.index(n) for n in ("M_IrisLeft", "M_IrisRight") if n in names]
        sclera_ids = [names.index(n) for n in ("M_ScleraLeft", "M_ScleraRight") if n in names]
        vertices = turned(mesh.vertices, 0.0, 45.0)
        iris_vertices = np.unique(mesh.polygons[np.isin(mesh.face_material, iris_ids)].clip(0))
        centre = vertices[iris_vertices].mean(0)
        focal, side = 1500.0, 512
        principal = (side / 2 - focal * centre[0] / -centre[2], side / 2 + focal * centre[1] / -centre[2])
        image, material = render_avatar(mesh, vertices, view_camera((side, side), focal, principal))
        iris, sclera = np.isin(material, iris_ids), np.isin(material, sclera_ids)
        out = {"iris_px": int(iris.sum()), "iris_sclera": 1.0, "iris_de": float("nan")}
        if iris.any() and sclera.any():
            out["iris_sclera"] = float(np.median(_luminance(image[iris])) / max(np.median(_luminance(image[sclera])),
                                                                                  1e-6))
            if photo_iris is not None:
                out["iris_de"] = float(ciede2000(_lab(np.median(image[iris], 0)), _lab(np.array(photo_iris))))
        return out


def score(folders: list[Path], sheet: Path | None, report: Path | None, size: int = 224) -> None:
    """Print the table of every saved set; write the contact sheet and the JSON."""
    scorer = Scorer()
    results: dict[str, dict[str, dict]] = {}
    rows = []
    for npz in sorted(folders[0].glob("*.npz")):
        cells = []
        for k, folder in enumerate(folders):
            saved = np.load(folder / npz.name)
            numbers, images = scorer.score(saved)
            results.setdefault(npz.stem, {})[folder.name] = numbers
            if k == 0:
                cells += [cell(images["photo"], images["box"], size), cell(images["overlay"], images["box"], size)]
            else:
                cells.append(cell(images["overlay"], images["box"], size))
            cells += views(saved, size)
        rows.append(cells)
        print(npz.stem, json.dumps({f: {k: round(v, 3) for k, v in n.items()} for f, n in results[npz.stem].items()}),
              flush=True)
    keys = ("photo_err", "skin_err", "off_skin_pct", "seam_de", "back_de", "iris_sclera", "iris_de", "iris_px",
            "seconds", "bake_s")
    print(f"\n{'photo':34s} {'set':10s} " + " ".join(f"{k:>12s}" for k in keys))
    for photo, sets in results.items():
        for name, numbers in sets.items():
            print(f"{photo:34s} {name:10s} " + " ".join(f"{numbers[k]:12.2f}" for k in keys))
    for folder in folders:
        print(f"{'median':34s} {folder.name:10s} " + " ".join(
            f"{np.nanmedian([s[folder.name][k] for s in results.values()]):12.2f}" for k in keys))
    if sheet is not None:
        from PIL import Image

        blender = blender_views([np.load(folders[-1] / f"{photo}.npz") for photo in results], size)
        if blender is not None:  # Blender's EEVEE views of the last set's GLBs
            rows = [cells + views for cells, views in zip(rows, blender)]
        grid = np.concatenate([np.concatenate(cells, 1) for cells in rows], 0)
        Image.fromarray((np.clip(grid, 0, 1) * 255).astype(np.uint8)).save(sheet)
        print(f"contact sheet: {sheet} (photo, overlay + front / three-quarter / side per set: "
              f"{', '.join(f.name for f in folders)}"
              + (f"; Blender EEVEE front / three-quarter of {folders[-1].name})" if blender else ")"))
    if report is not None:
        report.write_text(json.dumps(results, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    save_parser = sub.add_parser("save", help="reconstruct the photo set with the facecast on the path")
    save_parser.add_argument("folder", type=Path)
    save_parser.add_argument("--media", type=Path, default=MEDIA)
    score_parser = sub.add_parser("score", help="score saved sets (the first one's photos)")
    score_parser.add_argument("folders", type=Path, nargs="+")
    score_parser.add_argument("--sheet", type=Path)
    score_parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.command == "save":
        save(args.folder, args.media)
    else:
        score(args.folders, args.sheet, args.json)


if __name__ == "__main__":
    sys.exit(main())
