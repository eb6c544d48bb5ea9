"""The review page in headless Chromium, driven over the DevTools protocol (--remote-debugging-pipe, stdlib
only): the page loads with zero network requests (only the page itself and the linked audio file are
fetched), its scripts run under the page's Content-Security-Policy, clicking a flag and the j/k keys seek
the audio element, the confidence filter hides flags, markup in the transcript stays text, and a
screenshot PNG is produced.

Chromium: Debian `chromium` (scripts/install_sysdeps.sh installs it), or the binary named by
$CHROMIUM. Skipped with a reason only when no Chromium binary can be found.
SAVE_SCREENSHOT=1 also writes pipeline/report/screenshot.png (the README picture, from the demo session).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from pipeline.exports import write_exports
from pipeline.serialize import read_session_json

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "session_small.json"


def _chromium() -> str | None:
    env = os.environ.get("CHROMIUM")
    if env and Path(env).exists():
        return env
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        p = shutil.which(name)
        if p:
            return p
    return None


CHROMIUM = _chromium()
# In CI (CI=true) the CI script installs Chromium, so a missing browser is a failure there, not a skip.
pytestmark = [pytest.mark.system,
              pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                 reason="no Chromium binary found (run scripts/install_sysdeps.sh or set $CHROMIUM)")]


class DevTools:
    """Minimal DevTools-protocol client over --remote-debugging-pipe (fd 3: commands in, fd 4: out)."""

    def __init__(self, exe: str, user_data_dir: str) -> None:
        cmd_r, self._cmd_w = os.pipe()
        self._out_r, out_w = os.pipe()

        def child_fds() -> None:
            a = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(out_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        args = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-default-apps", "--mute-audio", "--disable-dev-shm-usage",
                "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={user_data_dir}",
                "--remote-debugging-pipe", "--window-size=1280,900", "about:blank"]
        self.proc = subprocess.Popen(args, pass_fds=(3, 4), preexec_fn=child_fds,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(cmd_r)
        os.close(out_w)
        self._id = 0
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._responses: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.session: str | None = None

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._out_r, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._cond.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                with self._cond:
                    if "id" in msg:
                        self._responses[msg["id"]] = msg
                    else:
                        self.events.append(msg)
                    self._cond.notify_all()

    def send(self, method: str, params: dict[str, Any] | None = None, session: bool = True,
             timeout: float = 20.0) -> dict[str, Any]:
        with self._lock:
            self._id += 1
            mid = self._id
        msg: dict[str, Any] = {"id": mid, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._cond:
            while mid not in self._responses:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise TimeoutError(f"no answer to {method}")
                self._cond.wait(left)
            resp = self._responses.pop(mid)
        if "error" in resp:
            raise RuntimeError(f"{method}: {resp['error']}")
        return resp.get("result", {})

    def wait_event(self, method: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for ev in self.events:
                    if ev.get("method") == method:
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {method} event")
                self._cond.wait(left)

    def open_page(self) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False})

    def js(self, expression: str) -> Any:
        res = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in res:
            raise RuntimeError(f"JS error: {res['exceptionDetails'].get('text')}")
        return res["result"].get("value")

    def click(self, selector: str) -> None:
        box = self.js(f"""(() => {{ const el = document.querySelector({json.dumps(selector)});
            el.scrollIntoView({{block: 'center'}}); const r = el.getBoundingClientRect();
            return [r.left + Math.min(20, r.width / 2), r.top + Math.min(10, r.height / 2)]; }})()""")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1], "button": "left",
                                                   "clickCount": 1})

    def key(self, char: str) -> None:
        code = f"Key{char.upper()}"
        self.send("Input.dispatchKeyEvent", {"type": "keyDown", "key": char, "code": code, "text": char})
        self.send("Input.dispatchKeyEvent", {"type": "keyUp", "key": char, "code": code})

    def close(self) -> None:
        try:
            self.send("Browser.close", session=False, timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._cmd_w, self._out_r):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture(scope="module")
def page_env(tmp_path_factory: pytest.TempPathFactory):
    record = read_session_json(FIXTURE)
    root = tmp_path_factory.mktemp("browser")
    audio = root / "audio" / "demo small.wav"
    audio.parent.mkdir()
    sr = 8000
    t = np.arange(int(record.duration_s * sr)) / sr
    sf.write(audio, (0.05 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr, subtype="PCM_16")
    session_dir = root / "out" / record.session_id
    (report,) = write_exports(record, session_dir, audio, ("html",))
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    dt = DevTools(CHROMIUM, profile)  # type: ignore[arg-type]
    try:
        dt.open_page()
        dt.send("Page.navigate", {"url": report.as_uri()})
        dt.wait_event("Page.loadEventFired")
        deadline = time.monotonic() + 15
        while dt.js("document.body.getAttribute('data-ready')") != "1":
            if time.monotonic() > deadline:
                raise TimeoutError("page script did not run")
            time.sleep(0.05)
        # let the audio element load its metadata (a local file request)
        deadline = time.monotonic() + 15
        while dt.js("document.getElementById('audio').readyState") < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        yield dt, report, audio, record
    finally:
        dt.close()
        shutil.rmtree(profile, ignore_errors=True)


def test_zero_network_requests(page_env) -> None:
    dt, report, audio, _ = page_env
    urls = [ev["params"]["request"]["url"] for ev in dt.events if ev.get("method") == "Network.requestWillBeSent"]
    # data: URLs are in-memory icons of Chromium's own audio controls, never a fetch; the page has none
    assert "data:" not in report.read_text(encoding="utf-8")
    urls = [u for u in urls if not u.startswith("data:")]
    assert report.as_uri() in urls
    allowed = {report.as_uri(), audio.resolve().as_uri()}
    assert set(urls) <= allowed, f"unexpected requests: {sorted(set(urls) - allowed)}"
    assert all(u.startswith("file://") for u in urls)
    # the audio was linked (relative path resolved by the browser) and loaded, not embedded
    assert dt.js("document.getElementById('audio').readyState") >= 1
    assert abs(dt.js("document.getElementById('audio').duration") - page_env[3].duration_s) < 0.5


def test_scripts_run_under_csp_without_violations(page_env) -> None:
    dt, *_ = page_env
    logs = [json.dumps(ev["params"]) for ev in dt.events
            if ev.get("method") in ("Log.entryAdded", "Runtime.exceptionThrown", "Runtime.consoleAPICalled")]
    assert not [m for m in logs if "Content Security Policy" in m or "Uncaught" in m], logs
    assert dt.js("document.body.getAttribute('data-ready')") == "1"


def test_markup_in_transcript_stays_text(page_env) -> None:
    dt, *_ = page_env
    assert dt.js("document.querySelectorAll('script').length") == 2
    assert dt.js("document.querySelectorAll('#transcript b').length") == 0
    assert dt.js("[...document.querySelectorAll('#transcript .txt')].some(e => e.textContent.includes('</script>'))")
    assert not [ev for ev in dt.events if ev.get("method") == "Page.javascriptDialogOpening"]


def test_clicking_a_flag_seeks_the_audio(page_env) -> None:
    dt, *_ = page_env
    starts = dt.js("[...document.querySelectorAll('li.flag')].map(e => Number(e.dataset.start))")
    assert len(starts) >= 5
    dt.click("li.flag:nth-child(3) .evidence")
    assert dt.js("document.getElementById('audio').currentTime") == pytest.approx(starts[2], abs=0.01)
    assert dt.js("document.querySelector('li.flag.active').id") == "flag-2"
    # the transcript line of that moment is highlighted
    cur = dt.js("Number(document.querySelector('li.turn.current').dataset.start)")
    assert cur <= starts[2] + 1e-6
    # a transcript line seeks too
    dt.click("#turn-7 .txt")
    t7 = dt.js("Number(document.getElementById('turn-7').dataset.start)")
    assert dt.js("document.getElementById('audio').currentTime") == pytest.approx(t7, abs=0.01)
    assert dt.js("document.getElementById('turn-7').classList.contains('current')")


def test_clicking_the_timeline_seeks_there(page_env) -> None:
    dt, _, _, record = page_env
    data = dt.js("JSON.parse(document.getElementById('session-data').textContent)")
    target = 60.0
    x_user = data["timeline"]["x0"] + target / data["duration"] * data["timeline"]["width"]
    # a point on the 'pauses' lane background at user x, converted to client coordinates
    pos = dt.js(f"""(() => {{ const svg = document.querySelector('svg.timeline');
        svg.scrollIntoView({{block: 'center'}});
        const lane = [...svg.querySelectorAll('rect.lane-bg')][3];
        const p = svg.createSVGPoint(); p.x = {x_user}; p.y = Number(lane.getAttribute('y')) + 5;
        const c = p.matrixTransform(svg.getScreenCTM()); return [c.x, c.y]; }})()""")
    for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
        dt.send("Input.dispatchMouseEvent", {"type": kind, "x": pos[0], "y": pos[1], "button": "left", "clickCount": 1})
    # one screen pixel is about duration / (timeline width in pixels) seconds
    assert dt.js("document.getElementById('audio').currentTime") == pytest.approx(target, abs=0.5)


def test_clicking_an_arousal_dot_seeks_to_its_turn(page_env) -> None:
    """The arousal lane (prosody, issue 15): one dot per measured turn; a click plays from that turn."""
    dt, _, _, record = page_env
    dots = dt.js("[...document.querySelectorAll('svg circle.ar-dot')].map(e => Number(e.dataset.start))")
    assert len(dots) == sum(p.arousal is not None for p in record.prosody) > 10
    dt.click("svg circle.ar-dot:nth-of-type(5)")
    fifth = dt.js("Number(document.querySelectorAll('svg circle.ar-dot')[4].dataset.start)")
    assert dt.js("document.getElementById('audio').currentTime") == pytest.approx(fifth, abs=0.01)


def test_repair_link_and_context_lines_seek(page_env) -> None:
    dt, _, _, record = page_env
    rupture = next(e for e in record.events if e.type == "rupture" and e.resolved)
    repair_start = next(t.start for t in record.turns if t.index == rupture.repair_turn_index)
    dt.click(f"li.flag[data-start='{rupture.start:.3f}'] .jump")
    assert dt.js("document.getElementById('audio').currentTime") == pytest.approx(repair_start, abs=0.01)
    dt.js(f"document.querySelector(\"li.flag[data-start='{rupture.start:.3f}'] details\").open = true")
    dt.click(f"li.flag[data-start='{rupture.start:.3f}'] details p:first-of-type")
    first_ctx = dt.js(f"Number(document.querySelector(\"li.flag[data-start='{rupture.start:.3f}'] details p\").dataset.start)")
    assert first_ctx < rupture.start
    assert dt.js("document.getElementById('audio').currentTime") == pytest.approx(first_ctx, abs=0.01)


def test_keyboard_moves_between_flags(page_env) -> None:
    dt, *_ = page_env
    starts = dt.js("[...document.querySelectorAll('li.flag')].map(e => Number(e.dataset.start))")
    dt.click("li.flag:nth-child(1) .evidence")
    dt.key("j")
    assert dt.js("document.querySelector('li.flag.active').id") == "flag-1"
    assert dt.js("document.getElementById('audio').currentTime") == pytest.approx(starts[1], abs=0.01)
    dt.key("n")
    dt.key("k")
    dt.key("p")
    assert dt.js("document.querySelector('li.flag.active').id") == "flag-0"
    assert dt.js("document.getElementById('audio').currentTime") == pytest.approx(starts[0], abs=0.01)


def test_filters_hide_flags(page_env) -> None:
    dt, _, _, record = page_env
    total = dt.js("document.querySelectorAll('li.flag').length")
    dt.js("(() => { const r = document.getElementById('minconf'); r.value = '0.8'; "
          "r.dispatchEvent(new Event('input')); })()")
    shown = dt.js("document.querySelectorAll('li.flag:not([hidden])').length")
    expected = sum(1 for e in record.events if e.type in ("rupture", "repair", "interruption", "talk_time_imbalance")
                   and e.confidence >= 0.8)
    assert shown == expected < total
    assert dt.js("document.getElementById('flag-count').textContent") == str(expected)
    dt.js("(() => { const b = document.querySelector('input[name=ftype][value=repair]'); b.click(); })()")
    assert dt.js("[...document.querySelectorAll('li.flag:not([hidden])')].every(e => e.dataset.type !== 'repair')")
    # reset for the screenshot
    dt.js("(() => { document.querySelector('input[name=ftype][value=repair]').click(); "
          "const r = document.getElementById('minconf'); r.value = '0'; r.dispatchEvent(new Event('input')); })()")


def test_screenshot(page_env, tmp_path: Path) -> None:
    dt, *_ = page_env
    dt.click("li.flag:nth-child(2) .evidence")
    dt.js("window.scrollTo(0, 0)")
    png = base64.b64decode(dt.send("Page.captureScreenshot", {"format": "png"})["data"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    out = tmp_path / "report.png"
    out.write_bytes(png)
    assert out.stat().st_size == len(png)


DEMO_JSON = ROOT / "tests" / "fixtures" / "demo_session.json"
DEMO_AUDIO = ROOT / "pipeline" / "demo" / "demo.flac"


@pytest.mark.skipif(not (DEMO_JSON.exists() and DEMO_AUDIO.exists()), reason="demo session snapshot or audio missing")
def test_demo_session_page(tmp_path: Path) -> None:
    """The demo session's page with the real demo recording linked: offline, audio plays from the linked
    file, flags seek. SAVE_SCREENSHOT=1 writes the README picture pipeline/report/screenshot.png."""
    record = read_session_json(DEMO_JSON)
    (report,) = write_exports(record, tmp_path / record.session_id, DEMO_AUDIO, ("html",))
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    dt = DevTools(CHROMIUM, profile)  # type: ignore[arg-type]
    try:
        dt.open_page()
        dt.send("Page.navigate", {"url": report.as_uri()})
        dt.wait_event("Page.loadEventFired")
        deadline = time.monotonic() + 15
        while dt.js("document.getElementById('audio').readyState") < 1:
            assert time.monotonic() < deadline, "the linked demo recording did not load"
            time.sleep(0.05)
        assert dt.js("document.getElementById('audio').duration") == pytest.approx(record.duration_s, abs=0.5)
        urls = {ev["params"]["request"]["url"] for ev in dt.events if ev.get("method") == "Network.requestWillBeSent"}
        assert {u for u in urls if not u.startswith("data:")} == {report.as_uri(), DEMO_AUDIO.resolve().as_uri()}
        starts = dt.js("[...document.querySelectorAll('li.flag')].map(e => Number(e.dataset.start))")
        assert len(starts) == sum(1 for e in record.events
                                  if e.type in ("rupture", "repair", "interruption", "talk_time_imbalance"))
        dt.click("li.flag:nth-child(2) .evidence")
        assert dt.js("document.getElementById('audio').currentTime") == pytest.approx(starts[1], abs=0.01)
        dt.js("window.scrollTo(0, 0)")
        png = base64.b64decode(dt.send("Page.captureScreenshot", {"format": "png"})["data"])
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        (tmp_path / "demo.png").write_bytes(png)
        if os.environ.get("SAVE_SCREENSHOT") == "1":
            (ROOT / "pipeline" / "report" / "screenshot.png").write_bytes(png)
    finally:
        dt.close()
        shutil.rmtree(profile, ignore_errors=True)
