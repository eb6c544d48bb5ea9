"""Hostile and odd inputs: each gives a clear per-session error (or a correct result) while the batch goes on.

One batch (real models, loaded once) holds the whole catalogue plus a fuzz set (the demo audio corrupted in
many seeded random ways). Every session must end as exactly one of: a complete, parseable session.json, or a
failure.json with a stage and a short one-line message (no traceback, no transcript text). Nothing crashes
the batch, every output is owner-only, and nothing is left half-written.

Full disk and read-only output use real kernel errors: the session's output folder is a tiny tmpfs (ENOSPC)
or a read-only tmpfs (EROFS), since root ignores permission bits. Where mounting is not allowed, disk-full
falls back to writing through /dev/full (a real ENOSPC) and the read-only case is skipped.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.serialize import read_session_json

ROOT = Path(__file__).resolve().parents[1]
FUZZ_SEED = int(os.environ.get("RUPTURE_FUZZ_SEED", "4242"))
N_FUZZ = int(os.environ.get("RUPTURE_FUZZ_N", "18"))
HEADER = ("audio,session_id,consent_recording,consent_analysis,consent_date,num_speakers,therapist\n")

# session id -> what must happen: "ok", "fail:<stage>", "ok|fail" (either, as long as it is clean), "refused"
EXPECT: dict[str, str] = {}


def _flite(text: str, path: Path, voice: str = "slt") -> bool:
    if not shutil.which("flite"):
        return False
    subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(path)], check=True, capture_output=True)
    return True


def _try_mount(target: Path, opts: str) -> bool:
    target.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(target)], capture_output=True)
    return r.returncode == 0


def fuzz_variants(base: bytes, rng: random.Random, n: int) -> list[tuple[str, bytes]]:
    """Seeded random corruptions of an audio file's bytes."""
    out = []
    kinds = ["truncate", "flip", "zero_block", "junk_header", "insert", "shuffle", "tail_junk", "dup_block",
             "random_bytes"]
    for i in range(n):
        kind = kinds[i % len(kinds)]
        b = bytearray(base)
        L = len(b)
        if kind == "truncate":
            b = b[: rng.randint(0, L - 1)]
        elif kind == "flip":
            for _ in range(rng.randint(1, 400)):
                b[rng.randrange(L)] ^= 1 << rng.randrange(8)
        elif kind == "zero_block":
            s = rng.randrange(L)
            b[s: s + rng.randint(1, L // 2)] = bytes(min(L - s, rng.randint(1, L // 2)))
        elif kind == "junk_header":
            k = rng.randint(1, 64)
            b[:k] = bytes(rng.randrange(256) for _ in range(k))
        elif kind == "insert":
            s = rng.randrange(L)
            b[s:s] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4096)))
        elif kind == "shuffle":
            blocks = [b[j: j + 4096] for j in range(0, L, 4096)]
            head, rest = blocks[:1], blocks[1:]
            rng.shuffle(rest)
            b = bytearray(b"".join(head + rest))
        elif kind == "tail_junk":
            b += bytes(rng.randrange(256) for _ in range(rng.randint(1, 50000)))
        elif kind == "dup_block":
            s = rng.randrange(L)
            b[s:s] = b[s: s + rng.randint(1, 20000)]
        else:
            b = bytearray(rng.randrange(256) for _ in range(rng.randint(1, 20000)))
        out.append((f"fuzz{i:02d}_{kind}", bytes(b)))
    return out


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, stereo_clip, demo_dir):
    root = tmp_path_factory.mktemp("hostile")
    inp = root / "in"
    inp.mkdir()
    rows: list[str] = []
    rng = np.random.default_rng(7)
    sr = 16000

    def add(name: str, sid: str, expect: str, extra: str = ",,") -> None:
        rows.append(f"\"{name}\",{sid},true,true,2026-11-01{extra}")
        EXPECT[sid] = expect

    # a good one first and last: the batch goes on around the bad ones
    shutil.copy(stereo_clip, inp / "good.wav")
    add("good.wav", "good", "ok", ",,ch0")

    st, st_sr = sf.read(stereo_clip, dtype="float32", always_2d=True)
    raw = (stereo_clip).read_bytes()
    (inp / "truncated.wav").write_bytes(raw[: len(raw) // 3])  # header promises more than there is
    add("truncated.wav", "truncated", "ok|fail:audio")
    (inp / "truncated_header.wav").write_bytes(raw[:30])
    add("truncated_header.wav", "truncated_header", "fail:audio")
    demo = (demo_dir / "demo.flac").read_bytes()
    (inp / "corrupt.flac").write_bytes(demo[:200] + bytes(rng.integers(0, 256, 30000, dtype=np.uint8)))
    add("corrupt.flac", "corrupt", "ok|fail")
    (inp / "empty.wav").write_bytes(b"")
    add("empty.wav", "empty", "fail:audio")
    (inp / "notes.wav").write_text("Session notes. This is a text file with an audio extension.\n" * 40)
    add("notes.wav", "not_audio", "fail:audio")
    (inp / "picture.mp3").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(rng.integers(0, 256, 5000, dtype=np.uint8)))
    add("picture.mp3", "png_as_mp3", "fail:audio")
    sf.write(inp / "silence.wav", np.zeros(sr * 6, dtype=np.float32), sr)
    add("silence.wav", "silence", "fail:audio")
    sf.write(inp / "noise.wav", (0.1 * rng.standard_normal(sr * 6)).astype(np.float32), sr)
    add("noise.wav", "noise", "ok|fail")
    t = np.arange(sr * 8) / sr
    notes = [220.0, 277.2, 329.6, 440.0, 392.0, 329.6, 293.7, 261.6]
    music = sum(0.15 * np.sin(2 * np.pi * f * t) * ((t * 2).astype(int) % len(notes) == k)
                for k, f in enumerate(notes))
    music = music + 0.08 * np.sin(2 * np.pi * 110 * t) * (np.sin(2 * np.pi * 2 * t) > 0)
    sf.write(inp / "music.flac", music.astype(np.float32), sr)
    add("music.flac", "music", "ok|fail")

    # 8 kHz telephone speech (band-limited), 48 kHz six-channel
    speech = inp / "_speech16.wav"
    if _flite("Hello, thank you for calling. How have you been feeling since our last appointment? "
              "I have been sleeping badly and I worry about work.", speech):
        from scipy.signal import butter, resample_poly, sosfilt

        x, xsr = sf.read(speech, dtype="float32")
        x8 = resample_poly(x, 8000, xsr)
        x8 = sosfilt(butter(4, [300, 3400], btype="band", fs=8000, output="sos"), x8)
        sf.write(inp / "telephone 8k.wav", x8.astype(np.float32), 8000, subtype="PCM_16")
        speech.unlink()
        add("telephone 8k.wav", "telephone", "ok")
    from scipy.signal import resample_poly

    up = resample_poly(st, 3, 1, axis=0).astype(np.float32)  # 48 kHz
    six = np.zeros((up.shape[0], 6), dtype=np.float32)
    six[:, 0], six[:, 1] = up[:, 0], up[:, 1]
    six[:, 2] = 0.5 * (up[:, 0] + up[:, 1])
    six[:, 3] = 0.1 * up[:, 0]
    six[:, 4:] = 0.001 * rng.standard_normal((up.shape[0], 2)).astype(np.float32)
    sf.write(inp / "surround_48k_6ch.wav", six, 48000, subtype="PCM_24")
    add("surround_48k_6ch.wav", "surround", "ok")

    # names: non-ASCII and spaces; ids from the file stem
    shutil.copy(stereo_clip, inp / "séance 日本 ü  two spaces.wav")
    add("séance 日本 ü  two spaces.wav", "", "ok")
    EXPECT.pop("")
    EXPECT["séance_日本_ü_two_spaces"] = "ok"
    # duplicate session id: the second row is refused, the first processed
    add("good.wav", "good", "ok")
    EXPECT["good"] = "ok"
    # unreadable paths: a folder named like audio, a dangling symlink, a path that does not exist
    (inp / "folder.wav").mkdir()
    add("folder.wav", "folder", "fail:audio")
    os.symlink(inp / "gone.wav", inp / "dangling.wav")
    add("dangling.wav", "dangling", "fail:audio")
    add("missing/none.wav", "missing", "fail:audio")

    # full disk and read-only output folders (real kernel errors via tiny / read-only tmpfs)
    out = root / "out"
    out.mkdir(mode=0o700)
    mounts: list[Path] = []
    shutil.copy(stereo_clip, inp / "full.wav")
    add("full.wav", "diskfull", "fail:output")
    dev_full = not _try_mount(out / "diskfull", "size=12k,mode=0700")
    if not dev_full:
        mounts.append(out / "diskfull")
    shutil.copy(stereo_clip, inp / "ro.wav")
    add("ro.wav", "readonly", "fail:output")
    if _try_mount(out / "readonly", "ro,size=64k,mode=0700"):
        mounts.append(out / "readonly")
    else:
        EXPECT.pop("readonly")
        rows.pop()

    # fuzz: the first 6 s of the demo as WAV and FLAC, corrupted in seeded random ways
    d, dsr = sf.read(demo_dir / "demo.flac", dtype="float32", frames=6 * 16000)
    sf.write(root / "base.wav", d, dsr, subtype="PCM_16")
    sf.write(root / "base.flac", d, dsr)
    frng = random.Random(FUZZ_SEED)
    for ext in ("wav", "flac"):
        base = (root / f"base.{ext}").read_bytes()
        for name, data in fuzz_variants(base, frng, N_FUZZ // 2):
            (inp / f"{name}.{ext}").write_bytes(data)
            add(f"{name}.{ext}", f"{name}_{ext}", "ok|fail")

    shutil.copy(stereo_clip, inp / "good_last.wav")
    add("good_last.wav", "good_last", "ok", ",,ch0")
    (inp / "manifest.csv").write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    yield {"root": root, "inp": inp, "out": out, "dev_full": dev_full}
    for m in mounts:
        subprocess.run(["umount", str(m)], capture_output=True)


@pytest.fixture(scope="module")
def ran(model_store, hostile):
    """Run the whole hostile batch once through the CLI code path (in-process, models loaded once)."""
    from pipeline.cli import main

    logger = logging.getLogger()
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    h = Keep(level=logging.DEBUG)
    logger.addHandler(h)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    patch = None
    if hostile["dev_full"]:  # no tmpfs: the disk-full session's temp files are opened on /dev/full
        import tempfile

        real = tempfile.mkstemp

        def mkstemp(*a, **k):
            fd, name = real(*a, **k)
            if "diskfull" in str(k.get("dir", "")):
                os.close(fd)
                return os.open("/dev/full", os.O_WRONLY), name
            return fd, name

        tempfile.mkstemp = mkstemp
        patch = (tempfile, real)
    try:
        code = main(["run", str(hostile["inp"] / "manifest.csv"), "--out", str(hostile["out"])])
    finally:
        logger.removeHandler(h)
        logger.setLevel(old_level)
        if patch:
            patch[0].mkstemp = patch[1]
    text = "\n".join(r.getMessage() for r in records)
    return {"code": code, "log": text, **hostile}


@pytest.mark.system
@pytest.mark.slow
def test_every_hostile_input_ends_cleanly(ran):
    out = ran["out"]
    assert ran["code"] == 1  # some failed; the batch still finished
    audit = [json.loads(line) for line in (out / "audit.jsonl").read_text().splitlines()]
    tried = 0
    outcomes: dict[str, str] = {}
    for sid, expect in EXPECT.items():
        tried += 1
        sdir = out / sid
        sj, fj = sdir / "session.json", sdir / "failure.json"
        final = [a for a in audit if a.get("session_id") == sid and a["event"] in ("processed", "failed")]
        assert final, f"{sid}: no processed/failed audit line"
        if sj.is_file() and final[-1]["event"] == "processed":
            rec = read_session_json(sj)
            assert rec.duration_s > 0 and rec.speakers
            prov = json.loads(sj.read_text())["provenance"]
            assert prov["outputs"] and all((sdir / n).is_file() for n in prov["outputs"])
            outcomes[sid] = "ok"
        else:
            assert final[-1]["event"] == "failed" and not sj.exists(), sid
            err = final[-1]["error"]
            assert err and "\n" not in err and "Traceback" not in err and len(err) < 400, (sid, err)
            if fj.is_file():
                f = json.loads(fj.read_text())
                assert f["stage"] == final[-1]["stage"] and f["error"] == err
            outcomes[sid] = f"fail:{final[-1]['stage']}"
        allowed = expect.split("|")
        got = outcomes[sid]
        assert got in allowed or (got.startswith("fail") and "fail" in allowed), (sid, got, expect,
                                                                                  final[-1].get("error"))
    # the refused duplicate
    dup = [a for a in audit if a["event"] == "refused" and a["session_id"] == "good"]
    assert len(dup) == 1 and "duplicate" in dup[0]["reason"]
    # the clear messages the catalogue promises
    msg = {a["session_id"]: a.get("error", "") for a in audit if a["event"] == "failed"}
    assert "empty" in msg["empty"] and "silent" in msg["silence"]
    assert "not a readable audio file" in msg["not_audio"]
    assert "directory" in msg["folder"] and "not found" in msg["missing"]
    assert "No space left" in msg["diskfull"], msg["diskfull"]
    if "readonly" in EXPECT:
        assert "Read-only" in msg["readonly"], msg["readonly"]
    # odd formats that are real speech give real results
    assert read_session_json(out / "surround" / "session.json").provenance.input.channels == 6
    if "telephone" in EXPECT:
        tel = read_session_json(out / "telephone" / "session.json")
        assert tel.provenance.input.sample_rate == 8000 and len(tel.words or ()) >= 5
    n_fuzz = sum(s.startswith("fuzz") for s in EXPECT)
    print(f"hostile inputs: {tried} sessions ({tried - n_fuzz} catalogue + {n_fuzz} fuzz, seed {FUZZ_SEED}); "
          f"{sum(v == 'ok' for v in outcomes.values())} ok, {sum(v != 'ok' for v in outcomes.values())} "
          "failed cleanly; batch completed")


@pytest.mark.system
@pytest.mark.slow
def test_hostile_batch_leaves_nothing_partial_and_owner_only(ran):
    out = ran["out"]
    assert not [p for p in out.rglob("*.tmp")]
    for p in out.rglob("*"):
        if p.is_mount() or any(m in p.parents for m in (out / "diskfull", out / "readonly")):
            continue
        mode = stat.S_IMODE(p.lstat().st_mode)
        assert mode & 0o077 == 0, (p, oct(mode))
    assert stat.S_IMODE(out.stat().st_mode) == 0o700


@pytest.mark.system
@pytest.mark.slow
def test_no_transcript_text_in_logs_audit_or_failures(ran):
    out = ran["out"]
    # any run of three consecutive transcript words found in a log, the audit log or a failure message is a leak
    phrases: set[str] = set()
    for sj in out.glob("*/session.json"):
        rec = read_session_json(sj)
        for t in rec.turns:
            w = t.text.lower().split()
            phrases |= {" ".join(w[i:i + 3]) for i in range(len(w) - 2)}
    assert len(phrases) >= 5  # the good sessions did produce text to look for
    haystack = " ".join((ran["log"] + (out / "audit.jsonl").read_text() +
                         "".join(p.read_text() for p in out.glob("*/failure.json"))).lower().split())
    leaked = sorted(p for p in phrases if p in haystack)
    assert not leaked, leaked


def test_manifest_missing_columns_and_unusable_output_are_usage_errors(tmp_path, stereo_clip, capsys):
    from pipeline.cli import main

    shutil.copy(stereo_clip, tmp_path / "a.wav")
    (tmp_path / "m.csv").write_text("audio,session_id\na.wav,a\n")
    assert main(["run", str(tmp_path / "m.csv"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "consent_recording" in err and "consent_analysis" in err
    # an output folder that cannot exist (a path under a regular file): exit 2, clear message, no traceback
    (tmp_path / "file").write_text("x")
    code = main(["run", str(tmp_path / "a.wav"), "--out", str(tmp_path / "file" / "out"), "--consent-on-file"])
    err = capsys.readouterr().err
    assert code == 2 and "output folder" in err and "Traceback" not in err


def test_fuzz_variants_are_reproducible_and_varied():
    base = random.Random(0).randbytes(100_000)
    a = fuzz_variants(base, random.Random(1), 18)
    b = fuzz_variants(base, random.Random(1), 18)
    assert a == b and len({d for _, d in a}) == 18 and all(d != base for _, d in a)
