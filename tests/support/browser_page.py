"""One page in headless Chromium (SwiftShader WebGL), driven from the test over the DevTools protocol: evaluate
JavaScript in it, wait for a condition, take a screenshot. Skips when Chromium is not installed."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from three_tools import FLAGS


def chromium_or_skip() -> str:
    """The Chromium executable (the test is skipped without one)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    return chromium


class BrowserPage:
    """Headless Chromium showing ``url`` in a ``size`` (width, height) px window; ``close()`` ends it.

    Console messages and uncaught exceptions of the page are kept in :attr:`log` (for failure messages)."""

    def __init__(self, url: str, size: tuple[int, int] = (960, 540), timeout: float = 30.0) -> None:
        from websockets.sync.client import connect

        chromium = chromium_or_skip()
        self._folder = tempfile.TemporaryDirectory(prefix="browser-page-")
        profile = Path(self._folder.name)
        self._output = open(profile / "chromium.log", "wb")
        self._process = subprocess.Popen(
            [chromium, *FLAGS, f"--user-data-dir={profile / 'profile'}", "--remote-debugging-port=0",
             f"--window-size={size[0]},{size[1]}", "--hide-scrollbars", url],
            stdin=subprocess.DEVNULL, stdout=self._output, stderr=self._output, start_new_session=True)
        self.log: list[str] = []
        self._id, self._stack = 0, contextlib.ExitStack()
        try:
            port = self._debugging_port(profile / "profile" / "DevToolsActivePort", timeout)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=timeout) as answer:
                pages = [t for t in json.load(answer) if t["type"] == "page"]
            self._socket = self._stack.enter_context(connect(pages[0]["webSocketDebuggerUrl"], max_size=None,
                                                             open_timeout=timeout))
            self.call("Runtime.enable")
            self.call("Emulation.setDeviceMetricsOverride", width=size[0], height=size[1], deviceScaleFactor=1,
                      mobile=False)  # the viewport itself, not the window around it
        except BaseException:
            self.close()
            raise

    def _debugging_port(self, file: Path, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while not (file.is_file() and file.read_text().strip()):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("chromium did not open its debugging port; log tail:\n" + self.chromium_log())
            time.sleep(0.05)
        return int(file.read_text().split()[0])

    def chromium_log(self) -> str:
        """The last 3000 characters of Chromium's own output."""
        return (Path(self._folder.name) / "chromium.log").read_text(errors="replace")[-3000:]

    def call(self, method: str, **params: object) -> dict:
        """One DevTools protocol command; its result (``RuntimeError`` for a protocol error)."""
        self._id += 1
        self._socket.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv(timeout=60))
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._note(message)

    def _note(self, event: dict) -> None:
        params = event.get("params", {})
        if event.get("method") == "Runtime.consoleAPICalled":
            self.log.append(f"console.{params['type']}: " + " ".join(
                str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif event.get("method") == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.log.append("exception: " + str(details.get("exception", {}).get("description", details.get("text"))))

    def evaluate(self, expression: str) -> object:
        """The JSON value of ``expression`` in the page (promises awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} failed in the page: {result['exceptionDetails']}\n" + self.notes())
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0) -> object:
        """Poll ``expression`` until it is truthy and return it; ``TimeoutError`` with the page's log."""
        deadline = time.monotonic() + timeout
        while not (value := self.evaluate(expression)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression!r} stayed {value!r} for {timeout} s\n" + self.notes())
            time.sleep(0.05)
        return value

    def notes(self) -> str:
        """The page's console log and exceptions so far, one a line."""
        return "\n".join(self.log[-20:])

    def screenshot(self, path: Path) -> Path:
        """The whole window as a PNG at ``path``."""
        data = self.call("Page.captureScreenshot", format="png")["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)

    def close(self) -> None:
        """End Chromium (its own process group) and remove its profile; again: nothing."""
        self._stack.close()
        if self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
        if not self._output.closed:
            self._output.close()
            self._folder.cleanup()

    def __enter__(self) -> BrowserPage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
