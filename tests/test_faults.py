"""Kill-and-resume and clean stop, through the real `rupture` command in subprocesses.

"Done exactly once" (checked by `check_exactly_once`): after the final run, for every session of the batch
  - session.json exists, parses, and every output it lists exists; no `.*.tmp` file is left anywhere;
  - the audit log is whole lines of valid JSON only;
  - across all runs, the audit log holds exactly ONE `processed` line for the session, and its attempt id is
    the attempt id stored in the final session.json (attempts killed before committing session.json leave
    only a `started` line; a session committed just before the kill gets its `processed` line on the rerun,
    marked `recovered`).

Cheap cycles use `rupture tag` with the tagger off (real runner, exports, audit; no model load), so that
many SIGKILLs at random moments fit in a few seconds each; the audio cycles use the real models.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.serialize import read_session_json

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[1]
RUPTURE = [sys.executable, "-m", "pipeline.cli"]
KILL_SEED = int(os.environ.get("RUPTURE_KILL_SEED", "20261123"))

LINES = [
    ("therapist", "How have things been since we last met?"),
    ("client", "I do not know. Fine, I guess."),
    ("therapist", "It sounds like something is on your mind today."),
    ("client", "Honestly this is not helping me at all."),
    ("therapist", "Thank you for telling me. Can we look at what has not been working?"),
    ("client", "Yeah. Maybe."),
]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONWARNINGS"] = "ignore"
    return env


def write_transcripts(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        rows = ["start,end,speaker,text,role"]
        t = 0.0
        for k in range(8 + i % 5):
            role, text = LINES[(k + i) % len(LINES)]
            rows.append(f"{t:.1f},{t + 2.5:.1f},{'T' if role == 'therapist' else 'C'},\"{text}\",{role}")
            t += 3.0
        p = folder / f"s{i:02d}.csv"
        p.write_text("\n".join(rows) + "\n")
        paths.append(p)
    return paths


def audit_lines(out: Path) -> list[dict]:
    raw = (out / "audit.jsonl").read_bytes()
    assert raw.endswith(b"\n"), "audit log ends in a torn line"
    return [json.loads(line) for line in raw.decode("utf-8").splitlines()]  # every line must parse


def check_exactly_once(out: Path, session_ids: list[str]) -> dict[str, int]:
    assert session_ids
    audit = audit_lines(out)
    assert not list(out.rglob("*.tmp")), list(out.rglob("*.tmp"))
    stats = {"started": 0, "recovered": 0}
    for sid in session_ids:
        sdir = out / sid
        rec = read_session_json(sdir / "session.json")
        assert rec.session_id == sid
        prov = json.loads((sdir / "session.json").read_text())["provenance"]
        assert prov["outputs"], sid
        for name in prov["outputs"]:
            assert (sdir / name).is_file() and (sdir / name).stat().st_size > 0, (sid, name)
        processed = [a for a in audit if a["event"] == "processed" and a["session_id"] == sid]
        assert len(processed) == 1, (sid, processed)
        assert processed[0]["attempt"] == prov["attempt"]
        started = [a for a in audit if a["event"] == "started" and a["session_id"] == sid]
        assert prov["attempt"] in {a["attempt"] for a in started}
        stats["started"] += len(started)
        stats["recovered"] += bool(processed[0].get("recovered"))
    return stats


def _start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(RUPTURE + args, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=open(log, "ab"), start_new_session=True)


def _wait_for(pred, timeout: float, proc: subprocess.Popen | None = None) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        if proc is not None and proc.poll() is not None:
            return pred()
        time.sleep(0.05)
    return False


def _count(out: Path, event: str) -> int:
    try:
        return (out / "audit.jsonl").read_bytes().count(f'"event": "{event}"'.encode())
    except FileNotFoundError:
        return 0


def test_sigkill_at_random_moments_then_resume(tmp_path):
    """Many SIGKILL cycles at random moments of a 40-session batch; then a rerun finishes it exactly once."""
    rng = random.Random(KILL_SEED)
    inputs = write_transcripts(tmp_path / "in", 40)
    cfg = tmp_path / "notag.yaml"
    cfg.write_text("tagging: {enabled: false}\n")
    out = tmp_path / "out"
    args = ["tag", *map(str, inputs), "--out", str(out), "--config", str(cfg)]
    log = tmp_path / "stderr.log"
    kills = 0
    for cycle in range(10):
        before = _count(out, "processed")
        proc = _start(args, log)
        # kill somewhere between "nothing written yet" and "a few sessions in"
        target = before + rng.randint(0, 3)
        _wait_for(lambda: _count(out, "started") > 0 and _count(out, "processed") >= target, 60, proc)
        time.sleep(rng.uniform(0, 0.03))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait(30)
    assert kills >= 6, f"only {kills} runs were still running when killed"
    final = subprocess.run(RUPTURE + args, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr[-2000:]
    sids = [p.stem for p in inputs]
    stats = check_exactly_once(out, sids)
    # a further run does nothing but skip
    again = subprocess.run(RUPTURE + args, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "40 skipped" in again.stderr
    check_exactly_once(out, sids)
    print(f"kill-and-resume: {kills} SIGKILLs, {stats['started']} attempts for {len(sids)} sessions, "
          f"{stats['recovered']} recovered audit lines, nothing lost (seed {KILL_SEED})")


def test_torn_audit_line_is_cut_and_recorded(tmp_path):
    from pipeline.runner import AuditLog, read_audit

    path = tmp_path / "audit.jsonl"
    path.write_bytes(b'{"event": "started", "session_id": "a"}\n{"event": "proce')
    assert [a["event"] for a in read_audit(path)] == ["started"]
    log = AuditLog(path, repair=True)
    log.write("skipped", session_id="a")
    log.close()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [a["event"] for a in lines] == ["started", "audit_repaired", "skipped"]
    assert lines[1]["dropped_bytes"] == len(b'{"event": "proce')


def test_commit_without_processed_line_is_recovered_once(tmp_path):
    """Killed after session.json was committed but before its `processed` line: the rerun writes the line
    (recovered) instead of processing the session again."""
    inputs = write_transcripts(tmp_path / "in", 2)
    cfg = tmp_path / "notag.yaml"
    cfg.write_text("tagging: {enabled: false}\n")
    out = tmp_path / "out"
    args = ["tag", *map(str, inputs), "--out", str(out), "--config", str(cfg)]
    assert subprocess.run(RUPTURE + args, cwd=ROOT, env=_env(), capture_output=True, timeout=120).returncode == 0
    lines = (out / "audit.jsonl").read_text().splitlines()
    kept = [x for x in lines if not ('"processed"' in x and '"s00"' in x)]
    (out / "audit.jsonl").write_text("\n".join(kept) + "\n")
    mtime = (out / "s00" / "session.json").stat().st_mtime_ns
    assert subprocess.run(RUPTURE + args, cwd=ROOT, env=_env(), capture_output=True, timeout=120).returncode == 0
    assert (out / "s00" / "session.json").stat().st_mtime_ns == mtime  # not redone
    stats = check_exactly_once(out, ["s00", "s01"])
    assert stats["recovered"] == 1


def test_pool_workers_die_with_a_killed_parent_and_resume(tmp_path):
    """Local process pool (2 workers): SIGKILL the parent only; its workers must not live on (they would
    race the rerun); the rerun completes everything exactly once."""
    inputs = write_transcripts(tmp_path / "in", 16)
    cfg = tmp_path / "notag.yaml"
    cfg.write_text("tagging: {enabled: false}\n")
    out = tmp_path / "out"
    args = ["tag", *map(str, inputs), "--out", str(out), "--config", str(cfg)]
    # `tag` has no --workers flag: the pool comes from the config
    cfg.write_text("tagging: {enabled: false}\nrunner: {workers: 2}\n")
    proc = _start(args, tmp_path / "stderr.log")
    assert _wait_for(lambda: _count(out, "started") >= 3, 120, proc), (tmp_path / "stderr.log").read_text()[-2000:]
    proc.send_signal(signal.SIGKILL)  # the parent only, not the process group
    proc.wait(30)
    pids = {a["pid"] for a in audit_lines_lenient(out) if a["event"] == "started"}
    assert pids and os.getpid() not in pids
    assert _wait_for(lambda: not any(_alive(p) for p in pids), 20), "pool workers outlived the killed parent"
    final = subprocess.run(RUPTURE + args, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=180)
    assert final.returncode == 0, final.stderr[-2000:]
    check_exactly_once(out, [p.stem for p in inputs])


def audit_lines_lenient(out: Path) -> list[dict]:
    from pipeline.runner import read_audit

    return read_audit(out / "audit.jsonl")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _audio_batch(tmp_path: Path, stereo_clip: Path, n: int) -> Path:
    inp = tmp_path / "in"
    inp.mkdir()
    for i in range(n):
        shutil.copy(stereo_clip, inp / f"a{i}.wav")
    return inp


@pytest.mark.slow
def test_sigkill_mid_audio_session_then_sigint_stops_cleanly(model_store, tmp_path, stereo_clip):
    """Real models: SIGKILL while a session is being processed, rerun; then SIGINT during a session stops
    after that session with a summary; a last rerun finishes; all exactly once."""
    inp = _audio_batch(tmp_path, stereo_clip, 4)
    out = tmp_path / "out"
    args = ["run", str(inp), "--out", str(out), "--consent-on-file"]
    log = tmp_path / "stderr.log"

    proc = _start(args, log)
    assert _wait_for(lambda: _count(out, "processed") >= 1 and _count(out, "started") >= 2, 240, proc), \
        log.read_text()[-2000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    done_before = _count(out, "processed")
    assert done_before < 4

    proc = subprocess.Popen(RUPTURE + args, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    started0 = _count(out, "started")
    assert _wait_for(lambda: _count(out, "started") > started0, 240, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 1 and "(interrupted)" in err, err[-2000:]
    # the session that was running when SIGINT came finished; nothing after it started
    audit = audit_lines(out)
    last_started = [a for a in audit if a["event"] == "started"][-1]
    assert _count(out, "started") == started0 + 1
    assert any(a["event"] == "processed" and a["attempt"] == last_started["attempt"] for a in audit)

    final = subprocess.run(RUPTURE + args, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr[-2000:]
    check_exactly_once(out, [f"a{i}" for i in range(4)])
