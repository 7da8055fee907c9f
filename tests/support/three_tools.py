"""Load a glTF/GLB in real three.js (GLTFLoader with Meshopt and Draco decoders) inside
headless Chromium, play its first animation and report what three.js sees (skipping when
Chromium or the three npm package is not installed)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
THREE = REPO / ".ci" / "node" / "node_modules" / "three"
FLAGS = ("--headless=new", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-sandbox",
         "--disable-gpu-sandbox", "--ignore-gpu-blocklist", "--no-first-run", "--no-default-browser-check",
         "--disable-extensions", "--disable-background-networking", "--enable-logging=stderr", "--v=0")

PAGE = """<!doctype html><html><body><canvas id="view" width="SIZE" height="SIZE"></canvas><script>
const report = error => fetch('/result', {method: 'POST', body: JSON.stringify({error})});
addEventListener('error', e => report(e.message || 'failed to load ' + (e.target.src || 'a module script')), true);
addEventListener('unhandledrejection', e => report(String(e.reason && e.reason.stack || e.reason)));
</script><script type="importmap">{"imports": {"three": "/three/build/three.module.js",
                                               "three/addons/": "/three/examples/jsm/"}}</script>
<script type="module">
import * as THREE from 'three';
import {GLTFLoader} from 'three/addons/loaders/GLTFLoader.js';
import {DRACOLoader} from 'three/addons/loaders/DRACOLoader.js';
import {MeshoptDecoder} from 'three/addons/libs/meshopt_decoder.module.js';
const config = CONFIG, corners = b => [b.min.toArray(), b.max.toArray()];
try {
  const loader = new GLTFLoader().setMeshoptDecoder(MeshoptDecoder)
    .setDRACOLoader(new DRACOLoader().setDecoderPath('/three/examples/jsm/libs/draco/'));
  const gltf = await loader.loadAsync('/' + config.file);
  const scene = gltf.scene, meshes = {}, nodes = {};
  scene.traverse(o => { if (o.isMesh) { let n = o.name || 'mesh'; while (n in meshes) n += '+'; meshes[n] = o; } });
  for (const name of config.nodes) {
    nodes[name] = scene.getObjectByName(name);
    if (!nodes[name]) throw new Error('no node named ' + JSON.stringify(name));
  }
  for (const [n, m] of Object.entries(meshes)) if (!(n in nodes)) nodes[n] = m;
  const morphed = Object.entries(meshes).filter(([n, m]) => m.morphTargetInfluences);
  const box = new THREE.Box3().setFromObject(scene, true);  // precise: the vertices as morphed now
  const result = {animations: gltf.animations.map(a => a.name), durations: gltf.animations.map(a => a.duration),
    meshes: Object.keys(meshes).length, bounds: corners(box), boxes: [],
    vertices: Object.values(meshes).reduce((s, m) => s + m.geometry.attributes.position.count, 0),
    targets: {}, influences: {}, matrices: {}, rendered: false, render_error: ''};
  for (const [n, m] of morphed) {
    result.targets[n] = Array(m.morphTargetInfluences.length).fill('');
    for (const [target, i] of Object.entries(m.morphTargetDictionary || {})) result.targets[n][i] = target;
    result.influences[n] = [];
  }
  for (const name of Object.keys(nodes)) result.matrices[name] = [];
  let renderer = null, camera = null;
  const world = new THREE.Scene();  // gltf.scene is a Group, which has no background
  try {
    renderer = new THREE.WebGLRenderer({canvas: document.getElementById('view'), preserveDrawingBuffer: true});
    if (renderer.getContext().isContextLost()) throw new Error('WebGL context lost');
    const light = new THREE.DirectionalLight(0xffffff, 2.0);
    light.position.set(1, 1, 2);
    world.background = new THREE.Color(config.background);
    world.add(scene, light, new THREE.HemisphereLight(0xffffff, 0x404040, 2.0));
    const center = box.getCenter(new THREE.Vector3());
    const radius = Math.max(box.getSize(new THREE.Vector3()).length() / 2, 1e-6);
    camera = new THREE.PerspectiveCamera(30, 1, radius / 100, radius * 100);
    camera.position.set(center.x, center.y, center.z + 1.05 * radius / Math.sin(Math.PI / 12));
    camera.lookAt(center);
  } catch (e) { renderer = null; result.render_error = String(e && e.message || e); }
  const mixer = new THREE.AnimationMixer(scene);
  const action = gltf.animations.length ? mixer.clipAction(gltf.animations[0]) : null;
  if (action) { action.setLoop(THREE.LoopOnce); action.clampWhenFinished = true; action.play(); }
  for (const t of config.times) {
    if (action) { action.reset(); mixer.setTime(t); }  // reset: a finished (clamped) action would stay paused
    scene.updateMatrixWorld(true);
    result.boxes.push(corners(new THREE.Box3().setFromObject(scene, true)));
    for (const [n, m] of morphed) result.influences[n].push([...m.morphTargetInfluences]);
    for (const [n, o] of Object.entries(nodes)) result.matrices[n].push([...o.matrixWorld.elements]);
    if (renderer) { renderer.render(world, camera); result.rendered = true; }
  }
  if (renderer && config.screenshot) result.png = renderer.domElement.toDataURL('image/png');
  await fetch('/result', {method: 'POST', body: JSON.stringify(result)});
} catch (e) { await report(String(e && e.stack || e)); }
</script></body></html>
"""


@dataclass(frozen=True)
class ThreeView:
    """What three.js saw: ``times`` ``(T,)`` s; animation names and ``durations`` s; mesh and
    vertex counts; world ``bounds`` ``(2, 3)`` (min, max) of the vertices at rest and ``boxes``
    ``(T, 2, 3)`` as morphed and moved at each time; per mesh with morph targets its
    ``target_names`` (index order) and ``influences`` ``(T, K)``; per requested node and per
    mesh its world ``matrices`` ``(T, 4, 4)`` (row-major, ``M @ [x, y, z, 1]``); whether WebGL
    ``rendered`` (else ``render_error`` says why) and the last frame's PNG path."""

    times: np.ndarray
    animations: tuple[str, ...]
    durations: np.ndarray
    n_meshes: int
    n_vertices: int
    bounds: np.ndarray
    boxes: np.ndarray
    target_names: dict[str, tuple[str, ...]]
    influences: dict[str, np.ndarray]
    matrices: dict[str, np.ndarray]
    rendered: bool
    render_error: str
    screenshot: Path | None

    def influence(self, target: str) -> dict[str, np.ndarray]:
        """``{mesh: (T,) influences}`` of the target named ``target`` on every mesh that has it."""
        return {mesh: self.influences[mesh][:, names.index(target)]
                for mesh, names in self.target_names.items() if target in names}


class _Server(ThreadingHTTPServer):
    """Serves ``folder`` on a free 127.0.0.1 port; keeps the first POSTed body and the failed requests."""

    def __init__(self, folder: str) -> None:
        super().__init__(("127.0.0.1", 0), partial(_Handler, directory=folder))
        self.done, self.body, self.missing = threading.Event(), b"", list[str]()


class _Handler(SimpleHTTPRequestHandler):
    server: _Server
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript",
                      ".wasm": "application/wasm", ".glb": "model/gltf-binary"}

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204)
        self.end_headers()
        if not self.server.done.is_set():
            self.server.body = body
            self.server.done.set()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        if self.path != "/favicon.ico":
            self.server.missing.append(f"{code} {self.path}")
        super().send_error(code, message, explain)

    def log_message(self, format: str, *args: object) -> None:
        pass


def view_in_three(path: Path, times: Sequence[float], screenshot: Path | None = None,
                  node_names: Sequence[str] = (), timeout: float = 90.0, size: int = 384,
                  background: str = "#1e2a38") -> ThreeView:
    """Load ``path`` in three.js, set its first animation's mixer to each of ``times`` and
    record what :class:`ThreeView` holds; the last rendered frame goes to ``screenshot``.
    Raises ``RuntimeError`` with the page's message when it fails or times out."""
    if len(times) == 0:
        raise ValueError("view_in_three needs at least one time")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    if not (THREE / "build" / "three.module.js").is_file():
        pytest.skip("three.js not installed (npm install --prefix .ci/node three)")
    with tempfile.TemporaryDirectory(prefix="three-") as folder:
        root, name = Path(folder), f"model{Path(path).suffix}"
        (root / "three").symlink_to(THREE)
        shutil.copy(path, root / name)
        config = {"file": name, "times": [float(t) for t in times], "nodes": list(node_names),
                  "screenshot": screenshot is not None, "background": background}
        (root / "index.html").write_text(PAGE.replace("SIZE", str(size)).replace("CONFIG", json.dumps(config)))
        server, log = _Server(folder), root / "chromium.log"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        with open(log, "wb") as output:
            process = subprocess.Popen([chromium, *FLAGS, f"--user-data-dir={root / 'profile'}",
                                        f"--window-size={size},{size}",
                                        f"http://127.0.0.1:{server.server_address[1]}/index.html"],
                                       stdin=subprocess.DEVNULL, stdout=output, stderr=output, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while not server.done.wait(0.2):
                if process.poll() is not None or time.monotonic() > deadline:
                    why = f"exited ({process.returncode})" if process.poll() is not None else f"timed out ({timeout} s)"
                    raise RuntimeError(f"three.js page {why} without a result; chromium log tail:\n"
                                       + log.read_text(errors="replace")[-3000:])
        finally:
            if process.poll() is None:  # the Chromium we started and its children: its own process group
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            server.shutdown()
            server.server_close()
        result = json.loads(server.body)
        notes = [line for line in log.read_text(errors="replace").splitlines() if "CONSOLE" in line][-10:]
        notes += [f"server answered {m}" for m in server.missing]
    if "error" in result:
        raise RuntimeError("\n".join([f"three.js failed on {path}: {result['error']}", *notes]))
    png = result.get("png") if screenshot is not None else None
    if png:
        Path(screenshot).write_bytes(base64.b64decode(png.split(",", 1)[1]))
    frames = len(times)
    return ThreeView(
        times=np.asarray(times, np.float64), animations=tuple(result["animations"]),
        durations=np.asarray(result["durations"], np.float64), n_meshes=result["meshes"],
        n_vertices=result["vertices"], bounds=np.asarray(result["bounds"], np.float64),
        boxes=np.asarray(result["boxes"], np.float64).reshape(frames, 2, 3),
        target_names={k: tuple(v) for k, v in result["targets"].items()},
        influences={k: np.asarray(v, np.float64).reshape(frames, -1) for k, v in result["influences"].items()},
        matrices={k: np.asarray(m, np.float64).reshape(frames, 4, 4).transpose(0, 2, 1)  # three is column-major
                  for k, m in result["matrices"].items()},
        rendered=result["rendered"], render_error=result["render_error"], screenshot=Path(screenshot) if png else None)
