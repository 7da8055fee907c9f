"""Compressed geometry decoded (issue #16): gltf-transform's meshopt (quantised) and Draco versions of a
capture-style head decode to the original vertices and morph deltas, pass gltf-validator, and bad data
is refused with a message naming where it is."""

from __future__ import annotations

import json

import numpy as np
import pytest
from capture_head import PARTS, capture_driver, capture_glb
from gltf_tools import compress_glb, read_values, validate
from scipy.spatial import cKDTree

from facecast.pipelines.export.gltf_animation import animate_glb, animate_gltf
from facecast.pipelines.export.gltf_compression import compression_of, decompress_glb
from facecast.transfer.glb import GlbChunks, read_glb, write_glb
from facecast.transfer.gltf_rig import GltfRig
from facecast.transfer.retarget import RetargetConfig, retarget
from facecast.transfer.rigs import local_matrix, node_pose, read_document


def _geometry(chunks: GlbChunks, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(N, 3)`` and morph deltas ``(K, N, 3)`` of a named node's mesh, in its parent's frame."""
    document = chunks.document
    node = next(n for n in document["nodes"] if n.get("name") == name)
    primitive = document["meshes"][node["mesh"]]["primitives"][0]
    matrix = local_matrix(node_pose(node))
    positions = read_values(document, chunks.binary, primitive["attributes"]["POSITION"])
    deltas = np.array([read_values(document, chunks.binary, t["POSITION"]) for t in primitive.get("targets", [])])
    return positions @ matrix[:3, :3].T + matrix[:3, 3], (deltas @ matrix[:3, :3].T if len(deltas) else deltas)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    plain = capture_glb()
    folder = tmp_path_factory.mktemp("compressed")
    return plain, {method: compress_glb(plain, method, folder) for method in ("meshopt", "draco")}


@pytest.mark.parametrize("method, tolerance", [("meshopt", 1e-4), ("draco", 2e-5)])  # metres: their quantisation
def test_decoded_geometry_is_the_original(files, method, tolerance, tmp_path):
    plain, compressed = files
    original = read_glb(plain)
    result = decompress_glb(read_glb(compressed[method]))
    assert (result.meshopt_views > 0) == (method == "meshopt") and (result.draco_primitives == 4) == (method == "draco")
    assert compression_of(result.chunks.document) == ()
    for name in ("HeadMesh", *PARTS):
        before, before_deltas = _geometry(original, name)
        after, after_deltas = _geometry(result.chunks, name)
        distance, match = cKDTree(before).query(after)
        assert len(after) == len(before) and len(set(match)) == len(before)  # every vertex, once
        assert distance.max() < tolerance, name
        if len(before_deltas):  # each vertex keeps its own morph deltas (the order the decoder gives is kept)
            assert np.abs(after_deltas - before_deltas[:, match]).max() < tolerance, name
    path = tmp_path / f"{method}_plain.glb"
    path.write_bytes(write_glb(result.chunks))
    report = validate([path])[0]
    assert report["numErrors"] == 0 and report["numWarnings"] == 0, report["messages"][:5]


def test_a_plain_file_passes_untouched(files):
    chunks = read_glb(files[0])
    result = decompress_glb(chunks)
    assert result.chunks is chunks and (result.meshopt_views, result.draco_primitives) == (0, 0)


def _animation(data: bytes):
    rig = GltfRig.from_document(read_document(data, "capture.glb"), "capture.glb")
    weights, rotation = capture_driver()
    return retarget(weights, rotation, None, 30.0, rig, RetargetConfig(neutral="none", smoothing="none"))


def test_keep_compression_writes_the_compressed_file_back_with_the_animation(files, tmp_path):
    data = files[1]["meshopt"]
    kept = read_glb(animate_glb(data, _animation(data), keep_compression=True))
    assert compression_of(kept.document) == ("EXT_meshopt_compression",)
    assert kept.binary[:len(read_glb(data).binary)] == read_glb(data).binary  # the original bytes, then the keys
    assert len(kept.document["animations"]) == 1


def test_bad_compressed_data_is_refused_naming_the_view(files):
    chunks = read_glb(files[1]["meshopt"])
    view = next(k for k, v in enumerate(chunks.document["bufferViews"])
                if v.get("extensions", {}).get("EXT_meshopt_compression", {}).get("mode") == "ATTRIBUTES")
    extension = chunks.document["bufferViews"][view]["extensions"]["EXT_meshopt_compression"]
    start = extension.get("byteOffset", 0)
    broken = bytearray(chunks.binary)
    broken[start:start + extension["byteLength"]] = b"\xff" * extension["byteLength"]
    with pytest.raises(ValueError, match=f"buffer view {view}: meshopt data does not decode"):
        decompress_glb(GlbChunks(chunks.document, bytes(broken)))
    draco = read_glb(files[1]["draco"])
    broken = bytearray(draco.binary)
    primitive = draco.document["meshes"][0]["primitives"][0]["extensions"]["KHR_draco_mesh_compression"]
    source = draco.document["bufferViews"][primitive["bufferView"]]
    broken[source.get("byteOffset", 0):source.get("byteOffset", 0) + 16] = b"\0" * 16
    with pytest.raises(ValueError, match="mesh 0 primitive 0: Draco data does not decode"):
        decompress_glb(GlbChunks(draco.document, bytes(broken)))


def test_a_compressed_gltf_with_external_data_is_refused_with_the_way_out(files):
    document = read_glb(files[1]["draco"]).document
    document["buffers"] = [{"byteLength": document["buffers"][0]["byteLength"], "uri": "head.bin"}]
    data = json.dumps(document).encode()
    with pytest.raises(ValueError, match="only a GLB is decompressed: pack it into a GLB first"):
        animate_gltf(data, _animation(files[1]["draco"]))
    with pytest.raises(ValueError, match=r"buffer 0 lives in an external file \(head.bin\)"):
        decompress_glb(GlbChunks(document, None))
