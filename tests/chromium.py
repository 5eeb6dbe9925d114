"""Headless Debian Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: commands in on fd
3, replies out on fd 4, each a JSON message ended by NUL), standard library only.

Why not `chromium --dump-dom` / `--screenshot`: those read the page after a fixed budget of virtual time, whether or
not the charts have drawn, and cannot ask the page anything. Here a test waits until the page says what it expects
(polling an expression), reads what MLflow drew, and only then takes the screenshot.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, Optional

CHROMIUM = "/usr/bin/chromium"


class ChromiumError(RuntimeError):
    pass


class Chromium:
    """One headless browser with one page; use as a context manager (the browser is killed by its PID on exit)."""

    def __init__(self, user_dir: Path, width: int = 1600, height: int = 1000, timeout_s: float = 60.0):
        self.user_dir, self.width, self.height, self.timeout_s = Path(user_dir), width, height, timeout_s
        self.proc: Optional[subprocess.Popen] = None
        self._next_id = 0
        self._buffer = b""
        self.session = ""

    def __enter__(self) -> Chromium:
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()

        def pipes_on_3_and_4() -> None:  # the fds Chromium reads commands from and writes replies to
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--remote-debugging-pipe", f"--user-data-dir={self.user_dir}",
             f"--window-size={self.width},{self.height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(3, 4), preexec_fn=pipes_on_3_and_4)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._out, self._in = os.fdopen(to_browser_w, "wb", buffering=0), os.fdopen(from_browser_r, "rb", buffering=0)
        target = self.send("Target.createTarget", url="about:blank", session=False)["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True, session=False)["sessionId"]
        self.send("Page.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height, deviceScaleFactor=1,
                  mobile=False)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        for fh in (getattr(self, "_out", None), getattr(self, "_in", None)):
            if fh is not None:
                fh.close()

    def _read_message(self, deadline: float) -> Dict[str, Any]:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise ChromiumError("no reply from Chromium in time")
            chunk = self._in.read(65536)
            if not chunk:
                raise ChromiumError("Chromium closed its DevTools pipe")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def send(self, method: str, session: bool = True, **params: Any) -> Dict[str, Any]:
        """One DevTools command; its result (events that arrive meanwhile are dropped)."""
        self._next_id += 1
        message: Dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        self._out.write(json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout_s
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise ChromiumError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def open(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited, the value returned as JSON)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise ChromiumError(f"{expression[:80]}…: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 120.0, every_s: float = 0.5) -> Any:
        """Poll `expression` until it is truthy; its value. Raises, with the last value, when it never is."""
        deadline = time.monotonic() + timeout_s
        value: Any = None
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except ChromiumError as exc:  # the page is navigating: its context is gone for a moment
                value = str(exc)
            if value and not (isinstance(value, str) and value.startswith("Runtime.evaluate")):
                return value
            time.sleep(every_s)
        raise ChromiumError(f"{expression[:120]}… never held within {timeout_s:.0f} s (last: {value!r})")

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", format="png")["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)
