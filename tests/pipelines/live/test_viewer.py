"""The live web viewer in headless Chromium: ViewerServer serves the page, the vendored three.js / three-vrm and
facecast's own avatar on one port; frames sent from Python reach the page over the WebSocket, the avatar's
jawOpen follows them, the head turns by the sent rotation and the rendered view is stable and changes only at
the mouth when the jaw opens. A minimal VRM 1.0 (the same head under a humanoid skeleton) is driven through
its perfect-sync expressions or, without them, through the VRM presets."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from browser_page import BrowserPage, chromium_or_skip
from PIL import Image
from scipy.spatial.transform import Rotation

from facecast.pipelines.export.avatar import build_avatar
from facecast.pipelines.export.gltf import GltfOptions, export_glb
from facecast.pipelines.live.frame import CHANNELS, LiveFrame
from facecast.pipelines.live.senders.websocket import VIEWER, PortInUseError, ViewerServer

RAMP = 20          # frames of jawOpen 0 -> 1 (and the head turning 0 -> YAW), then HOLD frames held
HOLD = 10
YAW = 0.35         # radians
LOOK_AT = Path("/tmp/live_viewer.png")
JAW = CHANNELS.index("jawOpen")
BACKGROUND = np.array([30, 42, 56])  # the page's scene background, #1e2a38


@pytest.fixture(scope="module")
def glb(model) -> bytes:
    if not (VIEWER / "vendor" / "three" / "three.module.js").is_file():
        pytest.skip("the viewer's vendored three.js is missing")
    chromium_or_skip()
    return export_glb(build_avatar(model, np.zeros(100)), GltfOptions(min_delta=1e-5))


def picture() -> np.ndarray:
    """``(240, 320, 3)`` uint8 RGB: a stand-in camera picture (a colour ramp)."""
    y, x = np.mgrid[0:240, 0:320]
    return np.stack([x * 255 // 319, y * 255 // 239, np.full_like(x, 128)], axis=-1).astype(np.uint8)


def frame(index: int, jaw: float, yaw: float, image: np.ndarray | None = None, blink: float | None = None) -> LiveFrame:
    """Frame ``index``: jawOpen ``jaw``, the left eye blinking (by default with the index), a ``yaw`` turn."""
    arkit = np.zeros(len(CHANNELS))
    arkit[JAW] = jaw
    arkit[CHANNELS.index("eyeBlinkLeft")] = 0.5 + 0.5 * np.sin(index / 3) if blink is None else blink
    rotation = Rotation.from_euler("YXZ", [yaw, 0.0, 0.0]).as_quat()
    return LiveFrame(index, index / 30, 0.0, True, arkit, rotation=rotation, image=image)


def jaw_values(page: BrowserPage, target: str = "jawOpen") -> dict[str, float]:
    """``{mesh: influence}`` of ``target`` on every mesh of the page's avatar that has it."""
    influences = page.evaluate("facecastViewer.influences()")
    return {mesh: targets[target] for mesh, targets in influences.items() if target in targets}


def show(page: BrowserPage, server: ViewerServer, sent: LiveFrame) -> None:
    """Send ``sent`` and wait until the page has applied it."""
    server.send(sent)
    page.wait_for(f"facecastViewer.lastIndex === {sent.index}", timeout=10)


def wait_for_client(server: ViewerServer, timeout: float = 10.0) -> None:
    """Until the page's WebSocket is connected (the server counts it)."""
    deadline = time.monotonic() + timeout
    while server.clients == 0:
        assert time.monotonic() < deadline, "the page did not connect to the WebSocket"
        time.sleep(0.02)


def snapshot(page: BrowserPage) -> np.ndarray:
    """``(H, W, 3)`` uint8: the page's 3D view rendered now."""
    png = base64.b64decode(page.evaluate("facecastViewer.snapshot()").split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def ramp(page: BrowserPage, server: ViewerServer, target: str) -> tuple[np.ndarray, list[dict[str, float]]]:
    """Send the jaw ramp one frame at a time (waiting for each), then the hold frames at 30 fps without
    waiting; ``(RAMP,)`` jawOpen sent and what the page's meshes had after each."""
    sent, seen = np.linspace(0.0, 1.0, RAMP), []
    for i, jaw in enumerate(sent):
        show(page, server, frame(i, jaw, YAW * jaw, picture()))
        seen.append(jaw_values(page, target))
    for i in range(RAMP, RAMP + HOLD):
        server.send(frame(i, 1.0, YAW, picture()))
        time.sleep(1 / 30)
    page.wait_for(f"facecastViewer.lastIndex === {RAMP + HOLD - 1}", timeout=10)
    return sent, seen


@dataclass(frozen=True)
class Session:
    """What the GLB page showed: ready, frames counted, jawOpen sent ``(RAMP,)`` and seen per mesh, the head's
    rotation (xyzw) at the end, and its 3D view ``(H, W, 3)`` jaw open, then closed, then open again."""

    ready: bool
    frames: int
    last_index: int
    sent: np.ndarray
    seen: list[dict[str, float]]
    final: dict[str, float]
    rotation: np.ndarray
    jaw_open: np.ndarray
    jaw_closed: np.ndarray
    jaw_open_again: np.ndarray


@pytest.fixture(scope="module")
def session(glb) -> Session:
    with ViewerServer(port=0, avatar=glb) as server, BrowserPage(server.url) as page:
        page.wait_for("window.facecastViewer && facecastViewer.ready", timeout=30)
        wait_for_client(server)
        sent, seen = ramp(page, server, "jawOpen")
        final, rotation = jaw_values(page), np.asarray(page.evaluate("facecastViewer.rotation()"))
        ready, frames, last = (page.evaluate(f"facecastViewer.{k}") for k in ("ready", "frames", "lastIndex"))
        page.screenshot(LOOK_AT)
        views = []
        for i, jaw in enumerate((1.0, 0.0, 1.0), start=RAMP + HOLD):  # only the jaw changes
            show(page, server, frame(i, jaw, YAW, blink=0.3))
            views.append(snapshot(page))
        return Session(ready, frames, last, sent, seen, final, rotation, *views)


def test_page_loads_the_avatar_and_receives_frames(session):
    assert session.ready
    assert RAMP < session.frames <= RAMP + HOLD  # every ramp frame; hold frames may be dropped, not more
    assert len(session.final) == 9               # the avatar's 9 primitives, each with the ARKit targets


def test_jaw_open_follows_what_was_sent(session):
    assert all(abs(v) < 1e-6 for v in session.seen[0].values())
    for jaw, seen in zip(session.sent, session.seen):
        assert seen and all(abs(v - jaw) < 1e-3 for v in seen.values()), (jaw, seen)
    assert all(v > 0.999 for v in session.final.values())


def test_head_turns_by_the_sent_rotation(session):
    expected = Rotation.from_euler("YXZ", [YAW, 0.0, 0.0]).as_quat()
    assert abs(float(np.dot(session.rotation, expected))) > 1 - 1e-6


def test_view_is_stable_and_the_jaw_changes_only_the_mouth(session):
    opened, closed, again = (image.astype(np.int16) for image in
                             (session.jaw_open, session.jaw_closed, session.jaw_open_again))
    assert opened.shape[0] > 300 and opened.shape[1] > 300
    assert np.abs(opened - again).mean() < 0.5                 # the same state renders the same
    head = np.abs(opened - BACKGROUND).max(axis=2) > 12
    assert 0.05 < head.mean() < 0.6                             # the head is in view, not filling it
    rows, cols = np.nonzero(head)
    difference = np.abs(opened - closed)
    changed = difference.max(axis=2) > 24
    y, _ = np.nonzero(changed)
    assert 1000 < changed.sum() < 0.2 * head.sum()
    assert (y > (rows.min() + rows.max()) / 2).mean() > 0.8     # mostly below the head's middle: mouth and chin
    assert difference[:rows.min() + (rows.max() - rows.min()) // 3].mean() < 0.2  # forehead and eyes: as they were
    around = np.ones(changed.shape, bool)
    around[max(rows.min() - 10, 0):rows.max() + 10, max(cols.min() - 10, 0):cols.max() + 10] = False
    assert difference[around].mean() < 0.1                      # the background too


def test_a_second_server_on_the_same_port_says_so():
    with ViewerServer(port=0) as first:
        with pytest.raises(PortInUseError, match=f"port {first.port} is in use"):
            ViewerServer(port=first.port)


def test_a_slow_client_gets_the_newest_frame_and_send_never_waits():
    """A client that reads nothing for a while: ``send`` returns at once, frames are dropped for it, the newest
    one arrives."""
    from websockets.sync.client import connect

    noise = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)  # ~70 KB messages
    with ViewerServer(port=0) as server, connect(server.url.replace("http", "ws", 1) + "ws", max_queue=1) as client:
        hello = json.loads(client.recv(timeout=5))
        assert hello["type"] == "hello" and hello["names"] == list(CHANNELS)
        wait_for_client(server)
        durations = []
        for i in range(300):
            start = time.perf_counter()
            server.send(frame(i, i / 299, 0.0, noise))
            durations.append(time.perf_counter() - start)
        assert np.median(durations) < 0.02
        received = []
        with contextlib.suppress(TimeoutError):
            while True:
                received.append(json.loads(client.recv(timeout=1)))
    indices = [m["index"] for m in received]
    assert indices[-1] == 299 and len(indices) < 300 and indices == sorted(set(indices))
    last = received[-1]
    assert len(last["arkit"]) == len(CHANNELS) and abs(last["arkit"][JAW] - 1.0) < 1e-4
    assert last["presets"]["aa"] == last["arkit"][JAW] and len(last["rotation"]) == 4 and len(last["gaze"]) == 6
    assert last["image"].startswith("data:image/jpeg;base64,")


# --- VRM ---------------------------------------------------------------------------------------------------

BONES = {"hips": (None, (0, -0.5, 0)), "spine": ("hips", (0, 0.2, 0)), "head": ("spine", (0, 0.3, 0)),
         **{f"{side}{bone}": (parent, offset) for side, sign in (("left", 1), ("right", -1))
            for bone, parent, offset in (("UpperLeg", "hips", (0.1 * sign, -0.05, 0)), ("LowerLeg", None, (0, -0.4, 0)),
                                         ("Foot", None, (0, -0.4, 0)), ("UpperArm", "spine", (0.2 * sign, 0.1, 0)),
                                         ("LowerArm", None, (0.25 * sign, 0, 0)), ("Hand", None, (0.25 * sign, 0, 0)))}}


def vrm_from_glb(glb: bytes, perfect_sync: bool) -> bytes:
    """A minimal VRM 1.0: the GLB's mesh (its targets renamed ``shape0``...) under the head of the 15 required
    humanoid bones, with custom expressions named after the ARKit shapes (capitalised, as some perfect-sync
    avatars have them) or, without perfect sync, only the presets ``aa`` (the jawOpen target) and ``blink``."""
    length = struct.unpack_from("<I", glb, 12)[0]
    gltf, binary = json.loads(glb[20:20 + length]), glb[20 + length:]
    names = gltf["meshes"][0]["extras"]["targetNames"]
    gltf["meshes"][0]["extras"]["targetNames"] = [f"shape{k}" for k in range(len(names))]
    index, previous = {}, None
    for bone, (parent, offset) in BONES.items():
        parent = parent or previous
        index[bone] = len(gltf["nodes"])
        gltf["nodes"].append({"name": bone, "translation": list(offset)})
        if parent is not None:
            gltf["nodes"][index[parent]].setdefault("children", []).append(index[bone])
        previous = bone
    gltf["nodes"][index["head"]]["children"] = [0]  # the head mesh (node 0, at the head bone)
    gltf["scenes"][0]["nodes"] = [index["hips"]]

    def bound(*targets: str) -> dict:
        return {"morphTargetBinds": [{"node": 0, "index": names.index(t), "weight": 1.0} for t in targets]}

    expressions = ({"custom": {n[0].upper() + n[1:]: bound(n) for n in names}} if perfect_sync else
                   {"preset": {"aa": bound("jawOpen"), "blink": bound("eyeBlinkLeft", "eyeBlinkRight")}})
    gltf["extensionsUsed"] = [*gltf.get("extensionsUsed", []), "VRMC_vrm"]
    gltf.setdefault("extensions", {})["VRMC_vrm"] = {
        "specVersion": "1.0", "expressions": expressions,
        "meta": {"name": "facecast test head", "version": "1", "authors": ["facecast tests"],
                 "licenseUrl": "https://vrm.dev/licenses/1.0/", "avatarPermission": "onlyAuthor",
                 "commercialUsage": "personalNonProfit", "creditNotation": "required", "modification": "prohibited"},
        "humanoid": {"humanBones": {bone: {"node": i} for bone, i in index.items()}}}
    text = json.dumps(gltf, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    chunks = struct.pack("<I4s", len(text), b"JSON") + text + binary
    return struct.pack("<4sII", b"glTF", 2, 12 + len(chunks)) + chunks


@pytest.mark.parametrize("perfect_sync", [True, False], ids=["perfect-sync", "presets"])
def test_vrm_follows_expressions_and_turns_its_head_bone(glb, perfect_sync):
    with ViewerServer(port=0, avatar=vrm_from_glb(glb, perfect_sync)) as server, BrowserPage(server.url) as page:
        page.wait_for("window.facecastViewer && facecastViewer.ready", timeout=30)
        wait_for_client(server)
        target = f"shape{CHANNELS.index('jawOpen')}"
        for i, jaw in enumerate((0.0, 0.4, 1.0)):
            show(page, server, frame(i, jaw, YAW * jaw))
            seen = jaw_values(page, target)
            assert len(seen) == 9 and all(abs(v - jaw) < 1e-3 for v in seen.values()), (jaw, seen)
        expected = Rotation.from_euler("YXZ", [YAW, 0.0, 0.0]).as_quat()
        assert abs(float(np.dot(page.evaluate("facecastViewer.rotation()"), expected))) > 1 - 1e-6
        status = page.evaluate("document.getElementById('status').textContent")
        assert ("VRM, perfect sync" if perfect_sync else "VRM, presets") in status
        page.screenshot(LOOK_AT.with_name(f"live_viewer_vrm_{'sync' if perfect_sync else 'presets'}.png"))
