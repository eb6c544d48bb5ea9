"""Pipeline benchmark (issue 2): per-stage wall time and real-time factor, peak memory, and the ratio of the
whole pipeline to faster-whisper alone on the same audio. Default: the bundled demo session, 3 repeats,
medians reported. Figures are printed, not asserted: these machines are noisy.

    .venv/bin/python scripts/bench.py [--audio FILE] [--repeats 3] [--config configs/default.yaml]
"""

from __future__ import annotations

import pipeline.offline  # noqa: F401

import argparse
import logging
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from pipeline.audio import load_audio  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.process import set_threads  # noqa: E402
from pipeline.session import SessionProcessor, SessionRequest, StageTimer  # noqa: E402

CORE = ("audio", "diarization", "transcription")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--audio", default=str(ROOT / "pipeline" / "demo" / "demo.flac"))
    ap.add_argument("--num-speakers", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cfg = load_config(args.config)
    audio_path = Path(args.audio)

    t0 = time.perf_counter()
    set_threads(cfg)  # as the session worker does (pipeline.process)
    proc = SessionProcessor(cfg)
    load_s = time.perf_counter() - t0
    audio = load_audio(audio_path, cfg.audio)
    dur = audio.duration_s

    whisper_alone, totals, exports, stages = [], [], [], {}
    from pipeline.runner import write_outputs

    for _ in range(args.repeats):
        t0 = time.perf_counter()
        proc.transcriber(audio)
        whisper_alone.append(time.perf_counter() - t0)

        timer = StageTimer()
        timer.start()
        t0 = time.perf_counter()
        rec = proc(SessionRequest("bench", audio_path, num_speakers=args.num_speakers), hook=timer)
        totals.append(time.perf_counter() - t0)
        for k, v in timer.times.items():
            stages.setdefault(k, []).append(v)
        with tempfile.TemporaryDirectory() as td:
            t0 = time.perf_counter()
            write_outputs(rec, Path(td), audio_path, cfg, {})
            exports.append(time.perf_counter() - t0)

    med = statistics.median
    total = med(totals)
    print(f"audio: {audio_path.name}, {dur:.1f} s; models loaded once in {load_s:.1f} s; {args.repeats} repeats, medians")
    print(f"{'stage':<16}{'seconds':>10}{'x realtime':>12}{'share':>8}")
    for k, v in stages.items():
        m = med(v)
        print(f"{k:<16}{m:>10.2f}{dur / max(m, 1e-9):>12.1f}{m / total:>8.1%}")
    beyond = sum(med(v) for k, v in stages.items() if k not in CORE)
    print(f"{'pipeline total':<16}{total:>10.2f}{dur / total:>12.1f}{1:>8.0%}")
    print(f"{'exports+report':<16}{med(exports):>10.2f}{dur / max(med(exports), 1e-9):>12.1f}")
    print(f"faster-whisper alone: {med(whisper_alone):.2f} s ({dur / med(whisper_alone):.1f}x realtime); "
          f"pipeline / whisper-alone = {total / med(whisper_alone):.2f}")
    print(f"beyond ASR+diarization (attribution, roles, measures, tagging, prosody): {beyond:.2f} s = {beyond / total:.1%} of "
          f"the pipeline; with exports: {(beyond + med(exports)) / (total + med(exports)):.1%}")
    print(f"peak memory (RSS): {peak_rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
