"""The whole pipeline through the real CLI, on real clips, with every outbound connection blocked.

One batch holds: a good stereo recording (channel path), a corrupt file (must fail alone), a manifest row
without consent (refused), and the pyannote sample (mono, pyannote path). Then a rerun must skip the good
ones, and --force must redo them. The first run is a module fixture (`first_run`), so that each test
stands alone in any order.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import socket
import stat
from types import SimpleNamespace

import pytest

from pipeline.cli import main
from pipeline.serialize import read_session_json

pytestmark = pytest.mark.system


class NetworkAttempt(AssertionError):
    pass


def _refuse_network(mp: pytest.MonkeyPatch) -> list[str]:
    """Every connection attempt (TCP/UDP connect, DNS lookup) is recorded and refused."""
    attempts: list[str] = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[1:] if args else kwargs)[:200])
        raise NetworkAttempt(f"network access attempted: {attempts[-1]}")

    mp.setattr(socket.socket, "connect", refuse)
    mp.setattr(socket.socket, "connect_ex", refuse)
    mp.setattr(socket.socket, "sendto", refuse)
    mp.setattr(socket, "create_connection", refuse)
    mp.setattr(socket, "getaddrinfo", refuse)
    return attempts


@pytest.fixture
def no_network(monkeypatch):
    return _refuse_network(monkeypatch)


@pytest.fixture(scope="module")
def batch(model_store, tmp_path_factory, stereo_clip, pyannote_sample):
    root = tmp_path_factory.mktemp("batch")
    inp = root / "in"
    inp.mkdir()
    shutil.copy(stereo_clip, inp / "tele health.wav")  # a space in the name
    shutil.copy(pyannote_sample["wav"], inp / "phone.wav")
    (inp / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 10)
    (inp / "manifest.csv").write_text(
        "audio,session_id,consent_recording,consent_analysis,consent_date,num_speakers,therapist\n"
        "tele health.wav,tele,true,true,2026-11-01,,ch0\n"
        "phone.wav,phone,true,true,2026-11-01,2,\n"
        "broken.wav,broken,true,true,2026-11-01,,\n"
        "phone.wav,noconsent,true,false,,,\n")
    return root


def _run(argv, capsys, caplog):
    caplog.set_level(logging.INFO)
    code = main(argv)
    err = capsys.readouterr().err + "\n".join(r.getMessage() for r in caplog.records)
    return code, err


@pytest.fixture(scope="module")
def first_run(batch):
    """The batch's first run into batch/out, once per module, offline, with its stderr and log kept."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    root = logging.getLogger()
    keep, old_level = Keep(level=logging.DEBUG), root.level
    root.addHandler(keep)
    root.setLevel(logging.INFO)
    err = io.StringIO()
    try:
        with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stderr(err):
            attempts = _refuse_network(mp)
            code = main(["run", str(batch / "in" / "manifest.csv"), "--out", str(batch / "out")])
    finally:
        root.removeHandler(keep)
        root.setLevel(old_level)
    log_text = err.getvalue() + "\n".join(r.getMessage() for r in records)
    return SimpleNamespace(out=batch / "out", code=code, log_text=log_text, attempts=attempts)


def test_batch_offline_with_failure_refusal_and_outputs(first_run):
    out, log_text = first_run.out, first_run.log_text
    assert first_run.attempts == [], first_run.attempts
    assert first_run.code == 1  # one failed, one refused: the others still finished

    # the good sessions are complete and follow the contract
    for sid in ("tele", "phone"):
        rec = read_session_json(out / sid / "session.json")
        assert rec.session_id == sid and rec.turns and rec.words
        assert all(w.speaker is not None for w in rec.words)
        assert {t.role for t in rec.turns} <= {"therapist", "client", "other", "unknown"}
        prov = json.loads((out / sid / "session.json").read_text())["provenance"]
        assert set(prov["models"]) >= {"asr"} and all(len(m["sha256"]) == 64 for m in prov["models"].values())
        assert prov["outputs"]
        for name in prov["outputs"]:
            assert (out / sid / name).is_file()
        # owner-only permissions
        assert stat.S_IMODE(os.stat(out / sid).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(out / sid / "session.json").st_mode) == 0o600

    tele = read_session_json(out / "tele" / "session.json")
    assert tele.provenance.diarization_method == "channels"
    assert {s.id: s.role for s in tele.speakers} == {"ch0": "therapist", "ch1": "client"}
    assert "wizard" in " ".join(w.text for w in tele.words if w.speaker == "ch0").lower()
    assert "horizon" in " ".join(w.text for w in tele.words if w.speaker == "ch1").lower()

    phone = read_session_json(out / "phone" / "session.json")
    assert phone.provenance.diarization_method == "pyannote" and len(phone.speakers) == 2

    # prosody (issue 15): every turn of both paths measured or given a reason; real voices get an F0
    for rec in (tele, phone):
        assert [p.turn_index for p in rec.prosody] == [t.index for t in rec.turns]
        assert all(p.f0_hz is not None or p.note for p in rec.prosody)
        assert rec.metrics.prosody is not None and rec.metrics.prosody.vocal_synchrony.n_pairs >= 0
    assert any(p.f0_hz is not None and 80 < p.f0_hz < 400 for p in phone.prosody)
    assert any(p.f0_hz is not None and 80 < p.f0_hz < 400 for p in tele.prosody if p.speaker == "ch1")

    # the broken one failed alone, with the stage recorded; the refused one was never processed
    failure = json.loads((out / "broken" / "failure.json").read_text())
    assert failure["stage"] == "audio" and not (out / "broken" / "session.json").exists()
    assert not (out / "noconsent").exists()

    audit = [json.loads(line) for line in (out / "audit.jsonl").read_text().splitlines()]
    events = {(a["session_id"], a["event"]) for a in audit}
    assert {("tele", "processed"), ("phone", "processed"), ("broken", "failed"), ("noconsent", "refused")} <= events
    assert stat.S_IMODE(os.stat(out / "audit.jsonl").st_mode) == 0o600

    # no transcript text in the logs
    for w in ("wizard", "horizon", "Chicago", "curtain"):
        assert w.lower() not in log_text.lower()
    assert not list(out.rglob("*.tmp"))


def test_rerun_skips_complete_sessions_and_force_redoes(batch, first_run, no_network, capsys, caplog):
    out = first_run.out
    before = (out / "tele" / "session.json").stat().st_mtime_ns
    code, _ = _run(["run", str(batch / "in" / "manifest.csv"), "--out", str(out)], capsys, caplog)
    assert code == 1
    assert (out / "tele" / "session.json").stat().st_mtime_ns == before
    audit = [json.loads(line) for line in (out / "audit.jsonl").read_text().splitlines()]
    assert sum(a["event"] == "skipped" for a in audit) == 2
    code, _ = _run(["run", str(batch / "in" / "tele health.wav"), "--out", str(out / "forced"), "--consent-on-file",
                    "--force"], capsys, caplog)
    assert code == 0
    audit = [json.loads(line) for line in (out / "forced" / "audit.jsonl").read_text().splitlines()]
    assert audit[-1]["event"] == "processed" and "attestation" in audit[-1]["consent"]
    assert no_network == []


def test_plain_path_without_consent_flag_is_refused(batch, capsys, caplog):
    out = batch / "out_refused"
    code, err = _run(["run", str(batch / "in" / "phone.wav"), "--out", str(out)], capsys, caplog)
    assert code == 1 and "consent" in err
    assert not (out / "phone").exists()


def test_usage_errors_exit_2(tmp_path, capsys):
    assert main(["run", str(tmp_path / "missing.wav"), "--out", str(tmp_path / "o")]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("asr: {nope: 1}\n")
    (tmp_path / "a.wav").write_bytes(b"")
    assert main(["run", str(tmp_path / "a.wav"), "--out", str(tmp_path / "o"), "--config", str(bad),
                 "--consent-on-file"]) == 2
    assert "nope" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_command_produces_the_demo_record(model_store, tmp_path, no_network, capsys, demo_dir):
    from pipeline.scoring import diarization_error_rate, read_rttm

    # a low review threshold, so that moments are flagged and their prosodic evidence can be checked (the
    # v3 tagger, trained on real talk, flags none of the demo's scripted moments at its own threshold)
    cfg = tmp_path / "low.yaml"
    cfg.write_text("tagging:\n  threshold: 0.05\n")
    code = main(["demo", "--out", str(tmp_path / "demo"), "--config", str(cfg)])
    out = capsys.readouterr().out
    assert code == 0 and "session.json" in out
    rec = read_session_json(tmp_path / "demo" / "demo" / "session.json")
    assert len(rec.speakers) == 2
    der = diarization_error_rate(read_rttm(demo_dir / "demo.rttm"), rec.segments)["der"]
    assert der < 0.05, der
    roles = {s.role for s in rec.speakers}
    assert roles == {"therapist", "client"}
    # prosody (issue 15): per-turn measures, synchrony over the adjacent pairs, evidence on a flagged moment
    assert len(rec.prosody) == len(rec.turns) and sum(p.arousal is not None for p in rec.prosody) >= len(rec.turns) - 2
    assert rec.metrics.prosody.vocal_synchrony.n_pairs >= 10
    assert any((e.details.prosody_evidence or "").startswith("client voice:") for e in rec.events
               if e.type == "rupture")
    assert no_network == []
