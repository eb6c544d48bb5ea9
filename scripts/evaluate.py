"""End-to-end evaluation of transcription and diarization (issue 2), on labelled audio:

  - the pyannote sample (real phone speech, sample.rttm + sample.stm, shipped in the pyannote.audio wheel),
  - the bundled demo session (flite, exact truth: pipeline/demo/demo.rttm + demo.stm),
  - the stereo clip in ../shared/audio (one real speaker per channel; the channel path).

For each: WER of the full pipeline's words, WER of faster-whisper alone on the same audio (same model and
settings), and DER of the pipeline's overlapping diarization track with no collar and a 0.25 s collar
(pyannote.metrics). Nothing here is tuned: the defaults in configs/default.yaml are what is measured.

    .venv/bin/python scripts/evaluate.py [--config configs/default.yaml] [--json out.json]
"""

from __future__ import annotations

import pipeline.offline  # noqa: F401

import argparse
import json
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from pipeline.audio import load_audio  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.process import set_threads  # noqa: E402
from pipeline.scoring import diarization_error_rate, read_rttm, read_stm, word_error_rate  # noqa: E402
from pipeline.session import SessionProcessor, SessionRequest  # noqa: E402

STEREO_TRUTH = {
    "ch0": "He began a confused complaint against the wizard, who had vanished behind the curtain on the left.",
    "ch1": "The horizon seems extremely distant.",
}


def _pyannote_sample() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("pyannote.audio")
    return Path(list(spec.submodule_search_locations)[0]) / "sample"


def evaluate_labelled(proc: SessionProcessor, name: str, wav: Path, rttm: Path, stm: Path,
                      num_speakers: int | None) -> dict:
    cfg = proc.cfg
    ref_text = " ".join(t for _, _, _, t in read_stm(stm))
    audio = load_audio(wav, cfg.audio)
    alone = proc.transcriber(audio)
    t0 = time.perf_counter()
    rec = proc(SessionRequest(name, wav, num_speakers=num_speakers))
    t_all = time.perf_counter() - t0
    ref = read_rttm(rttm)
    out = {
        "audio_s": round(audio.duration_s, 1),
        "wer_pipeline": round(word_error_rate(ref_text, " ".join(w.text for w in rec.words or ())), 4),
        "wer_whisper_alone": round(word_error_rate(ref_text, " ".join(w.text for w in alone.words)), 4),
        "der_no_collar": round(diarization_error_rate(ref, rec.segments, collar=0.0)["der"], 4),
        "der_collar_0.25": round(diarization_error_rate(ref, rec.segments, collar=0.25)["der"], 4),
        "speakers_found": len(rec.speakers),
        "speakers_true": len({s.speaker for s in ref}),
        "pipeline_x_realtime": round(audio.duration_s / t_all, 1),
    }
    return out


def evaluate_stereo(proc: SessionProcessor, wav: Path) -> dict:
    rec = proc(SessionRequest("stereo", wav))
    by = {s: " ".join(w.text for w in rec.words or () if w.speaker == s) for s in STEREO_TRUTH}
    return {
        "diarization_method": rec.provenance.diarization_method,
        "speakers_found": [s.id for s in rec.speakers],
        **{f"wer_{ch}": round(word_error_rate(STEREO_TRUTH[ch], by.get(ch, "")), 4) for ch in STEREO_TRUTH},
        "words_on_wrong_channel": sum(
            1 for w in rec.words or () if w.speaker not in STEREO_TRUTH),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cfg = load_config(args.config)
    set_threads(cfg)  # as the session worker does (pipeline.process)
    proc = SessionProcessor(cfg)
    results = {}
    s = _pyannote_sample()
    results["pyannote_sample"] = evaluate_labelled(proc, "sample", s / "sample.wav", s / "sample.rttm",
                                                   s / "sample.stm", None)
    d = ROOT / "pipeline" / "demo"
    results["demo"] = evaluate_labelled(proc, "demo", d / "demo.flac", d / "demo.rttm", d / "demo.stm", 2)
    stereo = ROOT.parent / "shared" / "audio" / "stereo_diarization.wav"
    if stereo.exists():
        results["stereo_clip"] = evaluate_stereo(proc, stereo)
    results["models"] = {k: f"{m.name} {m.version}" for k, m in proc.model_infos.items()}
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
