"""A face-capture app's GLB, built here: a head mesh with ARKit-named morph targets in a parent turned
90 degrees (a z-up scene under y-up glTF), the node's origin 1.6 m below the head, eyes and teeth as
separate meshes beside it; and a driver that turns the head."""

from __future__ import annotations

import numpy as np
import pygltflib as gl
from scipy.spatial.transform import Rotation

from facecast.recon.model.arkit import ARKIT_52

FPS = 30.0
TURNED = Rotation.from_euler("x", -90, degrees=True)  # z-up scene under a y-up glTF
HEAD_CENTRE = np.array([0.0, 0.0, 1.6])               # in the parent's (z-up) frame: 1.6 m above the origin
PARTS = {"EyeLeft": (0.032, -0.085, 1.63), "EyeRight": (-0.032, -0.085, 1.63), "Teeth": (0.0, -0.075, 1.55)}


def _sphere(radius: float, centre=(0.0, 0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=2, radius=radius)
    return (np.asarray(sphere.vertices) + centre).astype(np.float32), np.asarray(sphere.faces, np.uint16)


def capture_glb(shapes: tuple[str, ...] = ARKIT_52) -> bytes:
    gltf = gl.GLTF2(asset=gl.Asset(version="2.0"), scene=0, scenes=[gl.Scene(nodes=[0])])
    blob = bytearray()

    def accessor(array: np.ndarray, kind: str, target: int | None, bounds: bool = False) -> int:
        data = np.ascontiguousarray(array).tobytes()
        gltf.bufferViews.append(gl.BufferView(buffer=0, byteOffset=len(blob), byteLength=len(data), target=target))
        blob.extend(data + b"\0" * (-len(data) % 4))
        component = gl.FLOAT if array.dtype == np.float32 else gl.UNSIGNED_SHORT
        item = gl.Accessor(bufferView=len(gltf.bufferViews) - 1, componentType=component, count=len(array),
                           type=kind)
        if bounds:
            item.min, item.max = array.min(0).tolist(), array.max(0).tolist()
        gltf.accessors.append(item)
        return len(gltf.accessors) - 1

    def mesh(vertices, faces, targets=()) -> int:
        attributes = gl.Attributes(POSITION=accessor(vertices, gl.VEC3, gl.ARRAY_BUFFER, bounds=True))
        primitive = gl.Primitive(attributes=attributes, indices=accessor(faces.ravel(), gl.SCALAR,
                                                                         gl.ELEMENT_ARRAY_BUFFER))
        if targets:
            primitive.targets = [gl.Attributes(POSITION=accessor(d, gl.VEC3, gl.ARRAY_BUFFER, bounds=True))
                                 for d in targets]
        gltf.meshes.append(gl.Mesh(primitives=[primitive], weights=[0.0] * len(targets) or None,
                                   extras={"targetNames": [f"blendShape1.{n}" for n in shapes]} if targets else {}))
        return len(gltf.meshes) - 1

    head_v, head_f = _sphere(0.1, HEAD_CENTRE)  # the vertices sit 1.6 m from the node's origin
    rng = np.random.default_rng(0)
    deltas = [(rng.normal(size=head_v.shape) * 0.002).astype(np.float32) for _ in shapes]
    gltf.nodes.append(gl.Node(name="Armature", rotation=TURNED.as_quat().tolist(), children=[1, 2, 3, 4]))
    gltf.nodes.append(gl.Node(name="HeadMesh", mesh=mesh(head_v, head_f, deltas)))
    for name, centre in PARTS.items():
        gltf.nodes.append(gl.Node(name=name, mesh=mesh(*_sphere(0.012 if name != "Teeth" else 0.02)),
                                  translation=list(centre)))
    gltf.buffers.append(gl.Buffer(byteLength=len(blob)))
    gltf.set_binary_blob(bytes(blob))
    return b"".join(gltf.save_to_bytes())


def capture_driver(frames: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Still for 2 frames, then a turn to +20 degrees of yaw and 15 of pitch (head down)."""
    ramp = np.clip((np.arange(frames) - 2) / (frames - 6), 0.0, 1.0)
    euler = np.stack([np.radians(15.0) * ramp, np.radians(20.0) * ramp, np.zeros(frames)], 1)
    rotation = Rotation.from_euler("YXZ", euler[:, [1, 0, 2]]).as_rotvec()  # yaw about y, then pitch about x
    return np.zeros((frames, 53)), rotation
