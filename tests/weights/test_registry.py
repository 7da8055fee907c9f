"""Asset registry: converter against the shipped npz, verified downloads from a local server."""

from __future__ import annotations

import http.server
import json
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from facecast.weights import registry
from facecast.weights.convert import convert_facexmodel
from facecast.weights.download import DownloadError, RemoteFile, fetch, sha256_of

SAMPLE_FILES = ["generic_neutral_mesh.obj", "identity000.obj", "jawOpen.obj", "eyeBlink_L.obj",
                "vertex_indices.json", "ICTFaceModelMaterial.mtl"]


@pytest.fixture(scope="module")
def sample_dir(shared_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("facex")
    with zipfile.ZipFile(shared_dir / "assets/ict-facekit/FaceXModel-sample.zip") as archive:
        archive.extractall(out)
    return out / "FaceXModel"


@pytest.fixture(scope="module")
def packed(shared_dir):
    return np.load(shared_dir / "assets/ict-facekit/ict_facekit_light.npz")


def _assert_matches_packed(arrays: dict, packed) -> None:
    np.testing.assert_allclose(arrays["neutral"], packed["neutral"], atol=1e-6)
    np.testing.assert_allclose(arrays["identity_modes"][0].astype(np.float32),
                               packed["identity_modes"][0].astype(np.float32), atol=1e-3)
    names = list(packed["expression_names"])
    for k, name in enumerate(arrays["expression_names"]):
        np.testing.assert_allclose(arrays["expression_modes"][k].astype(np.float32),
                                   packed["expression_modes"][names.index(name)].astype(np.float32),
                                   atol=1e-3)
    for key in ("face_vertices", "face_uvs", "face_material", "material_names"):
        np.testing.assert_array_equal(arrays[key], packed[key])
    np.testing.assert_allclose(arrays["uvs"], packed["uvs"], atol=1e-6)
    assert json.loads(str(arrays["vertex_indices_json"])) == json.loads(str(packed["vertex_indices_json"]))


def test_converter_reproduces_packed_arrays(sample_dir, packed):
    arrays = convert_facexmodel(sample_dir, identity_names=["identity000"],
                                expression_names=["jawOpen", "eyeBlink_L"])
    assert arrays["expression_modes"].shape == (2, 26719, 3)
    # the jawOpen delta is not trivial: the comparison above must mean something
    assert np.abs(arrays["expression_modes"][0]).max() > 1.0
    _assert_matches_packed(arrays, packed)


class _Handler(http.server.BaseHTTPRequestHandler):
    root: Path
    mode: str  # "good" | "corrupt" | "truncated"

    def do_GET(self):  # noqa: N802 (http.server API)
        path = self.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        if self.mode == "corrupt" and path.suffix == ".obj":
            body = body[:-10] + b"#corrupt!\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.mode == "truncated" and path.suffix == ".obj":
            body = body[: len(body) // 2]
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(sample_dir):
    def start(mode: str) -> str:
        handler = type("H", (_Handler,), {"root": sample_dir, "mode": mode})
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    servers: list = []
    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def test_download_good_files_converts_and_caches(server, tmp_path, packed):
    base = server("good")
    dest = tmp_path / "cache" / "ict-facekit" / "ict_facekit_light.npz"
    out = registry.download_ict_model(dest, base_url=base, show_progress=False, names=SAMPLE_FILES)
    assert out == dest and dest.is_file()
    arrays = dict(np.load(dest))
    assert list(arrays["expression_names"]) == ["eyeBlink_L", "jawOpen"]  # vertex_indices order
    _assert_matches_packed(arrays, packed)
    assert not (dest.parent / "FaceXModel.download").exists()
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]  # no temporary files left


@pytest.mark.parametrize("mode, message", [("corrupt", "checksum mismatch"), ("truncated", "truncated|broke off")])
def test_download_bad_file_is_deleted_and_reported(server, tmp_path, mode, message):
    base = server(mode)
    sources = registry.load_source_list()
    name = "jawOpen.obj"
    dest = tmp_path / name
    with pytest.raises(DownloadError, match=message):
        fetch(RemoteFile(f"{base}/{name}", dest, sources.sha256[name]))
    assert list(tmp_path.iterdir()) == []  # nothing partial left behind
    npz = tmp_path / "c" / "ict_facekit_light.npz"
    with pytest.raises(registry.AssetError, match=message):
        registry.download_ict_model(npz, base_url=base, show_progress=False, names=SAMPLE_FILES)
    assert not npz.exists()


def test_download_keeps_verified_file_without_refetch(server, tmp_path):
    base = server("good")
    sources = registry.load_source_list()
    dest = tmp_path / "vertex_indices.json"
    fetch(RemoteFile(f"{base}/vertex_indices.json", dest, sources.sha256["vertex_indices.json"]))
    assert sha256_of(dest) == sources.sha256["vertex_indices.json"]
    # a dead server does not matter once the verified file is there
    fetch(RemoteFile("http://127.0.0.1:9/none", dest, sources.sha256["vertex_indices.json"]))


def test_resolution_order(tmp_path, monkeypatch, shared_dir):
    assets = shared_dir / "assets"
    monkeypatch.setenv("FACECAST_ASSETS", str(assets))
    assert registry.resolve_ict_model() == assets / "ict-facekit" / "ict_facekit_light.npz"
    explicit = assets / "ict-facekit"
    assert registry.resolve_ict_model(explicit) == explicit / "ict_facekit_light.npz"
    with pytest.raises(registry.AssetError, match="no ict_facekit_light.npz"):
        registry.resolve_ict_model(tmp_path)
    monkeypatch.delenv("FACECAST_ASSETS")
    monkeypatch.setenv("FACECAST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FACECAST_OFFLINE", "1")
    with pytest.raises(registry.AssetError, match="FACECAST_ASSETS"):
        registry.resolve_ict_model()
    cached = tmp_path / "home" / "ict-facekit" / "ict_facekit_light.npz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert registry.resolve_ict_model() == cached


def test_checksums_cover_the_model():
    sources = registry.load_source_list()
    assert sources.commit == "da5f95a607f5e6b37755b38d3385d7f2853732e5"
    assert {f"identity{k:03d}.obj" for k in range(100)} <= set(sources.sha256)
    assert all(len(h) == 64 for h in sources.sha256.values())
