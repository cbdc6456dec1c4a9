"""A tiny Chrome DevTools Protocol client: open a local HTML file in headless Chromium (Debian's
``chromium``), collect console errors and exceptions, measure elements, take screenshots.

Chromium listens on 127.0.0.1 on a free port (``--remote-debugging-port``); the client speaks
CDP over one WebSocket (the ``websockets`` package). Network requests other than the file itself
are recorded, so a test can assert that the page made none.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageReport:
    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    figure_sizes: list[tuple[str, float, float]] = field(default_factory=list)
    overflow_px: float = 0.0  # how far the page is wider than the viewport
    screenshots: dict[int, Path] = field(default_factory=dict)
    figure_shots: dict[int, Path] = field(default_factory=dict)


_MEASURE = """
(() => {
  const out = [];
  for (const el of document.querySelectorAll('figure svg, figure img, img, main svg')) {
    const r = el.getBoundingClientRect();
    out.push([el.closest('figure') ? el.closest('figure').id : el.tagName, r.width, r.height]);
  }
  return JSON.stringify({figs: out,
    overflow: document.documentElement.scrollWidth - window.innerWidth});
})()
"""


class _Session:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        mid = self.next_id
        await self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(await self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    async def drain(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                msg = await asyncio.wait_for(self.ws.recv(), timeout=end - time.monotonic())
            except TimeoutError:
                break
            self.events.append(json.loads(msg))


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _page_ws(port: int, deadline: float) -> str:
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as r:
                targets = json.load(r)
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                return str(pages[0]["webSocketDebuggerUrl"])
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("Chromium did not open its DevTools port")
        time.sleep(0.2)


async def _inspect(ws_url: str, url: str, shots: dict[int, Path]) -> PageReport:
    import websockets

    report = PageReport()
    async with websockets.connect(ws_url, max_size=64 * 2**20) as ws:
        s = _Session(ws)
        await s.call("Runtime.enable")
        await s.call("Log.enable")
        await s.call("Network.enable")
        await s.call("Page.enable")
        for width, path in shots.items():
            await s.call(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=900,
                deviceScaleFactor=1,
                mobile=width < 600,
            )
            await s.call("Page.navigate", url=url)
            await s.drain(2.0)
            res = await s.call("Runtime.evaluate", expression=_MEASURE, returnByValue=True)
            data = json.loads(res["result"]["value"])
            report.figure_sizes = [(i, float(w), float(h)) for i, w, h in data["figs"]]
            report.overflow_px = max(report.overflow_px, float(data["overflow"]))
            shot = await s.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)
            path.write_bytes(base64.b64decode(shot["data"]))
            report.screenshots[width] = path
            # and the first figure, scrolled into view
            found = await s.call(
                "Runtime.evaluate",
                expression="(() => { const f = document.querySelector('figure'); "
                "if (!f) return false; f.scrollIntoView(); return true; })()",
                returnByValue=True,
            )
            if found["result"].get("value"):
                await s.drain(0.5)
                shot = await s.call("Page.captureScreenshot", format="png")
                fig_path = path.with_name(f"{path.stem}-figure.png")
                fig_path.write_bytes(base64.b64decode(shot["data"]))
                report.figure_shots[width] = fig_path
        for ev in s.events:
            method, params = ev.get("method"), ev.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                report.console_errors.append(json.dumps(params.get("args"))[:300])
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                report.console_errors.append(params["entry"].get("text", "")[:300])
            elif method == "Runtime.exceptionThrown":
                report.exceptions.append(json.dumps(params.get("exceptionDetails"))[:300])
            elif method == "Network.requestWillBeSent":
                report.requests.append(params["request"]["url"])
    return report


def inspect_page(html: Path, shots: dict[int, Path], timeout: float = 60) -> PageReport:
    """Open ``html`` in headless Chromium at each width of ``shots`` and save a screenshot of
    the top of the page there."""
    browser = find_browser()
    if browser is None:
        raise RuntimeError("no Chromium on PATH")
    port = _free_port()
    profile = tempfile.mkdtemp(prefix="trialkit-chromium-")
    proc = subprocess.Popen(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--remote-debugging-address=127.0.0.1",
            f"--remote-debugging-port={port}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ws_url = _page_ws(port, time.monotonic() + timeout)
        return asyncio.run(
            asyncio.wait_for(_inspect(ws_url, html.resolve().as_uri(), shots), timeout)
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)
