"""Receivers for the live senders' tests, written from the protocols' descriptions (not from the senders):
a UDP listener on 127.0.0.1, parsers for the iFacialMocap text and the Live Link Face packet, and a real OSC
server (python-osc) for VMC.

- iFacialMocap (https://www.ifacialmocap.com/for-developer/): ``name-int|...|=head#6 floats|rightEye#3
  floats|leftEye#3 floats|``, exactly one ``=``, every field ending in ``|``, blendshape values integers 0-100;
- Live Link Face (Unreal's ``AppleARKitLiveLinkSource.cpp``, packet version 6), big-endian: uint8 version,
  int32-length device id, int32-length subject, int32 frame number, float32 subframe, int32 rate numerator and
  denominator, uint8 count (61), then that many float32;
- VMC (https://protocol.vmc.info): OSC messages in bundles; the server records each datagram's messages.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass

from pythonosc import dispatcher, osc_server


class UdpReceiver:
    """Binds 127.0.0.1 on a free port (:attr:`port`) and collects datagrams on a thread (:attr:`datagrams`)."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.05)
        self.port: int = self._socket.getsockname()[1]
        self._lock = threading.Lock()
        self._datagrams: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="udp-receiver", daemon=True)

    def __enter__(self) -> UdpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._socket.close()

    @property
    def datagrams(self) -> list[bytes]:
        with self._lock:
            return list(self._datagrams)

    def wait(self, count: int, timeout: float = 5.0) -> list[bytes]:
        """The datagrams once at least ``count`` have come (or ``timeout`` seconds have passed)."""
        deadline = time.monotonic() + timeout
        while len(self.datagrams) < count and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.datagrams

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._socket.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._datagrams.append(data)


@dataclass(frozen=True)
class IFacialMocapPacket:
    """blendshapes: name -> integer 0-100, in packet order; head: rx, ry, rz (degrees), px, py, pz;
    right_eye, left_eye: rx, ry, rz (degrees)."""

    blendshapes: dict[str, int]
    head: tuple[float, ...]
    right_eye: tuple[float, ...]
    left_eye: tuple[float, ...]


def parse_ifacialmocap(text: str) -> IFacialMocapPacket:
    """Parse one iFacialMocap (v1) datagram; ``ValueError`` for anything off the format."""
    if text.count("=") != 1:
        raise ValueError(f"expected exactly one '=', got {text.count('=')}")
    shapes_part, pose_part = text.split("=")
    if not shapes_part.endswith("|") or not pose_part.endswith("|"):
        raise ValueError("every field must end with '|'")
    blendshapes: dict[str, int] = {}
    for field in shapes_part[:-1].split("|"):
        name, sep, value = field.partition("-")
        if not sep or not name.isidentifier() or not value.isdigit() or not 0 <= int(value) <= 100:
            raise ValueError(f"bad blendshape field {field!r}")
        if name in blendshapes:
            raise ValueError(f"duplicate blendshape {name!r}")
        blendshapes[name] = int(value)
    poses: dict[str, tuple[float, ...]] = {}
    for field in pose_part[:-1].split("|"):
        key, sep, values = field.partition("#")
        if not sep or key in poses:
            raise ValueError(f"bad pose field {field!r}")
        poses[key] = tuple(float(v) for v in values.split(","))
    if list(poses) != ["head", "rightEye", "leftEye"]:
        raise ValueError(f"expected head, rightEye, leftEye in that order, got {list(poses)}")
    if [len(poses[k]) for k in poses] != [6, 3, 3]:
        raise ValueError(f"expected 6, 3, 3 numbers, got {[len(v) for v in poses.values()]}")
    return IFacialMocapPacket(blendshapes, poses["head"], poses["rightEye"], poses["leftEye"])


@dataclass(frozen=True)
class LiveLinkPacket:
    """One Live Link Face packet: values are the 61 floats (52 ARKit shapes, then head and eye angles)."""

    version: int
    device_id: str
    subject: str
    frame_number: int
    subframe: float
    rate_numerator: int
    rate_denominator: int
    values: tuple[float, ...]


def parse_livelink(data: bytes) -> LiveLinkPacket:
    """Parse one Live Link Face (version 6) packet; ``ValueError`` for anything off the format."""
    offset = 0

    def take(fmt: str) -> tuple:
        nonlocal offset
        size = struct.calcsize(fmt)
        if offset + size > len(data):
            raise ValueError(f"packet ends at {len(data)} bytes, needed {offset + size}")
        values = struct.unpack_from(fmt, data, offset)
        offset += size
        return values

    def text() -> str:
        (length,) = take(">i")
        if length < 0:
            raise ValueError(f"negative string length {length}")
        return take(f">{length}s")[0].decode("utf-8")

    (version,) = take(">B")
    device_id, subject = text(), text()
    number, subframe, numerator, denominator = take(">ifii")
    (count,) = take(">B")
    if count != 61:
        raise ValueError(f"expected 61 values, got {count}")
    values = take(f">{count}f")
    if offset != len(data):
        raise ValueError(f"{len(data) - offset} bytes after the values")
    return LiveLinkPacket(version, device_id, subject, number, subframe, numerator, denominator, values)


class _RecordingServer(osc_server.ThreadingOSCUDPServer):
    """A threading OSC server that also files each message under its datagram, in arrival order (datagrams
    arrive in order on one thread; each is then handled on its own thread)."""

    daemon_threads = True

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.packets: list[list[tuple[str, tuple]]] = []
        self._pending: dict[int, list[tuple[str, tuple]]] = {}
        self._current = threading.local()
        table = dispatcher.Dispatcher()
        table.set_default_handler(self._record)
        super().__init__(("127.0.0.1", 0), table)

    def process_request(self, request, client_address) -> None:  # the serving thread, in arrival order
        slot: list[tuple[str, tuple]] = []
        with self.lock:
            self.packets.append(slot)
            self._pending[id(request)] = slot
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:  # this datagram's own thread
        with self.lock:
            self._current.slot = self._pending.pop(id(request))
        super().process_request_thread(request, client_address)

    def _record(self, address: str, *args) -> None:
        with self.lock:
            self._current.slot.append((address, tuple(args)))


class VmcReceiver:
    """A real OSC server (python-osc ``ThreadingOSCUDPServer`` with a ``Dispatcher``) on 127.0.0.1 (:attr:`port`)
    recording ``(address, args)`` per message: :attr:`messages` in arrival order, :attr:`packets` per datagram."""

    def __init__(self) -> None:
        self._server = _RecordingServer()
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="vmc-receiver", daemon=True)

    def __enter__(self) -> VmcReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2.0)

    @property
    def packets(self) -> list[list[tuple[str, tuple]]]:
        with self._server.lock:
            return [list(p) for p in self._server.packets]

    @property
    def messages(self) -> list[tuple[str, tuple]]:
        return [m for p in self.packets for m in p]

    def wait(self, address: str, count: int, timeout: float = 5.0) -> list[tuple[str, tuple]]:
        """All messages once ``count`` messages to ``address`` have come (or ``timeout`` seconds have passed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = self.messages
            if sum(a == address for a, _ in messages) >= count:
                time.sleep(0.05)  # let the datagram threads still running finish
                return self.messages
            time.sleep(0.005)
        return self.messages
