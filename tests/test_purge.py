"""`rupture purge`: retention by age; raw recordings deleted only when they are the file that was processed;
transcripts optional; every purge in the audit log; idempotent; dry run deletes nothing."""

from __future__ import annotations

import dataclasses
import json
import shutil
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

from models.store import sha256_file
from pipeline.cli import main
from pipeline.config import load_config
from pipeline.inputs import SessionJob
from pipeline.purge import TEXT_EXPORTS, purge
from pipeline.runner import RunInfo, config_digest, is_complete, write_outputs
from pipeline.records import InputInfo
from pipeline.serialize import metrics_to_dict, read_session_json

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "session_small.json"
CREATED = datetime(2026, 1, 10, 9, 0, tzinfo=timezone.utc)


def _make_session(out: Path, sid: str, audio: Path, created: datetime) -> None:
    """A real session folder (all exports, session.json last) for `audio`, written by the runner's code."""
    rec = read_session_json(FIXTURE)
    cfg = load_config()
    prov = dataclasses.replace(rec.provenance, created=created.isoformat(timespec="seconds"), config=json.loads(
        json.dumps({"exports": {"formats": list(cfg.exports.formats)}})),
        input=InputInfo(path_name=audio.name, sha256=sha256_file(audio)))
    rec = dataclasses.replace(rec, session_id=sid, provenance=prov)
    (out / sid).mkdir(parents=True, mode=0o700)
    write_outputs(rec, out / sid, audio, cfg, RunInfo(config_digest=config_digest(cfg), attempt="x" * 32))


def _audit(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "audit.jsonl").read_text().splitlines()]


def test_purge_by_age_audio_and_transcripts(tmp_path, stereo_clip):
    raw = tmp_path / "raw"
    raw.mkdir()
    out = tmp_path / "out"
    jobs = []
    for sid, created in (("old1", CREATED), ("old2", CREATED), ("young", CREATED + timedelta(days=25))):
        shutil.copy(stereo_clip, raw / f"{sid}.wav")
        _make_session(out, sid, raw / f"{sid}.wav", created)
        jobs.append(SessionJob(sid, raw / f"{sid}.wav", "manifest"))
    (raw / "old2.wav").write_bytes((raw / "old2.wav").read_bytes() + b"\0")  # changed since: never deleted
    now = CREATED + timedelta(days=40)
    text_before = (out / "old1" / "session.json").read_text()
    assert "How has your week been" in text_before

    # dry run: reports, deletes nothing, writes no audit line
    items = purge(out, jobs, 30, transcripts=True, dry_run=True, now=now)
    assert {i.session_id: i.deleted for i in items} == {"old1": ("audio", "transcripts"), "old2": ("transcripts",)}
    assert (raw / "old1.wav").exists() and (out / "old1" / "session.json").read_text() == text_before
    assert not (out / "audit.jsonl").exists()

    # audio only
    items = purge(out, jobs, 30, now=now)
    assert {i.session_id: i.deleted for i in items} == {"old1": ("audio",), "old2": ()}
    assert "sha256 differs" in next(i for i in items if i.session_id == "old2").kept_audio_reason
    assert not (raw / "old1.wav").exists() and (raw / "old2.wav").exists() and (raw / "young.wav").exists()
    assert (out / "old1" / "session.eaf").exists()  # transcripts kept unless asked
    assert json.loads((out / "old1" / "session.json").read_text())["provenance"]["purged"] == {"audio": True}

    # transcripts too, 30 days: the young session is untouched
    items = purge(out, jobs, 30, transcripts=True, now=now)
    assert {i.session_id: i.deleted for i in items} == {"old1": ("transcripts",), "old2": ("transcripts",)}
    for sid in ("old1", "old2"):
        sdir = out / sid
        rec = read_session_json(sdir / "session.json")
        assert rec.words is None and all(t.text == "" for t in rec.turns) and all(e.evidence == "" for e in rec.events)
        assert rec.turns and metrics_to_dict(rec.metrics) and rec.speakers  # timings and measures stay
        for name in TEXT_EXPORTS:
            assert not (sdir / name).exists()
        prov = json.loads((sdir / "session.json").read_text())["provenance"]
        assert prov["purged"]["transcripts"] is True
        assert prov["outputs"] and all((sdir / n).is_file() for n in prov["outputs"])
        for p in sdir.iterdir():
            if p.is_file() and p.name != ".lock":
                assert "How has your week been" not in p.read_text(errors="ignore"), p
                assert stat.S_IMODE(p.stat().st_mode) == 0o600
    young = read_session_json(out / "young" / "session.json")
    assert young.words and (raw / "young.wav").exists()
    # corpus tables rebuilt from the redacted records
    import pyarrow.parquet as pq

    turns = pq.read_table(out / "turns.parquet").to_pylist()
    old_rows = [r for r in turns if r["session_id"] in ("old1", "old2")]
    assert {r["session_id"] for r in old_rows} == {"old1", "old2"} and all(r["text"] == "" for r in old_rows)
    assert any(r["text"] for r in turns if r["session_id"] == "young")

    purged = [a for a in _audit(out) if a["event"] == "purged"]
    assert [(a["session_id"], a["deleted"]) for a in purged] == [
        ("old1", ["audio"]), ("old1", ["transcripts"]), ("old2", ["transcripts"])]
    assert all(a["older_than_days"] == 30 and a["age_days"] >= 30 for a in purged)
    # nothing left to do: a second purge is a no-op (no new audit lines)
    n = len(_audit(out))
    items = purge(out, jobs, 30, transcripts=True, now=now)
    assert {i.session_id for i in items} == {"old1", "old2"}
    assert all(not i.deleted for i in items) and len(_audit(out)) == n


def test_purge_cli_and_rerun_after_transcript_purge(tmp_path, capsys):
    """Through the CLI on sessions made by `rupture tag` (tagger off: no models)."""
    inp = tmp_path / "in"
    inp.mkdir()
    for i in range(2):
        (inp / f"t{i}.csv").write_text("start,end,speaker,text,role\n0,2,T,What brings you here today?,therapist\n"
                                       "2,4,C,My sister made me come.,client\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tagging: {enabled: false}\n")
    out = tmp_path / "out"
    assert main(["tag", str(inp / "t0.csv"), str(inp / "t1.csv"), "--out", str(out), "--config", str(cfg)]) == 0
    capsys.readouterr()
    assert main(["purge", str(inp / "t0.csv"), "--out", str(out), "--older-than", "0", "--transcripts"]) == 0
    printed = capsys.readouterr()
    assert "t0: deleted audio and transcripts" in printed.out
    assert "t1: deleted transcripts (audio kept: no INPUT names this session's recording)" in printed.out
    assert not (inp / "t0.csv").exists() and (inp / "t1.csv").exists()
    # t1's transcript is redacted but its input is still there and unchanged: a rerun skips it (no re-creation
    # of the purged text unless --force)
    sj = out / "t1" / "session.json"
    prov = json.loads(sj.read_text())["provenance"]
    assert is_complete(out / "t1", sha256_file(inp / "t1.csv"), prov["config_digest"])
    assert main(["purge", "--out", str(tmp_path / "nope"), "--older-than", "1"]) == 2
