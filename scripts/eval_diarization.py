"""Diarization evaluation: DER (no collar and 0.25 s collar) and speed of the Diarizer.

    .venv/bin/python scripts/eval_diarization.py            # evaluate (pyannote sample, stereo clip, demo)
    .venv/bin/python scripts/eval_diarization.py --tune     # clustering grid on synthetic flite sessions
    .venv/bin/python scripts/eval_diarization.py --synthetic DIR [DIR ...]   # first vs second pass DER

Evaluation sets (none of them used for tuning):
- the pyannote.audio sample (`pyannote/audio/sample/sample.wav` + `sample.rttm`, 30 s, two real speakers
  on a phone line, read by path);
- `/work/shared/audio/stereo_diarization.wav` through the stereo channel path (it has no reference RTTM:
  the channel segments and the speed are printed, and whether pyannote on its mono mix finds two speakers);
- the demo session `pipeline/demo/demo.flac` + `demo.rttm` when present (flite voices slt and rms).

Tuning set (`--tune`): synthetic sessions rendered with flite by scripts/synth.py from the scripts below
(generic small talk, not the demo's text; voice pairs awb+kal, slt+kal and a three-voice rms+awb+slt).

Collars follow pyannote.metrics: `collar` is the total width centred on each reference boundary, so
"collar 0.25" excludes +-0.125 s; NIST md-eval's +-0.25 s is pyannote collar 0.5 (also printed).
RTF speed-up = audio duration / wall time of `Diarizer.__call__` (model loading excluded), after one
warm-up call.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import sys
import time
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]

import pipeline.offline  # noqa: E402,F401

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from pipeline.config import DiarizationConfig, ModelsConfig  # noqa: E402
from pipeline.records import Audio, Segment  # noqa: E402
from pipeline.scoring import diarization_error_rate, read_rttm  # noqa: E402

SITE = _REPO / ".venv" / "lib" / "python3.11" / "site-packages"
SAMPLE_WAV = SITE / "pyannote" / "audio" / "sample" / "sample.wav"
SAMPLE_RTTM = SITE / "pyannote" / "audio" / "sample" / "sample.rttm"
STEREO_WAV = Path("/work/shared/audio/stereo_diarization.wav")
DEMO_AUDIO = _REPO / "pipeline" / "demo" / "demo.flac"
DEMO_RTTM = _REPO / "pipeline" / "demo" / "demo.rttm"


def load_audio_file(path: Path, sample_rate: int = 16000) -> Audio:
    """Read an audio file into an Audio record: float32 (channels, n) at `sample_rate`."""
    data = Path(path).read_bytes()
    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    x = np.ascontiguousarray(x.T)
    if sr != sample_rate:
        import librosa

        x = np.stack([librosa.resample(c, orig_sr=sr, target_sr=sample_rate) for c in x]).astype(np.float32)
    return Audio(x, sample_rate, sr, x.shape[0], hashlib.sha256(data).hexdigest())


def der_line(name: str, ref: tuple[Segment, ...], hyp: tuple[Segment, ...]) -> str:
    d0 = diarization_error_rate(ref, hyp, collar=0.0)
    d25 = diarization_error_rate(ref, hyp, collar=0.25)
    d50 = diarization_error_rate(ref, hyp, collar=0.5)
    return (
        f"{name}: DER {100 * d0['der']:.2f}% (FA {d0['false_alarm']:.2f}s, miss {d0['missed_detection']:.2f}s, "
        f"conf {d0['confusion']:.2f}s of {d0['total']:.2f}s) | collar 0.25: {100 * d25['der']:.2f}% | "
        f"collar 0.5 (NIST +-0.25): {100 * d50['der']:.2f}%"
    )


def timed(diarizer, audio: Audio, **kw):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = diarizer(audio, **kw)
    return out, time.perf_counter() - t


def evaluate(cfg: DiarizationConfig) -> None:
    from models.diarizer import Diarizer
    from pipeline.channels import diarize_channels

    t = time.perf_counter()
    diarizer = Diarizer(cfg, ModelsConfig())
    print(f"Diarizer loaded in {time.perf_counter() - t:.1f}s; step={cfg.step} threads={cfg.torch_threads}")

    sample = load_audio_file(SAMPLE_WAV)
    ref = read_rttm(SAMPLE_RTTM)
    diarizer(sample)  # warm-up
    hyp, el = timed(diarizer, sample)
    print(der_line("pyannote sample", ref, hyp.overlapping))
    print(f"  speakers {len(hyp.speakers)} (reference 2); {sample.duration_s:.1f}s audio in {el:.2f}s "
          f"= {sample.duration_s / el:.1f}x real time")
    hyp2, _ = timed(diarizer, sample, num_speakers=2)
    print(der_line("pyannote sample, num_speakers=2", ref, hyp2.overlapping))

    stereo = load_audio_file(STEREO_WAV)
    t = time.perf_counter()
    ch = diarize_channels(stereo, cfg)
    el = time.perf_counter() - t
    if ch is None:
        print("stereo clip: channel path declined (channels not separated)")
    else:
        segs = ", ".join(f"{s.speaker} {s.start:.2f}-{s.end:.2f}" for s in ch.overlapping)
        print(f"stereo clip (channel path): {segs}; {stereo.duration_s:.1f}s in {el * 1000:.1f} ms")
        mono_hyp, el = timed(diarizer, stereo)
        print(f"  pyannote on the mono mix of the stereo clip: {len(mono_hyp.speakers)} speakers "
              f"({stereo.duration_s / el:.1f}x real time)")

    if DEMO_AUDIO.is_file() and DEMO_RTTM.is_file():
        demo = load_audio_file(DEMO_AUDIO)
        dref = read_rttm(DEMO_RTTM)
        dhyp, el = timed(diarizer, demo)
        print(der_line("demo session", dref, dhyp.overlapping))
        print(f"  speakers {len(dhyp.speakers)} (reference {len({s.speaker for s in dref})}); "
              f"{demo.duration_s:.1f}s audio in {el:.2f}s = {demo.duration_s / el:.1f}x real time")
    else:
        print("demo session: pipeline/demo/demo.flac + demo.rttm not found, skipped")


# ------------------------------------------------------------------------------------------- tuning

_SENTENCES = (
    "I took the long way home yesterday because the bridge was closed again",
    "That sounds tiring, how long did it take you in the end",
    "Almost an hour, and the bus was packed the whole way",
    "Did you manage to get anything done after you got back",
    "Not really, I made some tea and sat by the window for a while",
    "Sometimes that is exactly what a person needs after a day like that",
    "Maybe, but I keep thinking I should have used the time better",
    "What would using it better have looked like for you",
    "Answering emails, cleaning the kitchen, calling my sister back",
    "Those are quite a few things to fit into one evening",
    "I know, and none of them happened, so the list just grows",
    "Let us slow down and look at one of them together",
    "The call with my sister is the one that bothers me most",
    "What makes that one harder than the others",
    "We argued last month and neither of us has really apologised",
    "It sounds like there is something unfinished between you",
    "Yes, and every week it gets a little more awkward to pick up the phone",
    "What do you imagine would happen if you called her tomorrow",
    "She would probably be polite, but distant, like she always is",
    "And how would you feel after a polite but distant call",
    "Relieved that it was over, and a little sad, I suppose",
    "Relief and sadness can sit side by side, that makes sense",
    "I never thought of it that way before",
    "Could we plan what you might say in the first minute of the call",
    "I could start by asking about her garden, she loves that",
    "That seems like a gentle way in",
    "Then maybe I could say I have been thinking about our argument",
    "How does it feel to say that sentence out loud here",
    "Strange, but less frightening than I expected",
    "We can practise it a few more times before the end of today",
)
_BACKCHANNELS = ("mm-hmm", "yeah", "right", "okay")


def _tuning_scripts():  # type: ignore[no-untyped-def]
    from scripts.synth import Line, Part, Script

    casts = {
        "tune_awb_kal": (Part("A", "other", "awb"), Part("B", "other", "kal")),
        "tune_slt_kal": (Part("A", "other", "slt"), Part("B", "other", "kal", gain_db=-3.0)),
        "tune_rms_awb_slt": (Part("A", "other", "rms"), Part("B", "other", "awb"), Part("C", "other", "slt")),
    }
    scripts = []
    for k, (sid, cast) in enumerate(casts.items()):
        rng = np.random.default_rng(k)
        speakers = [p.speaker for p in cast]
        lines = []
        prev = None
        after_backchannel = False
        for i, text in enumerate(_SENTENCES):
            choices = [s for s in speakers if s != prev]
            spk = choices[int(rng.integers(len(choices)))] if len(speakers) > 2 else choices[0]
            gap = float(rng.choice([0.3, 0.6, 0.9, 1.2, -0.4]))
            if after_backchannel:  # the floor still belongs to the speaker before the backchannel
                gap = abs(gap)
            after_backchannel = i % 5 == 2
            lines.append(Line(spk, text, gap=gap))
            if i % 5 == 2:  # a backchannel laid over the line just placed
                other = [s for s in speakers if s != spk][0]
                lines.append(Line(other, _BACKCHANNELS[i % 4], at_frac=0.5))
                spk = other  # a backchannel does not take the floor, but keeps the alternation simple
            prev = spk
        scripts.append(Script(sid, cast, tuple(lines)))
    return scripts


def tune(cfg: DiarizationConfig) -> None:
    """Grid over agglomerative clustering parameters on synthetic sessions; prints mean DER per setting.
    Segmentation and embeddings are computed once per session (pyannote's training-mode caches)."""
    import torch

    from models.diarizer import Diarizer, annotations_to_diarization
    from scripts.synth import render_script

    diarizer = Diarizer(cfg, ModelsConfig())
    pipe = diarizer._pipeline  # tuning only: re-instantiate clustering on cached embeddings
    pipe.training = True
    sessions = []
    for script in _tuning_scripts():
        rendered = render_script(script, seed=1)
        ref = tuple(Segment(u.start, u.end, u.speaker) for u in rendered.truth.utterances)
        wav = torch.from_numpy(rendered.audio.astype(np.float32)).unsqueeze(0)
        sessions.append((script.session_id, {"waveform": wav, "sample_rate": 16000, "uri": script.session_id}, ref))
        print(f"{script.session_id}: {wav.shape[1] / 16000:.1f}s, {len({s.speaker for s in ref})} speakers")
    grid = itertools.product(["centroid", "average", "complete"], [0.4, 0.5, 0.6, 0.7, 0.8, 0.9], [1, 3, 6])
    results = []
    for method, threshold, mcs in grid:
        pipe.instantiate({"clustering": {"method": method, "threshold": threshold, "min_cluster_size": mcs}})
        ders, counts = [], []
        for sid, file, ref in sessions:
            with torch.inference_mode():
                out = pipe(file, min_speakers=cfg.min_speakers, max_speakers=cfg.max_speakers)
            hyp = annotations_to_diarization(out.speaker_diarization, out.exclusive_speaker_diarization)
            ders.append(diarization_error_rate(ref, hyp.overlapping)["der"])
            counts.append(len(hyp.speakers))
        results.append((float(np.mean(ders)), method, threshold, mcs, ders, counts))
        print(f"{method:9s} thr {threshold:.2f} mcs {mcs}: mean DER {100 * np.mean(ders):5.2f}% "
              f"({', '.join(f'{100 * d:.1f}' for d in ders)}) speakers {counts}")
    best = min(results, key=lambda r: r[0])
    print(f"best: method={best[1]} threshold={best[2]} min_cluster_size={best[3]} mean DER {100 * best[0]:.2f}%")


def synthetic(cfg: DiarizationConfig, dirs: list[Path], min_segment_s: list[float]) -> None:
    """First pass vs second pass (models/speaker_refine.py) DER on synthetic sessions (`*.flac` with
    `*.rttm` and `*_truth.json` from scripts/make_synthetic_sessions.py), with the session's true number of
    speakers as the manifest would give it. The first pass runs once per session; the second pass is
    repeated for each `min_segment_s` value."""
    import json
    from dataclasses import replace

    from models.diarizer import Diarizer

    first_cfg = replace(cfg, refine_segments=False)
    diarizer = Diarizer(first_cfg, ModelsConfig())
    model = diarizer._pipeline._embedding.model_
    rows: list[tuple[str, bool, float, list[float]]] = []
    for path in sorted(p for d in dirs for p in Path(d).glob("*.flac")):
        truth = json.loads(path.with_name(path.stem + "_truth.json").read_text())
        voices = [s["voice"] for s in truth["speakers"]]
        male_pair = all(v != "slt" for v in voices)
        ref = read_rttm(path.with_suffix(".rttm"))
        audio = load_audio_file(path)
        diarizer.cfg = first_cfg
        first = diarizer(audio, num_speakers=len(voices))
        base = diarization_error_rate(ref, first.overlapping)["der"]
        refined = []
        for m in min_segment_s:
            diarizer.cfg = replace(diarizer.cfg, refine_segments=True, refine_min_segment_s=m)
            second = diarizer.refine(audio.mono, first, model, num_speakers=len(voices))
            refined.append(diarization_error_rate(ref, second.overlapping)["der"])
        rows.append((path.stem, male_pair, base, refined))
        print(f"{path.stem:34s} {'+'.join(voices):8s} first pass {100 * base:5.1f}%  second pass "
              + "  ".join(f"(min {m} s) {100 * d:5.1f}%" for m, d in zip(min_segment_s, refined)), flush=True)

    def summary(name: str, ders: list[float]) -> str:
        a = np.array(ders)
        return (f"{name}: mean {100 * a.mean():.2f}%, median {100 * np.median(a):.2f}%, "
                f"over 10%: {(a > 0.10).sum()}/{len(a)}")

    for label, keep in (("all", lambda r: True), ("male-male pairs", lambda r: r[1])):
        sel = [r for r in rows if keep(r)]
        if not sel:
            continue
        print(f"{label} ({len(sel)} sessions)")
        print("  " + summary("first pass", [r[2] for r in sel]))
        for i, m in enumerate(min_segment_s):
            print("  " + summary(f"second pass, min segment {m} s", [r[3][i] for r in sel]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tune", action="store_true", help="clustering grid on synthetic flite sessions")
    ap.add_argument("--step", type=float, default=None, help="segmentation step (fraction of the window)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads")
    ap.add_argument("--synthetic", type=Path, nargs="+", metavar="DIR",
                    help="first vs second pass DER on synthetic sessions in DIR (make_synthetic_sessions.py)")
    ap.add_argument("--min-segment", type=float, nargs="+", default=[1.0, 0.7, 0.5],
                    help="second-pass refine_min_segment_s values to compare (with --synthetic)")
    args = ap.parse_args(argv)
    kw = {}
    if args.step is not None:
        kw["step"] = args.step
    if args.threads is not None:
        kw["torch_threads"] = args.threads
    cfg = DiarizationConfig(**kw)
    import torch

    torch.set_num_threads(max(1, cfg.torch_threads))  # this script is its own entry point (pipeline.process)
    if args.synthetic:
        synthetic(cfg, args.synthetic, args.min_segment)
    elif args.tune:
        tune(cfg)
    else:
        evaluate(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
