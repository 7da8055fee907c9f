"""GLB (binary glTF 2.0) bytes for an :class:`~facecast.pipelines.export.avatar.AvatarMesh`.

What the file holds:

* one scene with one node ``avatar`` and one mesh, made of one triangle primitive
  per ICT material (``M_Face``, ``M_BackHead``, ``M_Teeth``, ...);
* units are **metres** as glTF requires (the cm of the mesh divided by 100),
  +y up, +z towards the viewer (the glTF convention, so no rotation is needed);
* per primitive ``POSITION`` (with min/max), ``NORMAL`` (area-weighted smooth
  normals computed on the whole avatar before the split, so they agree across
  UV seams and material borders) and ``TEXCOORD_0`` (the ICT UVs, v flipped for
  glTF: ``v_gltf = 1 - v``; u keeps its UDIM-like tile 0-7); vertices are split
  where a vertex has several UVs;
* every mesh blendshape as a morph target on every primitive: by default the 52 exact
  ARKit shapes (:mod:`~facecast.pipelines.export.arkit_morphs`), or the 53 ICT channels
  (``GltfOptions(names="ict")``); POSITION deltas in metres, names in ``mesh.extras.targetNames``
  (read by Blender, three.js, Babylon, Unity importers), default ``weights`` all 0;
  a target is stored sparse when that is smaller (most shapes move a part of the
  head) and as an accessor without data (all zeros) where it does not move the part;
* a material per ICT material (metallic-roughness, base colour factor from
  :data:`~facecast.pipelines.export.avatar.MATERIAL_COLOURS`), optionally with a PNG base
  colour texture per material (:class:`MaterialTexture`, for photo textures).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pygltflib as gl

from facecast.pipelines.export.arkit_morphs import check_names, with_arkit_names
from facecast.pipelines.export.avatar import AvatarMesh, MaterialTexture
from facecast.recon.model.topology import triangulate

#: glTF lengths are metres, AvatarMesh lengths are cm.
METRES_PER_CM = 0.01
ROUGHNESS = {"M_Teeth": 0.3, "M_ScleraLeft": 0.15, "M_ScleraRight": 0.15, "M_IrisLeft": 0.15,
             "M_IrisRight": 0.15, "M_LacrimalFluid": 0.05}
DOUBLE_SIDED = ("M_EyeLashes", "M_EyeOcclusion", "M_EyeBlend", "M_LacrimalFluid")


@dataclass(frozen=True)
class GltfOptions:
    """Options of :func:`export_glb`.

    textures: base colour textures, at most one per material, in addition to the
        mesh's own ``textures``; they are sampled with the glTF UVs (wrap REPEAT, so
        tile k of u maps onto the same image).
    sparse_targets: store morph targets sparse where that is smaller.
    min_delta: metres; morph target offsets shorter than this are stored as 0. The
        default 0 keeps every offset exactly; 1e-5 (10 micrometres, far below what
        shows) drops ICT's float16 noise and makes a default avatar ~40% smaller.
    names: ``"arkit"``: the 52 exact ARKit targets (:mod:`~facecast.pipelines.export.arkit_morphs`);
        ``"ict"``: the mesh's own 53 ICT channels.
    """

    textures: tuple[MaterialTexture, ...] = ()
    sparse_targets: bool = True
    min_delta: float = 0.0
    names: str = "arkit"

    def __post_init__(self) -> None:
        check_names(self.names)
        if not (self.min_delta >= 0.0 and np.isfinite(self.min_delta)):
            raise ValueError(f"min_delta must be a finite length >= 0 (metres), got {self.min_delta}")


@dataclass(frozen=True)
class Primitive:
    """The vertices of one material split at UV seams.

    source: ``(U,)`` index into the mesh vertices; uv: ``(U,)`` index into mesh UVs;
    triangles: ``(T, 3)`` indices into these U vertices.
    """

    material: int
    source: np.ndarray
    uv: np.ndarray
    triangles: np.ndarray


def split_primitives(mesh: AvatarMesh) -> list[Primitive]:
    """One :class:`Primitive` per used material, one vertex per (vertex, uv) pair."""
    out = []
    for material in range(len(mesh.material_names)):
        chosen = mesh.face_material == material
        if not chosen.any():
            continue
        corners_v = triangulate(mesh.polygons[chosen]).ravel()
        corners_t = triangulate(mesh.face_uvs[chosen]).ravel()
        keys = corners_v * len(mesh.uvs) + corners_t
        unique, inverse = np.unique(keys, return_inverse=True)
        out.append(Primitive(material, unique // len(mesh.uvs), unique % len(mesh.uvs),
                             inverse.reshape(-1, 3)))
    return out


class _Blob:
    """The GLB binary chunk under construction: 4-byte aligned buffer views."""

    def __init__(self, gltf: gl.GLTF2) -> None:
        self.gltf = gltf
        self.parts: list[bytes] = []
        self.length = 0
        self.zeros: dict[int, int] = {}  # vertex count -> a view of zero VEC3s, the sparse targets' base

    def view(self, data: bytes, target: int | None = None) -> int:
        self.gltf.bufferViews.append(gl.BufferView(buffer=0, byteOffset=self.length,
                                                   byteLength=len(data), target=target))
        padding = -len(data) % 4
        self.parts.append(data + b"\0" * padding)
        self.length += len(data) + padding
        return len(self.gltf.bufferViews) - 1

    def accessor(self, array: np.ndarray, kind: str, target: int | None = None,
                 bounds: bool = False) -> int:
        """An accessor over ``array`` (float32 VEC2/VEC3 or uint SCALAR) in a new view."""
        component = {np.dtype(np.float32): gl.FLOAT, np.dtype(np.uint16): gl.UNSIGNED_SHORT,
                     np.dtype(np.uint32): gl.UNSIGNED_INT}[array.dtype]
        accessor = gl.Accessor(bufferView=self.view(np.ascontiguousarray(array).tobytes(), target),
                               componentType=component, count=len(array), type=kind)
        if bounds:
            accessor.min, accessor.max = _bounds(array)
        self.gltf.accessors.append(accessor)
        return len(self.gltf.accessors) - 1

    def sparse_accessor(self, dense: np.ndarray, moving: np.ndarray) -> int:
        """A VEC3 float accessor of ``dense (U, 3)`` storing only the rows ``moving (U,)``."""
        rows = np.flatnonzero(moving)
        # the base is all zeros; glTF allows leaving it out, but assimp (Open3D) then refuses the file, so
        # every sparse target of a vertex count shares one zero view
        if len(dense) not in self.zeros:
            self.zeros[len(dense)] = self.view(bytes(12 * len(dense)), gl.ARRAY_BUFFER)
            self.gltf.bufferViews[-1].byteStride = 12  # shared by several accessors
        accessor = gl.Accessor(bufferView=self.zeros[len(dense)], componentType=gl.FLOAT, count=len(dense),
                               type=gl.VEC3)
        accessor.min, accessor.max = _bounds(dense)
        if len(rows):
            index_type = np.uint16 if len(dense) <= 65535 else np.uint32
            indices = gl.AccessorSparseIndices(bufferView=self.view(rows.astype(index_type).tobytes()),
                                               componentType=_component(index_type))
            values = gl.AccessorSparseValues(bufferView=self.view(dense[rows].tobytes()))
            accessor.sparse = gl.Sparse(count=len(rows), indices=indices, values=values)
        self.gltf.accessors.append(accessor)
        return len(self.gltf.accessors) - 1

    def finish(self) -> bytes:
        blob = b"".join(self.parts)
        self.gltf.buffers.append(gl.Buffer(byteLength=len(blob)))
        self.gltf.set_binary_blob(blob)
        return blob


def _component(dtype: type) -> int:
    return gl.UNSIGNED_SHORT if np.dtype(dtype) == np.uint16 else gl.UNSIGNED_INT


def _bounds(array: np.ndarray) -> tuple[list[float], list[float]]:
    return ([float(x) for x in array.min(axis=0)], [float(x) for x in array.max(axis=0)])


def _target_accessor(blob: _Blob, delta: np.ndarray, options: GltfOptions) -> int:
    """A morph target POSITION accessor for ``delta (U, 3)`` float32 metres."""
    moving = (delta != 0).any(axis=1)
    if options.min_delta > 0:
        moving &= np.linalg.norm(delta, axis=1) >= options.min_delta
        delta = np.where(moving[:, None], delta, np.float32(0.0))
    index_size = 2 if len(delta) <= 65535 else 4
    if options.sparse_targets and moving.sum() * (12 + index_size) < len(delta) * 12:
        return blob.sparse_accessor(delta, moving)
    return blob.accessor(delta, gl.VEC3, gl.ARRAY_BUFFER, bounds=True)


def _primitive(blob: _Blob, mesh: AvatarMesh, part: Primitive, normals: np.ndarray,
               options: GltfOptions) -> gl.Primitive:
    positions = (mesh.vertices[part.source] * np.float32(METRES_PER_CM)).astype(np.float32)
    uv = mesh.uvs[part.uv].astype(np.float32)
    uv[:, 1] = 1.0 - uv[:, 1]
    attributes = gl.Attributes(
        POSITION=blob.accessor(positions, gl.VEC3, gl.ARRAY_BUFFER, bounds=True),
        NORMAL=blob.accessor(normals[part.source], gl.VEC3, gl.ARRAY_BUFFER),
        TEXCOORD_0=blob.accessor(uv, gl.VEC2, gl.ARRAY_BUFFER))
    index_type = np.uint16 if len(part.source) <= 65535 else np.uint32
    indices = blob.accessor(part.triangles.ravel().astype(index_type), gl.SCALAR,
                            gl.ELEMENT_ARRAY_BUFFER)
    deltas = (mesh.morph_deltas[:, part.source] * np.float32(METRES_PER_CM)).astype(np.float32)
    targets = [gl.Attributes(POSITION=_target_accessor(blob, delta, options))
               for delta in deltas]
    return gl.Primitive(attributes=attributes, indices=indices, material=part.material,
                        targets=targets, mode=gl.TRIANGLES)


def _linear(srgb: float) -> float:
    """sRGB component -> linear (glTF colour factors are linear)."""
    return srgb / 12.92 if srgb <= 0.04045 else ((srgb + 0.055) / 1.055) ** 2.4


def _material(blob: _Blob, mesh: AvatarMesh, material: int, png: bytes | None) -> gl.Material:
    name = mesh.material_names[material]
    r, g, b, opacity = mesh.colour(material)
    pbr = gl.PbrMetallicRoughness(baseColorFactor=[_linear(r), _linear(g), _linear(b), opacity],
                                  metallicFactor=0.0, roughnessFactor=ROUGHNESS.get(name, 0.6))
    if png is not None:
        gltf = blob.gltf
        gltf.images.append(gl.Image(bufferView=blob.view(png), mimeType=gl.IMAGEPNG, name=name))
        if not gltf.samplers:
            gltf.samplers.append(gl.Sampler(magFilter=gl.LINEAR, minFilter=gl.LINEAR_MIPMAP_LINEAR))
        gltf.textures.append(gl.Texture(sampler=0, source=len(gltf.images) - 1))
        pbr.baseColorTexture = gl.TextureInfo(index=len(gltf.textures) - 1)
        pbr.baseColorFactor = [1.0, 1.0, 1.0, opacity]
    return gl.Material(name=name, pbrMetallicRoughness=pbr, doubleSided=name in DOUBLE_SIDED,
                       alphaMode=gl.BLEND if opacity < 1.0 else gl.OPAQUE)


def _textures_by_material(mesh: AvatarMesh, options: GltfOptions) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for texture in (*mesh.textures, *options.textures):
        if texture.material not in mesh.material_names:
            raise ValueError(f"texture for unknown material {texture.material!r}; "
                             f"the mesh has {', '.join(mesh.material_names)}")
        if texture.material in found:
            raise ValueError(f"two textures for material {texture.material!r}")
        if not texture.png.startswith(b"\x89PNG\r\n\x1a\n"):
            raise ValueError(f"texture for {texture.material!r} is not PNG data")
        found[texture.material] = texture.png
    return found


def export_glb(mesh: AvatarMesh, options: GltfOptions = GltfOptions()) -> bytes:
    """GLB bytes of ``mesh`` with its blendshapes as morph targets (see the module doc)."""
    if options.names == "arkit":
        mesh = with_arkit_names(mesh)
    textures = _textures_by_material(mesh, options)
    gltf = gl.GLTF2(asset=gl.Asset(generator="facecast", version="2.0"))
    blob = _Blob(gltf)
    normals = mesh.vertex_normals()
    primitives = [_primitive(blob, mesh, part, normals, options) for part in split_primitives(mesh)]
    gltf.materials = [_material(blob, mesh, k, textures.get(name))
                      for k, name in enumerate(mesh.material_names)]
    gltf.meshes.append(gl.Mesh(name="avatar", primitives=primitives,
                               weights=[0.0] * len(mesh.morph_names),
                               extras={"targetNames": list(mesh.morph_names)}))
    gltf.nodes.append(gl.Node(name="avatar", mesh=0))
    gltf.scenes.append(gl.Scene(name="facecast", nodes=[0]))
    gltf.scene = 0
    blob.finish()
    return b"".join(gltf.save_to_bytes())


def _srgb(linear: float) -> float:
    """Linear colour component -> sRGB (the inverse of :func:`_linear`)."""
    return linear * 12.92 if linear <= 0.0031308 else 1.055 * linear ** (1 / 2.4) - 0.055


def read_appearance(data: bytes) -> tuple[tuple[MaterialTexture, ...], dict[str, tuple[float, ...]]]:
    """The look of a GLB written by :func:`export_glb`: ``(textures, {material: sRGB + opacity})``, the
    base colour PNG of each textured material and the colour of each untextured one (``ValueError``
    when ``data`` is not such a GLB)."""
    gltf = gl.GLTF2.load_from_bytes(data)
    blob = gltf.binary_blob() or b""
    textures, colours = [], {}
    for material in gltf.materials:
        pbr = material.pbrMetallicRoughness
        if pbr is None or material.name is None:
            continue
        factor = pbr.baseColorFactor or [1.0, 1.0, 1.0, 1.0]
        if pbr.baseColorTexture is None:
            colours[material.name] = (*(_srgb(c) for c in factor[:3]), factor[3])
            continue
        image = gltf.images[gltf.textures[pbr.baseColorTexture.index].source]
        view = gltf.bufferViews[image.bufferView]
        start = view.byteOffset or 0
        textures.append(MaterialTexture(material.name, blob[start:start + view.byteLength]))
    return tuple(textures), colours
