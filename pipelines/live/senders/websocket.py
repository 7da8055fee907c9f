"""The built-in web viewer's server: the page, the avatar and a WebSocket of live frames, all on one port.

:class:`ViewerServer` (a :class:`~facecast.pipelines.live.frame.Sender`) runs an asyncio loop on a background
thread and answers, on ``http://HOST:PORT`` (default ``127.0.0.1:8765``, :attr:`ViewerServer.url`):

- ``GET /`` the viewer page (:data:`VIEWER`: ``index.html``, ``viewer.js`` and the vendored three.js and
  three-vrm under ``vendor/``; nothing is fetched from the internet);
- ``GET /avatar`` the avatar's bytes, a GLB or a VRM (404 when none was given: the page then only shows the
  picture and curves);
- ``/ws`` the WebSocket the page connects to (``ws://<the page's host and port>/ws``; a page opened with
  ``?ws=ws://HOST:PORT/ws`` connects there instead).

Messages are JSON text, server to page only. On connecting, a client first gets::

    {"type": "hello", "version": 1, "names": [52 ARKit names: the order of "arkit"], "presets": [VRM 1.0 names]}

then one message per :meth:`ViewerServer.send`::

    {"type": "frame", "index": int, "time": seconds, "detected": bool,
     "arkit": [52 weights in [0, 1]], "presets": {"blink": w, "aa": w, ...},   # vrm_presets(arkit)
     "rotation": [x, y, z, w], "translation": [x, y, z] metres, "gaze": [6] radians,  # as in LiveFrame
     "image": "data:image/jpeg;base64,..."}   # only when the frame has a picture: JPEG, at most 320 px wide

A client that reads slowly is never queued behind: it gets the newest frame once it has taken the last one,
and the frames in between are dropped for it.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import errno
import json
import mimetypes
import os
import threading
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import numpy as np

from facecast.pipelines.live.frame import CHANNELS, LiveFrame, SenderError
from facecast.pipelines.live.presets import PRESETS, vrm_presets

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection
    from websockets.http11 import Request, Response

#: the viewer's page and scripts, served as they are
VIEWER = Path(__file__).resolve().parents[1] / "viewer"
PROTOCOL_VERSION = 1
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".md": "text/markdown; charset=utf-8",
          ".LICENSE": "text/plain; charset=utf-8"}


class PortInUseError(SenderError):
    """The viewer's port is taken (by another facecast or another program)."""


def encode_frame(frame: LiveFrame, image_width: int = 320, jpeg_quality: int = 70) -> str:
    """The JSON "frame" message (module docstring) for ``frame``; its ``(H, W, 3)`` RGB picture, if any,
    is shrunk to at most ``image_width`` px wide and sent as a JPEG data URL."""
    message = {"type": "frame", "index": int(frame.index), "time": round(float(frame.time), 4),
               "detected": bool(frame.detected), "arkit": _rounded(frame.arkit),
               "presets": {k: round(v, 4) for k, v in vrm_presets(frame.arkit).items()},
               "rotation": _rounded(frame.rotation, 6), "translation": _rounded(frame.translation, 5),
               "gaze": _rounded(frame.gaze)}
    if frame.image is not None:
        message["image"] = jpeg_data_url(frame.image, image_width, jpeg_quality)
    return json.dumps(message, separators=(",", ":"))


def jpeg_data_url(image: np.ndarray, max_width: int = 320, quality: int = 70) -> str:
    """``"data:image/jpeg;base64,..."`` of an ``(H, W, 3)`` uint8 RGB picture, shrunk to at most
    ``max_width`` px wide (aspect kept)."""
    import cv2

    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    height, width = image.shape[:2]
    if width > max_width:
        size = (max_width, max(1, round(height * max_width / width)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", np.ascontiguousarray(image[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("the picture could not be encoded as JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode("ascii")


def _rounded(values: np.ndarray, digits: int = 4) -> list[float]:
    return [round(float(v), digits) for v in np.asarray(values).ravel()]


def read_avatar(avatar: bytes | str | os.PathLike[str] | None) -> bytes | None:
    """The avatar's bytes: ``avatar`` itself, or the file it names; ``ValueError`` unless it is a binary
    glTF (a ``.glb`` or ``.vrm``: both start with ``glTF``)."""
    if avatar is None:
        return None
    data = bytes(avatar) if isinstance(avatar, (bytes, bytearray, memoryview)) else Path(avatar).read_bytes()
    if data[:4] != b"glTF":
        raise ValueError(f"the avatar must be a GLB or VRM file (binary glTF), got {data[:4]!r}...")
    return data


@dataclass(eq=False)  # compared (and hashed) by identity
class _Client:
    """One connected page: ``latest`` is the newest message it has not been sent yet (older ones are gone)."""

    wake: asyncio.Event
    latest: str | None = None


class ViewerServer:
    """Serves the web viewer and sends it every frame (a :class:`~facecast.pipelines.live.frame.Sender`).

    host, port: where to listen (port 0: a free one, see :attr:`port`); :class:`PortInUseError` when the
    port is taken. avatar: GLB or VRM bytes or a path to one, or None (no avatar). path: the WebSocket's
    path. image_width, jpeg_quality: how the camera picture is sent. ``close()`` stops the server's thread.
    """

    name = "viewer"

    def __init__(self, host: str = "127.0.0.1", port: int = 8765,
                 avatar: bytes | str | os.PathLike[str] | None = None, *, path: str = "/ws",
                 image_width: int = 320, jpeg_quality: int = 70, folder: Path = VIEWER) -> None:
        if not 0 <= int(port) <= 65535:
            raise ValueError(f"port must be in [0, 65535], got {port}")
        if not path.startswith("/") or path == "/avatar":
            raise ValueError(f"path must start with / and not be /avatar, got {path!r}")
        if not (Path(folder) / "index.html").is_file():
            raise FileNotFoundError(f"the viewer's page is missing: {Path(folder) / 'index.html'}")
        self._host, self._path, self._folder = host, path, Path(folder).resolve()
        self._avatar, self._image = read_avatar(avatar), (int(image_width), int(jpeg_quality))
        self._hello = json.dumps({"type": "hello", "version": PROTOCOL_VERSION, "names": list(CHANNELS),
                                  "presets": list(PRESETS)})
        self._clients: set[_Client] = set()
        self._files: dict[Path, bytes] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._closed = False
        started: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve(int(port), started)),
                                        name=f"facecast-viewer-{port}", daemon=True)
        self._thread.start()
        try:
            self._port = started.result(timeout=30)
        except BaseException:
            self._closed = True
            self._thread.join(timeout=5)
            raise

    @property
    def port(self) -> int:
        """The port listened on (the one chosen when 0 was asked for)."""
        return self._port

    @property
    def url(self) -> str:
        """The viewer page's URL, e.g. ``http://127.0.0.1:8765/``."""
        host = "127.0.0.1" if self._host in ("", "0.0.0.0", "::") else self._host
        return f"http://{f'[{host}]' if ':' in host else host}:{self._port}/"

    @property
    def clients(self) -> int:
        """How many pages are connected now."""
        return len(self._clients)

    def send(self, frame: LiveFrame) -> None:
        """Queue ``frame`` for every connected page (replacing what a slow one has not taken yet); returns at
        once, and does nothing while no page is connected."""
        loop = self._loop
        if self._closed or loop is None or not self._clients:
            return
        message = encode_frame(frame, *self._image)
        try:
            loop.call_soon_threadsafe(self._publish, message)
        except RuntimeError:  # the loop has just stopped
            pass

    def close(self) -> None:
        """Close the connections and stop the server's thread (again: nothing)."""
        if self._closed:
            return
        self._closed = True
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:
                pass
        self._thread.join(timeout=10)

    def __enter__(self) -> ViewerServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def _serve(self, port: int, started: concurrent.futures.Future[int]) -> None:
        from websockets.asyncio.server import serve

        try:
            server = await serve(self._talk, self._host, port, process_request=self._answer, compression=None,
                                 close_timeout=1, max_size=2**16)
        except OSError as error:
            started.set_exception(_bind_error(error, self._host, port))
            return
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        started.set_result(int(server.sockets[0].getsockname()[1]))
        await self._stop.wait()
        server.close()
        await server.wait_closed()

    def _publish(self, message: str) -> None:
        for client in self._clients:
            client.latest = message
            client.wake.set()

    async def _talk(self, connection: ServerConnection) -> None:
        from websockets.exceptions import ConnectionClosed

        client = _Client(asyncio.Event())
        self._clients.add(client)
        pump = asyncio.create_task(self._pump(connection, client))
        try:
            async for _ in connection:  # the page sends nothing; this ends when it goes
                pass
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(client)
            pump.cancel()

    async def _pump(self, connection: ServerConnection, client: _Client) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            await connection.send(self._hello)
            while True:
                await client.wake.wait()
                client.wake.clear()
                message, client.latest = client.latest, None
                if message is not None:
                    await connection.send(message)  # waits while this page is slow; newer frames replace
        except ConnectionClosed:
            pass

    def _answer(self, connection: ServerConnection, request: Request) -> Response | None:
        """Plain HTTP: the page's files and the avatar; None lets the WebSocket handshake go on."""
        path = unquote(urlsplit(request.path).path)
        if path == self._path:
            return None
        if path == "/avatar":
            body, kind = self._avatar, "model/gltf-binary"
        else:
            body, kind = self._file(path)
        if body is None:
            return _response(HTTPStatus.NOT_FOUND, f"{path} not found\n".encode(), "text/plain; charset=utf-8")
        return _response(HTTPStatus.OK, body, kind)

    def _file(self, path: str) -> tuple[bytes | None, str]:
        relative = path.lstrip("/") or "index.html"
        file = (self._folder / relative).resolve()
        if not file.is_relative_to(self._folder) or not file.is_file():
            return None, ""
        if file not in self._files:
            self._files[file] = file.read_bytes()
        kind = _TYPES.get(file.suffix) or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        return self._files[file], kind


def _response(status: HTTPStatus, body: bytes, kind: str) -> Response:
    from websockets.datastructures import Headers
    from websockets.http11 import Response

    headers = Headers([("Content-Type", kind), ("Content-Length", str(len(body))), ("Cache-Control", "no-cache"),
                       ("Connection", "close")])
    return Response(status.value, status.phrase, headers, body)


def _bind_error(error: OSError, host: str, port: int) -> OSError:
    if error.errno == errno.EADDRINUSE:
        why: OSError = PortInUseError(f"port {port} is in use (another program listens on it): choose another with "
                                      "--view-port")
    else:
        why = SenderError(f"cannot listen on {host}:{port} for the viewer: {error.strerror or error}")
    why.errno = error.errno
    return why
