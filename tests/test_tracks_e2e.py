"""Telehealth tracks end to end: a flite dialogue rendered with one close-talk microphone per participant
(scripts/synth.py, exact truth), cut into one file per participant as if each recorder had started at a
different time, run through `rupture run` on a manifest. Every word must land on the right speaker at the
right time (0 words on the wrong speaker) and the offsets must come back within 20 ms.

Two sessions in one batch: `viamix` (clean tracks, no crosstalk: aligned on the platform's mixed
recording, stored as Ogg Vorbis, which starts 0.5 s after the therapist's track) and `crosstalk` (no mix:
the microphones hear each other at -30 dB; the client's track is at 48 kHz in FLAC)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from pipeline.cli import main
from pipeline.serialize import read_session_json

pytestmark = pytest.mark.system

SR = 16000
CHANNEL_OF = {"T": 0, "C": 1}
# where each participant's recorder started on the truth timeline (seconds)
STARTS = {"viamix": (0.0, 1.37), "crosstalk": (0.0, 2.11)}
MIX_START = 0.5


def _script(synth, sid: str):
    L = synth.Line
    lines = (
        L("T", "Good morning. How have things been since we last met?"),
        L("C", "Not great, to be honest. The week was long and I barely slept.", gap=0.5),
        L("T", "I am sorry to hear that. What kept you awake?", gap=0.6),
        L("C", "Mostly work. My manager keeps changing the deadlines.", gap=0.4),
        L("T", "Mm-hmm.", at_frac=0.5),
        L("C", "And then at home nobody seems to notice how tired I am.", gap=0.5),
        L("T", "That sounds lonely. You carry a lot and nobody sees it.", gap=0.7),
        L("C", "Yes. That is exactly it.", gap=0.5),
    )
    cast = (synth.Part("T", "therapist", "slt"), synth.Part("C", "client", "rms"))
    return synth.Script(sid, cast, lines, lead_in_s=2.5, tail_s=1.5)


@pytest.fixture(scope="module")
def tracks_run(model_store, flite_synth, tmp_path_factory):
    synth = flite_synth
    root = tmp_path_factory.mktemp("tracks")
    inp = root / "in"
    inp.mkdir()
    truths = {}
    rows = ["audio,session_id,consent_recording,consent_analysis,consent_date,therapist,tracks,track_offsets_s"]
    for sid, crosstalk_db in (("viamix", -120.0), ("crosstalk", -30.0)):
        r = synth.render_script(_script(synth, sid), seed=3, channel_of=CHANNEL_OF, crosstalk_db=crosstalk_db)
        truths[sid] = r.truth
        ch = r.audio.T  # (2, n) on the truth timeline
        s0, s1 = (int(round(s * SR)) for s in STARTS[sid])
        t0 = ch[0, s0:]
        t1 = np.concatenate([ch[1, s1:], np.zeros(int(0.8 * SR), dtype=np.float32)])  # stopped later
        sf.write(inp / f"{sid}_therapist.wav", t0, SR)
        if sid == "viamix":
            sf.write(inp / f"{sid}_client.wav", t1, SR)
            sf.write(inp / f"{sid}_mix.ogg", ch.sum(axis=0)[int(MIX_START * SR):], SR, format="OGG", subtype="VORBIS")
            rows.append(f"{sid}_mix.ogg,{sid},true,true,2026-11-02,ch0,{sid}_therapist.wav;{sid}_client.wav,")
        else:
            import soxr

            sf.write(inp / f"{sid}_client.flac", soxr.resample(t1, SR, 48000), 48000)
            rows.append(f",{sid},true,true,2026-11-02,ch0,{sid}_therapist.wav;{sid}_client.flac,")
    (inp / "manifest.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    code = main(["run", str(inp / "manifest.csv"), "--out", str(root / "out")])
    return SimpleNamespace(code=code, out=root / "out", truths=truths)


def _truth_speaker_at(truth, t: float, slack: float = 0.15) -> set[str]:
    """Speakers whose truth utterance covers time t (widened by `slack` for word-time jitter)."""
    return {u.speaker for u in truth.utterances if u.start - slack <= t <= u.end + slack}


@pytest.mark.parametrize("sid", sorted(STARTS))
def test_tracks_session_exact_attribution_and_offsets(tracks_run, flite_synth, sid):
    assert tracks_run.code == 0
    rec = read_session_json(tracks_run.out / sid / "session.json")
    truth = tracks_run.truths[sid]
    prov = rec.provenance
    assert prov.diarization_method == "channels"  # the exact per-speaker path
    # offsets: the therapist's recorder started first, at the session timeline's 0
    tracks = prov.input.tracks
    assert [t.channel for t in tracks] == ["ch0", "ch1"]
    want = STARTS[sid]
    got = [t.offset_s for t in tracks]
    assert all(abs(g - w) < 0.02 for g, w in zip(got, want)), (got, want)
    assert [t.offset_source for t in tracks] == (["mix", "mix"] if sid == "viamix" else ["crosstalk"] * 2)
    assert len({t.sha256 for t in tracks}) == 2 and prov.input.sha256 not in {t.sha256 for t in tracks}
    # attribution: every word is the speaker of its own file, at the time the truth says that speaker talks
    words = rec.words or ()
    n_truth = sum(len(flite_synth.normalize_words(u.text)) for u in truth.utterances)
    assert len(words) >= 0.8 * n_truth, (len(words), n_truth)
    wrong, unplaced = [], []
    for w in words:
        who = _truth_speaker_at(truth, (w.start + w.end) / 2)
        if not who:
            unplaced.append((w.start, w.end, w.speaker))
            continue
        expected = {f"ch{CHANNEL_OF[s]}" for s in who}
        if w.speaker not in expected:
            wrong.append((w.start, w.end, w.speaker, sorted(expected)))
    assert wrong == [], wrong
    assert len(unplaced) <= 1, unplaced  # a word outside all speech would mean a misplaced track
    # roles from the manifest's channel hint
    roles = {s.id: s.role for s in rec.speakers}
    assert roles == {"ch0": "therapist", "ch1": "client"}


def test_tracks_rerun_is_skipped_and_outputs_name_every_track(tracks_run):
    audit = [json.loads(x) for x in (tracks_run.out / "audit.jsonl").read_text().splitlines()]
    done = {a["session_id"] for a in audit if a["event"] == "processed"}
    assert done == set(STARTS)
    code = main(["run", str(Path(tracks_run.out).parent / "in" / "manifest.csv"), "--out", str(tracks_run.out)])
    assert code == 0
    audit = [json.loads(x) for x in (tracks_run.out / "audit.jsonl").read_text().splitlines()]
    assert sorted(a["session_id"] for a in audit if a["event"] == "skipped") == sorted(STARTS)
