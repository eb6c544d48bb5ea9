"""Speed of the quieter-voice stages (issue 17): the whole pipeline with `levels.equalize` on and off, in one
process (models loaded once), the two settings alternated (their order swapped every repeat) so that a busy
machine's load falls on both; medians reported, with the `levels` and `quality` stage shares and the time of
applying the gain (`pipeline.levels.apply_gains`, inside the transcription stage) timed on its own.

    .venv/bin/python scripts/bench_levels.py [--audio FILE ...] [--repeats 5] [--config configs/default.yaml]

Figures are printed, not asserted. Default audio: the bundled demo session (both voices at one level, so
no gain is applied; add a session with a quieter speaker, e.g. one made by make_synthetic_sessions.py
--attenuate client:10, to time the gain).
"""

from __future__ import annotations

import pipeline.offline  # noqa: F401

import argparse
import dataclasses
import logging
import statistics
import sys
import time
from pathlib import Path

from pipeline.audio import load_audio
from pipeline.config import load_config
from pipeline.levels import apply_gains
from pipeline.process import set_threads
from pipeline.session import SessionProcessor, SessionRequest, StageTimer

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--audio", nargs="+", default=[str(ROOT / "pipeline" / "demo" / "demo.flac")])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    base = load_config(args.config)
    cfgs = {on: dataclasses.replace(base, levels=dataclasses.replace(base.levels, equalize=on)) for on in (True, False)}
    set_threads(base)  # as the session worker does (pipeline.process)
    proc = SessionProcessor(cfgs[True])
    med = statistics.median
    for path in map(Path, args.audio):
        audio = load_audio(path, base.audio)
        totals: dict[bool, list[float]] = {True: [], False: []}
        stages: dict[bool, dict[str, list[float]]] = {True: {}, False: {}}
        gains_s: list[float] = []
        gains: dict[str, float] = {}
        for r in range(args.repeats):
            for on in ((True, False) if r % 2 == 0 else (False, True)):
                proc.cfg = cfgs[on]
                timer = StageTimer()
                timer.start()
                t0 = time.perf_counter()
                rec = proc(SessionRequest("bench", path), hook=timer)
                totals[on].append(time.perf_counter() - t0)
                for k, v in timer.times.items():
                    stages[on].setdefault(k, []).append(v)
                if on and rec.quality is not None:
                    gains = {s.speaker: s.asr_gain_db for s in rec.quality.speakers}
                    t0 = time.perf_counter()
                    apply_gains(audio.mono, audio.sample_rate, rec.segments, gains, base.levels)
                    gains_s.append(time.perf_counter() - t0)
        dur = audio.duration_s
        on_t, off_t = med(totals[True]), med(totals[False])
        print(f"{path.name}: {dur:.1f} s audio; {args.repeats} repeats per setting, alternated; medians; "
              f"gains {gains}")
        print(f"  pipeline, equalize on : {on_t:.2f} s  (runs: {', '.join(f'{t:.1f}' for t in totals[True])})")
        print(f"  pipeline, equalize off: {off_t:.2f} s  (runs: {', '.join(f'{t:.1f}' for t in totals[False])})")
        print(f"  on / off = {on_t / off_t:.3f} (medians); {min(totals[True]) / min(totals[False]):.3f} (fastest runs, "
              "the least disturbed by other load)")
        tr = {on: stages[on].get("transcription", []) for on in (True, False)}
        print(f"  transcription per run, on: {', '.join(f'{t:.1f}' for t in tr[True])}; "
              f"off: {', '.join(f'{t:.1f}' for t in tr[False])}")
        for on in (True, False):
            shares = ", ".join(f"{k} {med(stages[on][k]):.3f} s ({med(stages[on][k]) / med(totals[on]):.2%})"
                               for k in ("levels", "transcription", "quality") if k in stages[on])
            print(f"  equalize {'on ' if on else 'off'}: {shares}")
        if gains_s:
            print(f"  apply_gains alone: {med(gains_s):.3f} s ({med(gains_s) / on_t:.2%} of the pipeline)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
