"""pipeline.tracks and the manifest's `tracks` column: telehealth sessions given as one file per participant.
Unit tests (no models): manifest parsing and consent, offset estimation on signals with known shifts (a
mix track, crosstalk, none), placement on one timeline, loading from files, the session digest, purge."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from models.store import sha256_file
from pipeline.config import AudioConfig
from pipeline.errors import AudioError, UsageError
from pipeline.inputs import SessionJob, collect_jobs, read_manifest
from pipeline.purge import _delete_recordings, _recordings
from pipeline.runner import job_input_sha256
from pipeline.records import Provenance
from pipeline.serialize import provenance_from_dict, to_json
from pipeline.tracks import (MIN_PEAK_RATIO, TrackSet, bwf_start_s, estimate_offset, load_tracks, place_tracks,
                             resolve_offsets, tracks_sha256)

SR = 16000
TOL_S = 0.02  # the bar; the estimates below are far inside it
HEADER = "audio,session_id,consent_recording,consent_analysis,consent_date,therapist,tracks,track_offsets_s\n"


# ------------------------------------------------------------------------------------------- signals


def _talker(duration: float, spans: list[tuple[float, float]], seed: int, pitch: float) -> np.ndarray:
    """A stand-in for one participant's microphone: syllable-modulated harmonics and noise in `spans`,
    silence (a faint noise floor) elsewhere. Different seeds and pitches give unrelated signals."""
    rng = np.random.default_rng(seed)
    n = int(duration * SR)
    x = 1e-3 * rng.standard_normal(n)
    for s, e in spans:
        a, b = int(s * SR), min(n, int(e * SR))
        t = np.arange(b - a) / SR
        syll = np.repeat(rng.uniform(0.2, 1.0, size=int(np.ceil((b - a) / 3200)) + 1), 3200)[: b - a]
        f0 = pitch * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * t))
        phase = 2 * np.pi * np.cumsum(f0) / SR
        voiced = sum(np.sin(k * phase) / k for k in range(1, 6))
        x[a:b] += 0.1 * syll * (0.7 * voiced + 0.3 * rng.standard_normal(b - a))
    return x.astype(np.float32)


def _dialogue(duration: float = 40.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two participants taking turns on a common timeline (session time 0 = sample 0)."""
    rng = np.random.default_rng(seed)
    spans: tuple[list[tuple[float, float]], list[tuple[float, float]]] = ([], [])
    t, who = 0.8, 0
    while t < duration - 2:
        d = float(rng.uniform(1.0, 4.0))
        spans[who].append((t, min(duration - 0.5, t + d)))
        t += d + float(rng.uniform(0.2, 0.9))
        who = 1 - who
    return _talker(duration, spans[0], seed + 1, 190.0), _talker(duration, spans[1], seed + 2, 115.0)


def _cut(x: np.ndarray, start_s: float) -> np.ndarray:
    """The file a recorder started at session time `start_s` would hold (>= 0: drops the head)."""
    return x[int(round(start_s * SR)):]


# ----------------------------------------------------------------------------------------- estimation


@pytest.mark.parametrize("d", [0.0, 0.013, 1.37, 7.5])
def test_offset_found_in_mix(d):
    a, b = _dialogue()
    mix = a + b
    off, ratio = estimate_offset(mix, _cut(b, d), SR)
    assert abs(off - d) < TOL_S and ratio >= MIN_PEAK_RATIO
    assert abs(off - d) <= 1.5 / SR  # exact to the sample


def test_offset_of_a_track_that_starts_before_the_mix():
    a, b = _dialogue()
    off, _ = estimate_offset(_cut(a + b, 2.25), a, SR)  # the mix was started 2.25 s after this track
    assert abs(off + 2.25) < 1.5 / SR


def test_mix_through_a_lossy_channel():
    """The mix as a platform stores it: another level, band-limited and slightly noisy (a codec stand-in)."""
    from scipy.signal import butter, sosfiltfilt

    a, b = _dialogue(seed=3)
    sos = butter(4, [300, 3400], btype="band", fs=SR, output="sos")
    mix = 0.3 * sosfiltfilt(sos, a + b) + 3e-3 * np.random.default_rng(9).standard_normal(a.size)
    off, ratio = estimate_offset(mix.astype(np.float32), _cut(a, 0.61), SR)
    assert abs(off - 0.61) < TOL_S and ratio >= MIN_PEAK_RATIO


@pytest.mark.parametrize("crosstalk_db", [-20.0, -30.0])
def test_pairwise_offset_from_crosstalk(crosstalk_db):
    a, b = _dialogue(seed=5)
    g = 10 ** (crosstalk_db / 20)
    mic_a, mic_b = a + g * b, b + g * a
    est = resolve_offsets([mic_a, _cut(mic_b, 2.4)], SR)
    assert [e.source for e in est] == ["crosstalk", "crosstalk"]
    assert est[0].offset_s == 0.0 and abs(est[1].offset_s - 2.4) < TOL_S


def test_no_crosstalk_and_no_mix_is_refused_with_what_to_do():
    a, b = _dialogue(seed=6)
    with pytest.raises(AudioError, match="track_offsets_s") as e:
        resolve_offsets([a, _cut(b, 1.0)], SR, names=["therapist.wav", "client.wav"])
    assert "client.wav" in str(e.value) and "mixed recording" in str(e.value)


def test_a_track_absent_from_the_mix_is_refused():
    a, b = _dialogue(seed=7)
    other, _ = _dialogue(seed=8)
    with pytest.raises(AudioError, match="not found in the mixed recording"):
        resolve_offsets([a, other], SR, mix=a + b, names=["a.wav", "other.wav"])


def test_offsets_from_mix_shift_the_timeline_to_the_earliest_track():
    a, b = _dialogue(seed=11)
    mix = _cut(a + b, 0.5)  # the mix started 0.5 s into the session; track a at 0, track b at 1.37
    est = resolve_offsets([a, _cut(b, 1.37)], SR, mix=mix)
    assert [e.source for e in est] == ["mix", "mix"]
    assert abs(est[0].offset_s) < 1.5 / SR and abs(est[1].offset_s - 1.37) < 1.5 / SR
    assert all(e.peak_ratio is not None and e.peak_ratio >= MIN_PEAK_RATIO for e in est)


def test_manifest_offsets_are_taken_as_given_and_shifted_when_negative():
    x = np.zeros(SR, dtype=np.float32)  # content plays no part
    est = resolve_offsets([x, x], SR, given=(0.0, 1.25))
    assert [(e.offset_s, e.source, e.peak_ratio) for e in est] == [(0.0, "manifest", None), (1.25, "manifest", None)]
    est = resolve_offsets([x, x], SR, given=(-0.5, 1.0))
    assert [e.offset_s for e in est] == [0.0, 1.5]


@settings(max_examples=12, deadline=None)
@given(d0=st.floats(-3.0, 3.0), d1=st.floats(-3.0, 3.0))
def test_property_mix_offsets_recovered_within_20ms(d0, d1):
    a, b = _dialogue(duration=25.0, seed=13)
    lead = 3.5  # the session timeline begins 3.5 s before the mix; the tracks start at lead + d
    mix = _cut(a + b, lead)
    est = resolve_offsets([_cut(a, lead + d0), _cut(b, lead + d1)], SR, mix=mix)
    # on the mix's timeline the tracks start at d0 and d1; the timeline is then shifted by min(0, d0, d1)
    shift = min(0.0, d0, d1)
    assert abs(est[0].offset_s - (d0 - shift)) < TOL_S and abs(est[1].offset_s - (d1 - shift)) < TOL_S


# -------------------------------------------------------------------------------------------- placement


def test_place_tracks_puts_each_track_at_its_offset():
    t0, t1 = np.ones(10, dtype=np.float32), 2 * np.ones(5, dtype=np.float32)
    out = place_tracks([t0, t1], [0.0, 12 / SR], SR)
    assert out.shape == (2, 17) and out.dtype == np.float32
    assert out[0, :10].tolist() == [1.0] * 10 and not out[0, 10:].any()
    assert not out[1, :12].any() and out[1, 12:].tolist() == [2.0] * 5
    with pytest.raises(ValueError):
        place_tracks([t0, t1], [-0.1, 0.0], SR)


# ---------------------------------------------------------------------------------------------- files


def _write_tracks(tmp: Path, d1: float = 1.37, mix_lead: float | None = 0.5) -> tuple[Path, Path, Path | None]:
    a, b = _dialogue(seed=21)
    sf.write(tmp / "therapist.wav", a, SR)
    sf.write(tmp / "client.flac", np.asarray(_cut(b, d1)), SR)
    mix = None
    if mix_lead is not None:
        mix = tmp / "mix.wav"
        sf.write(mix, _cut(a + b, mix_lead), SR)
    return tmp / "therapist.wav", tmp / "client.flac", mix


def test_load_tracks_aligns_files_and_records_every_hash(tmp_path):
    t0, t1, mix = _write_tracks(tmp_path)
    ts = TrackSet((t0, t1), None, mix)
    aligned = load_tracks(ts, AudioConfig())
    audio = aligned.audio
    assert audio.num_channels == 2 and audio.sample_rate == SR
    assert abs(aligned.offsets[1].offset_s - 1.37) < TOL_S and abs(aligned.offsets[0].offset_s) < TOL_S
    a, b = _dialogue(seed=21)
    # channel 1 holds the client's file from 1.37 s on; before that, silence
    s = int(round(aligned.offsets[1].offset_s * SR))
    assert not audio.samples[1, :s].any()
    np.testing.assert_allclose(audio.samples[1, s:s + SR], b[int(1.37 * SR):int(1.37 * SR) + SR], atol=1e-4)
    prov = aligned.provenance
    assert [t.sha256 for t in prov.tracks] == [sha256_file(t0), sha256_file(t1)]
    assert [t.channel for t in prov.tracks] == ["ch0", "ch1"]
    assert prov.mix.sha256 == sha256_file(mix)
    assert prov.sha256 == audio.sha256 == tracks_sha256(ts)
    # a changed offset in the manifest is another input (the rerun must not be skipped)
    assert tracks_sha256(dataclasses.replace(ts, offsets_s=(0.0, 1.4))) != tracks_sha256(ts)


def _with_bext(path: Path, date: str, time_reference: int) -> Path:
    """Insert a Broadcast WAV `bext` chunk (EBU Tech 3285) after the `fmt ` chunk of a WAV file."""
    import struct

    data = path.read_bytes()
    body = bytearray(602)  # version 1 layout: 256 + 32 + 32 + 10 + 8 + 8 + 2 + 64 + 190
    body[320:330] = date.encode("ascii")
    body[330:338] = b"10:00:00"
    body[338:346] = struct.pack("<II", time_reference & 0xFFFFFFFF, time_reference >> 32)
    chunk = b"bext" + struct.pack("<I", len(body)) + bytes(body)
    fmt_end = 12 + 8 + struct.unpack("<I", data[16:20])[0]
    out = data[:fmt_end] + chunk + data[fmt_end:]
    path.write_bytes(out[:4] + struct.pack("<I", len(out) - 8) + out[8:])
    return path


def test_offsets_from_broadcast_wav_start_times(tmp_path):
    """Tracks whose bext chunks hold their start (one clock): the offsets come from the files, even without
    crosstalk or a mix; the files still decode as audio."""
    a, b = _dialogue(seed=31)
    t0, t1 = tmp_path / "a.wav", tmp_path / "b.wav"
    sf.write(t0, a, SR)
    import soxr

    sf.write(t1, soxr.resample(_cut(b, 1.37), SR, 48000), 48000)  # the other recorder at 48 kHz
    _with_bext(t0, "2026-11-02", 10 * 3600 * SR)  # 10:00:00.000, in samples at each file's rate
    _with_bext(t1, "2026-11-02", int(round((10 * 3600 + 1.37) * 48000)))
    assert bwf_start_s(t1) - bwf_start_s(t0) == pytest.approx(1.37, abs=1 / SR)
    aligned = load_tracks(TrackSet((t0, t1)), AudioConfig())
    assert [o.source for o in aligned.offsets] == ["metadata", "metadata"]
    assert aligned.offsets[0].offset_s == 0.0 and abs(aligned.offsets[1].offset_s - 1.37) < 1 / SR
    # across midnight: the date counts
    _with_bext(t1, "2026-11-03", 5 * 48000)  # (the first bext chunk counts: this one, inserted first)
    _with_bext(t0, "2026-11-02", 24 * 3600 * SR - 3 * SR)
    assert bwf_start_s(t1) - bwf_start_s(t0) == pytest.approx(8.0)


@pytest.mark.parametrize("content", [b"", b"RIFF", b"RIFF\x10\x00\x00\x00WAVEbext\xff\xff\xff\xff",
                                     b"RIFF\x10\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01"])
def test_broadcast_wav_reader_on_hostile_headers(tmp_path, content):
    p = tmp_path / "x.wav"
    p.write_bytes(content)
    assert bwf_start_s(p) is None


def test_broadcast_wav_without_a_time_reference_is_not_metadata(tmp_path):
    a, b = _dialogue(seed=32)
    t0, t1 = tmp_path / "a.wav", tmp_path / "b.wav"
    sf.write(t0, a, SR)
    sf.write(t1, b, SR)
    _with_bext(t0, "2026-11-02", 0)  # a writer's default: no start time
    _with_bext(t1, "2026-11-02", 0)
    assert bwf_start_s(t0) is None and bwf_start_s(tmp_path / "missing.wav") is None
    with pytest.raises(AudioError, match="track_offsets_s"):  # no crosstalk, no mix, no metadata
        load_tracks(TrackSet((t0, t1)), AudioConfig())


def test_load_tracks_names_the_bad_file(tmp_path):
    t0, t1, _ = _write_tracks(tmp_path, mix_lead=None)
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="empty.wav"):
        load_tracks(TrackSet((t0, tmp_path / "empty.wav"), (0.0, 0.0)), AudioConfig())
    with pytest.raises(AudioError, match="not found"):
        load_tracks(TrackSet((t0, tmp_path / "missing.wav"), (0.0, 0.0)), AudioConfig())


# ------------------------------------------------------------------------------------------- manifest


def _manifest(tmp: Path, rows: str, header: str = HEADER) -> Path:
    m = tmp / "manifest.csv"
    m.write_text(header + rows, encoding="utf-8")
    return m


def test_manifest_tracks_row_is_one_session(tmp_path):
    t0, t1, mix = _write_tracks(tmp_path)
    m = _manifest(tmp_path, "mix.wav,call1,true,true,2026-11-02,ch0,therapist.wav;client.flac,\n"
                            ",call2,true,true,2026-11-02,ch1, therapist.wav ; client.flac ,0;1.37\n")
    jobs, refusals = read_manifest(m)
    assert refusals == [] and [j.session_id for j in jobs] == ["call1", "call2"]
    j1, j2 = jobs
    assert j1.tracks == TrackSet((t0.resolve(), t1.resolve()), None, mix.resolve())
    assert j1.audio_path == mix.resolve() and j1.therapist == "ch0" and "tracks" not in j1.metadata
    assert j2.tracks == TrackSet((t0.resolve(), t1.resolve()), (0.0, 1.37), None)
    assert j2.audio_path == t0.resolve() and j2.therapist == "ch1"
    assert job_input_sha256(j2) == tracks_sha256(j2.tracks) and job_input_sha256(j2) != sha256_file(t0)


def test_manifest_tracks_session_id_defaults_to_the_first_track(tmp_path):
    _write_tracks(tmp_path)
    jobs, _ = read_manifest(_manifest(tmp_path, ",,true,true,,,therapist.wav;client.flac,\n"))
    assert jobs[0].session_id == "therapist"


def test_manifest_tracks_without_consent_refuse_the_whole_session(tmp_path):
    _write_tracks(tmp_path)
    m = _manifest(tmp_path, "mix.wav,call1,true,false,,,therapist.wav;client.flac,\n")
    jobs, refusals = read_manifest(m)
    assert jobs == [] and len(refusals) == 1
    assert "consent_analysis" in refusals[0].reason and "2 tracks" in refusals[0].reason


def test_folder_with_tracks_manifest_never_processes_a_track_alone(tmp_path):
    """--consent-on-file must not process the tracks of a refused row as plain files, nor process the
    tracks of an accepted row as sessions of their own."""
    _write_tracks(tmp_path)
    _manifest(tmp_path, "mix.wav,call1,true,false,,,therapist.wav;client.flac,\n")
    jobs, refusals = collect_jobs([str(tmp_path)], consent_on_file=True)
    assert jobs == [] and [r.session_id for r in refusals] == ["call1"]
    _manifest(tmp_path, "mix.wav,call1,true,true,,,therapist.wav;client.flac,\n")
    jobs, refusals = collect_jobs([str(tmp_path)], consent_on_file=True)
    assert [j.session_id for j in jobs] == ["call1"] and refusals == [] and jobs[0].tracks is not None


def test_more_tracks_than_the_channel_path_takes_are_refused(tmp_path):
    _write_tracks(tmp_path)
    sf.write(tmp_path / "client2.wav", np.zeros(SR, dtype=np.float32), SR)
    jobs, refusals = read_manifest(_manifest(tmp_path, ",g,true,true,,,therapist.wav;client.flac;client2.wav,\n"))
    assert jobs == [] and "3 tracks" in refusals[0].reason and "not processed" in refusals[0].reason


@pytest.mark.parametrize("row,match", [
    (",a,true,true,,,therapist.wav,\n", "one file only"),
    (",a,true,true,,,therapist.wav;;client.flac,\n", "empty path"),
    (",a,true,true,,,therapist.wav;therapist.wav,\n", "same file twice"),
    ("therapist.wav,a,true,true,,,therapist.wav;client.flac,\n", "names one of the tracks"),
    (",a,true,true,,,therapist.wav;client.flac,0\n", "1 offsets for 2 tracks"),
    (",a,true,true,,,therapist.wav;client.flac,0;soon\n", "numbers of seconds"),
    (",a,true,true,,,therapist.wav;client.flac,0;nan\n", "finite"),
    ("therapist.wav,a,true,true,,,,0;1\n", "needs a tracks cell"),
    (",a,true,true,,,,\n", "empty 'audio' path"),
])
def test_malformed_tracks_cells_are_usage_errors(tmp_path, row, match):
    _write_tracks(tmp_path)
    with pytest.raises(UsageError, match=match):
        read_manifest(_manifest(tmp_path, row))


def test_a_repeated_session_id_is_still_a_refused_duplicate_not_tracks(tmp_path):
    _write_tracks(tmp_path)
    m = _manifest(tmp_path, "therapist.wav,s,true,true,,,,\nclient.flac,s,true,true,,,,\n")
    jobs, refusals = collect_jobs([str(m)], consent_on_file=False)
    assert len(jobs) == 1 and jobs[0].tracks is None and "duplicate" in refusals[0].reason


# ---------------------------------------------------------------------------------------------- purge


def test_purge_deletes_every_track_only_when_none_changed(tmp_path):
    t0, t1, mix = _write_tracks(tmp_path)
    ts = TrackSet((t0, t1), None, mix)
    job = SessionJob("call1", mix, "manifest", tracks=ts)
    recorded = load_tracks(ts, AudioConfig()).provenance
    assert provenance_from_dict(json.loads(json.dumps(to_json(Provenance(input=recorded))))).input == recorded
    files = _recordings(job, recorded)
    assert [f for f, _ in files] == [t0, t1, mix] and all(sha for _, sha in files)
    t1.write_bytes(t1.read_bytes() + b"\0")  # one track changed since: nothing is deleted
    why = _delete_recordings(files, dry_run=False)
    assert why is not None and "client.flac" in why and t0.exists() and mix.exists()
    files = [(f, sha256_file(f) if f == t1 else sha) for f, sha in files]
    assert _delete_recordings(files, dry_run=True) is None and t0.exists()
    assert _delete_recordings(files, dry_run=False) is None
    assert not any(f.exists() for f in (t0, t1, mix))
    assert _delete_recordings(files, dry_run=False) == "recording already gone"
