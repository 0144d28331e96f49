"""Opens a page in headless Chromium over the DevTools protocol, as a person's browser would.

What a test needs to know of a page: the errors its console showed, whether its images loaded,
the value of a script run in it, and a screenshot.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field

import websocket

CHROMIUM = "/usr/bin/chromium"
# The flags of a browser on a machine with no network beyond loopback.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
    "--window-size=1200,900",
)


@dataclass
class PageVisit:
    """What the browser saw of one page."""

    console_errors: list[str] = field(default_factory=list)
    value: object = None
    screenshot_png: bytes = b""


class Chromium:
    """One headless Chromium process and a DevTools connection to its first page."""

    def __init__(self, timeout_seconds: float = 60):
        self._profile = tempfile.mkdtemp(prefix="dlforge-chromium-")
        self._process = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={self._profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._timeout = timeout_seconds
        self._next_id = 0
        self._events: list[dict] = []
        port = self._wait_for_port()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as reply:
            targets = json.load(reply)
        page = next(target for target in targets if target["type"] == "page")
        self._socket = websocket.create_connection(
            page["webSocketDebuggerUrl"], timeout=self._timeout, suppress_origin=True
        )

    def _wait_for_port(self) -> int:
        path = os.path.join(self._profile, "DevToolsActivePort")
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"Chromium exited with code {self._process.returncode}")
            if os.path.exists(path):
                with open(path) as handle:
                    first_line = handle.readline().strip()
                if first_line:
                    return int(first_line)
            time.sleep(0.2)
        raise TimeoutError(f"Chromium did not open its DevTools port in {self._timeout} s")

    def call(self, method: str, **params) -> dict:
        """Sends one DevTools command and returns its result; events meanwhile are kept."""
        self._next_id += 1
        self._socket.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            message = json.loads(self._socket.recv())
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self._events.append(message)
        raise TimeoutError(f"{method} got no answer in {self._timeout} s")

    def _wait_for_event(self, method: str) -> None:
        deadline = time.monotonic() + self._timeout
        while not any(event.get("method") == method for event in self._events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} in {self._timeout} s")
            self._events.append(json.loads(self._socket.recv()))

    def visit(self, url: str, script: str) -> PageVisit:
        """Loads `url`, runs `script` (an expression) in it, and takes a full-page screenshot."""
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        self._events.clear()
        self.call("Page.navigate", url=url)
        self._wait_for_event("Page.loadEventFired")
        result = self.call("Runtime.evaluate", expression=script, returnByValue=True)
        visit = PageVisit(value=result["result"].get("value"))
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        visit.screenshot_png = base64.b64decode(shot["data"])
        for event in self._events:
            params = event.get("params", {})
            if event.get("method") == "Runtime.exceptionThrown":
                visit.console_errors.append(params["exceptionDetails"].get("text", "exception"))
            elif event.get("method") == "Runtime.consoleAPICalled" and params["type"] == "error":
                visit.console_errors.append(json.dumps(params["args"]))
            elif event.get("method") == "Log.entryAdded" and params["entry"]["level"] == "error":
                visit.console_errors.append(params["entry"]["text"])
        return visit

    def close(self) -> None:
        self._socket.close()
        self._process.terminate()
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
