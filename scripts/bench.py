"""Pipeline benchmark (issue 2): per-stage wall time and real-time factor, peak memory, and the ratio of the
whole pipeline to faster-whisper alone on the same audio. Default: the bundled demo session, 3 repeats,
medians reported. Figures are printed, not asserted: these machines are noisy.

    .venv/bin/python scripts/bench.py [--audio FILE] [--repeats 3] [--config configs/default.yaml]
                                      [--baseline OTHER.yaml]

`--baseline` loads a second pipeline from another config and runs it in the same repeats, alternating with
the first (Whisper alone, then the two pipelines, in turn first), so before/after figures come from one run
on the same machine load. The load average is printed at the start and the end.

Beside each stage's wall time, its CPU time (the whole process's, all threads: `time.process_time()` between
the stage's start and end) and the number of cores it kept busy on average (CPU / wall). On a shared machine
the wall times follow the other jobs; the CPU seconds do much less, and when every core is busy the ratio to
Whisper alone tends to the ratio of CPU seconds, which is printed too.
"""

from __future__ import annotations

import pipeline.offline  # noqa: F401

import argparse
import logging
import os
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


class CpuTimer:
    """A session hook that records, per finished step, the process CPU seconds since the previous one (as
    StageTimer records wall seconds), then passes the call on to `inner`."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.times: dict[str, float] = {}
        self._last = time.process_time()

    def start(self) -> None:
        self._last = time.process_time()
        self.inner.start()

    def __call__(self, step, artifact=None, *, completed=None, total=None) -> None:
        if completed is None:
            now = time.process_time()
            self.times[step] = self.times.get(step, 0.0) + now - self._last
            self._last = now
        self.inner(step, artifact, completed=completed, total=total)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--audio", default=str(ROOT / "pipeline" / "demo" / "demo.flac"))
    ap.add_argument("--num-speakers", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    ap.add_argument("--baseline", default=None, help="a second config, run alternately in the same repeats")
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

    runs = {"pipeline": proc}
    if args.baseline:
        bcfg = load_config(args.baseline)
        t0 = time.perf_counter()
        runs["baseline"] = SessionProcessor(bcfg)
        print(f"baseline {args.baseline}: models loaded in {time.perf_counter() - t0:.1f} s")
    load_before = os.getloadavg()
    whisper_alone: list[float] = []
    whisper_cpu: list[float] = []
    totals: dict[str, list[float]] = {k: [] for k in runs}
    cpu_totals: dict[str, list[float]] = {k: [] for k in runs}
    cpu_stages: dict[str, dict[str, list[float]]] = {k: {} for k in runs}
    exports: dict[str, list[float]] = {k: [] for k in runs}
    stages: dict[str, dict[str, list[float]]] = {k: {} for k in runs}
    from pipeline.runner import write_outputs

    for rep in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        proc.transcriber(audio)
        whisper_alone.append(time.perf_counter() - t0)
        whisper_cpu.append(time.process_time() - c0)
        for name, p in (list(runs.items()) if rep % 2 == 0 else list(runs.items())[::-1]):
            timer = StageTimer()
            cpu = CpuTimer(timer)
            cpu.start()
            t0, c0 = time.perf_counter(), time.process_time()
            rec = p(SessionRequest("bench", audio_path, num_speakers=args.num_speakers), hook=cpu)
            totals[name].append(time.perf_counter() - t0)
            cpu_totals[name].append(time.process_time() - c0)
            for k, v in timer.times.items():
                stages[name].setdefault(k, []).append(v)
            for k, v in cpu.times.items():
                cpu_stages[name].setdefault(k, []).append(v)
            with tempfile.TemporaryDirectory() as td:
                t0 = time.perf_counter()
                write_outputs(rec, Path(td), audio_path, p.cfg)
                exports[name].append(time.perf_counter() - t0)

    med = statistics.median
    alone = med(whisper_alone)
    alone_cpu = med(whisper_cpu)
    print(f"audio: {audio_path.name}, {dur:.1f} s; models loaded once in {load_s:.1f} s; {args.repeats} repeats, medians")
    print(f"load average (1 min) {load_before[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end; "
          f"{os.cpu_count()} CPUs")
    for name in runs:
        total = med(totals[name])
        cfg_name = args.config if name == "pipeline" else args.baseline
        print(f"--- {name} ({cfg_name})")
        print(f"{'stage':<16}{'seconds':>10}{'x realtime':>12}{'share':>8}{'CPU s':>8}{'cores':>7}")
        for k, v in stages[name].items():
            m = med(v)
            c = med(cpu_stages[name].get(k, [0.0]))
            print(f"{k:<16}{m:>10.2f}{dur / max(m, 1e-9):>12.1f}{m / total:>8.1%}{c:>8.2f}{c / max(m, 1e-9):>7.2f}")
        beyond = sum(med(v) for k, v in stages[name].items() if k not in CORE)
        ex = med(exports[name])
        total_cpu = med(cpu_totals[name])
        print(f"{'pipeline total':<16}{total:>10.2f}{dur / total:>12.1f}{1:>8.0%}{total_cpu:>8.2f}"
              f"{total_cpu / total:>7.2f}")
        print(f"{'exports+report':<16}{ex:>10.2f}{dur / max(ex, 1e-9):>12.1f}")
        print(f"faster-whisper alone: {alone:.2f} s ({dur / alone:.1f}x realtime); "
              f"pipeline / whisper-alone = {total / alone:.2f}")
        print(f"CPU seconds: pipeline {total_cpu:.2f}, faster-whisper alone {alone_cpu:.2f} "
              f"({alone_cpu / alone:.2f} cores); ratio {total_cpu / alone_cpu:.2f}")
        print(f"beyond ASR+diarization (attribution, roles, measures, tagging, prosody): {beyond:.2f} s = "
              f"{beyond / total:.1%} of the pipeline; with exports: {(beyond + ex) / (total + ex):.1%}")
        print(f"all repeats (s): {', '.join(f'{t:.2f}' for t in totals[name])}")
    print(f"faster-whisper alone, all repeats (s): {', '.join(f'{t:.2f}' for t in whisper_alone)}; "
          f"CPU s: {', '.join(f'{t:.2f}' for t in whisper_cpu)}")
    print(f"peak memory (RSS): {peak_rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
