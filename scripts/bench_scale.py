"""Scale benchmark (issue 6): time and peak memory against recording length, and batch throughput per backend.

    # long recordings: each length in a fresh process (so peak RSS is that run's own); prints a table + JSON
    .venv/bin/python scripts/bench_scale.py long --minutes 10 30 60 120 [--stages full|front]
    # batch throughput: N sessions (30 s excerpts of the demo, each a little different) per backend
    .venv/bin/python scripts/bench_scale.py batch --sessions 20 --backends local local:2 ray:2

Long audio is built by concatenating the bundled demo session (pipeline/demo/demo.flac, ~152 s) with small
variations per copy (gain within +-3 dB, a 0-300 ms pause, faint noise), written as 16 kHz mono FLAC.
`--stages audio` runs only audio intake (decode, checks, resample: the part whose memory grows with length);
`front` audio intake + diarization; `full` the whole session processor. Model loading is timed separately from processing. Figures are printed, not asserted:
these machines are shared and noisy.

Measured 2026-11-23 on the 2-core shared dev box (default config, 2 threads, CPU only; other engineers' jobs
running, so wall times are noisy; CPU seconds are steadier):

    minutes  wall s  CPU s  x real time  peak RSS MB  (models loaded: 1270 MB)
         10   137.6    155        4.4         2136    (ran beside other jobs: diarization 94 s)
         30   129.4    232       13.9         2473
         60   323.3    516       11.1         2903
        120   582.2   1030       12.4         2974
    CPU s = 8.2 s/min x minutes + 34 s (R^2 0.992); 30 -> 120 min: 7.7, 8.6, 8.6 CPU s per audio minute.
    Audio intake alone (--stages audio) adds 112 / 332 / 661 / 1320 MB peak at 10 / 30 / 60 / 120 min
    (whole-file decode + float64 level check); diarization alone (--stages front) grows ~5 MB/min.

    batch: 20 sessions x 20 s (demo excerpts), wall incl. model load
      local (1 process)        52.1 s   1382 sessions/h
      local --workers 2        35.3 s   2042 sessions/h
      ray --workers 2          37.9 s   1899 sessions/h  (private loopback cluster started and stopped in the run)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "pipeline" / "demo" / "demo.flac"


def build_long_audio(minutes: float, path: Path, seed: int = 0) -> float:
    """Concatenate varied copies of the demo into `path` (written block by block: bounded memory here)."""
    import numpy as np
    import soundfile as sf

    demo, sr = sf.read(DEMO, dtype="float32")
    rng = np.random.default_rng(seed)
    target = int(minutes * 60 * sr)
    written = 0
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, format="FLAC", subtype="PCM_16") as f:
        while written < target:
            piece = demo * np.float32(10 ** (rng.uniform(-3, 3) / 20))
            piece = piece + np.float32(10 ** (-65 / 20)) * rng.standard_normal(len(piece)).astype(np.float32)
            pause = np.zeros(int(rng.uniform(0, 0.3) * sr), dtype=np.float32)
            block = np.concatenate([pause, piece])[: target - written]
            f.write(np.clip(block, -1, 1))
            written += len(block)
    return written / sr


def _one(audio: str, stages: str, threads: int) -> None:
    """Child process: load models, process one recording, print one JSON line."""
    import pipeline.offline  # noqa: F401

    import torch

    from pipeline.config import load_config
    from pipeline.distributed import with_threads

    torch.set_num_threads(threads)
    cfg = with_threads(load_config(ROOT / "configs" / "default.yaml"), threads)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    cpu = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])  # noqa: E731  user + sys seconds
    if stages == "full":
        from pipeline.session import SessionProcessor, SessionRequest, StageTimer

        proc = SessionProcessor(cfg)
        load_s = time.perf_counter() - t0
        rss_models = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        timer = StageTimer()
        c1 = cpu()
        t1 = time.perf_counter()
        timer.start()
        rec = proc(SessionRequest("bench", Path(audio)), hook=timer, created="bench")
        proc_s = time.perf_counter() - t1
        duration, stages_s, n_turns = rec.duration_s, timer.times, len(rec.turns)
    elif stages == "audio":
        from pipeline.audio import load_audio

        load_s, rss_models = 0.0, rss0
        c1 = cpu()
        t1 = time.perf_counter()
        a = load_audio(Path(audio), cfg.audio)
        proc_s = time.perf_counter() - t1
        duration, stages_s, n_turns = a.duration_s, {"audio": proc_s}, 0
    else:
        from models.diarizer import Diarizer

        from pipeline.audio import load_audio

        diar = Diarizer(cfg.diarization, cfg.models)
        load_s = time.perf_counter() - t0
        rss_models = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        c1 = cpu()
        t1 = time.perf_counter()
        a = load_audio(Path(audio), cfg.audio)
        ta = time.perf_counter()
        d = diar(a)
        proc_s = time.perf_counter() - t1
        duration, stages_s, n_turns = a.duration_s, {"audio": ta - t1, "diarization": time.perf_counter() - ta}, \
            len(d.exclusive)
    print(json.dumps({"duration_s": duration, "load_s": load_s, "process_s": proc_s, "cpu_s": cpu() - c1,
                      "stages": stages_s,
                      "rss_start_mb": rss0, "rss_models_mb": rss_models,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "n": n_turns}))


def cmd_long(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    rows = []
    try:
        for m in args.minutes:
            audio = tmp / f"long_{m:g}min.flac"
            build_long_audio(m, audio)
            cmd = [sys.executable, __file__, "_one", str(audio), args.stages, str(args.threads)]
            t0 = time.perf_counter()
            r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
            wall = time.perf_counter() - t0
            if r.returncode != 0:
                print(f"{m:g} min: FAILED\n{r.stderr[-3000:]}", file=sys.stderr)
                continue
            res = json.loads(r.stdout.strip().splitlines()[-1])
            res.update(minutes=m, wall_s=wall, stages_mode=args.stages)
            rows.append(res)
            print(f"{m:6g} min  process {res['process_s']:8.1f} s  ({res['duration_s'] / res['process_s']:5.2f}x "
                  f"real time; CPU {res['cpu_s']:.0f} s)  load {res['load_s']:5.1f} s  peak RSS {res['peak_rss_mb']:7.0f} MB "
                  f"(after model load {res['rss_models_mb']:.0f} MB)  stages "
                  + " ".join(f"{k}={v:.0f}" for k, v in res["stages"].items()), flush=True)
            audio.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if len(rows) >= 2:
        import numpy as np

        x = np.array([r["duration_s"] for r in rows]) / 60
        for key in ("process_s", "cpu_s"):
            y = np.array([r[key] for r in rows])
            slope, icpt = np.polyfit(x, y, 1)
            pred = slope * x + icpt
            r2 = 1 - ((y - pred) ** 2).sum() / max(((y - y.mean()) ** 2).sum(), 1e-9)
            print(f"linear fit: {key} = {slope:.1f} s/min * minutes + {icpt:.1f} s  (R^2 = {r2:.4f}); "
                  f"per-minute cost {', '.join(f'{yy / xx:.1f}' for xx, yy in zip(x, y))} s/min")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    import numpy as np
    import soundfile as sf

    tmp = Path(tempfile.mkdtemp(prefix="bench_batch_"))
    try:
        inp = tmp / "in"
        inp.mkdir()
        demo, sr = sf.read(DEMO, dtype="float32")
        rng = np.random.default_rng(1)
        seg = int(args.seconds * sr)
        for i in range(args.sessions):
            start = int(rng.uniform(0, len(demo) - seg))
            x = demo[start: start + seg] * np.float32(10 ** (rng.uniform(-3, 3) / 20))
            sf.write(inp / f"s{i:02d}.flac", x, sr)
        audio_min = args.sessions * args.seconds / 60
        for backend in args.backends:
            name, _, workers = backend.partition(":")
            workers = workers or "1"
            out = tmp / f"out_{name}_{workers}"
            cmd = [sys.executable, "-m", "pipeline.cli", "-q", "run", str(inp), "--out", str(out),
                   "--consent-on-file", "--backend", name, "--workers", workers]
            env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore",
                   "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
            t0 = time.perf_counter()
            r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            ru = resource.getrusage(resource.RUSAGE_CHILDREN)
            audit = [json.loads(x) for x in (out / "audit.jsonl").read_text().splitlines()]
            ok = sum(a["event"] == "processed" for a in audit)
            print(f"{backend:10s} {args.sessions} sessions x {args.seconds:g} s: wall {wall:6.1f} s "
                  f"(incl. model load), {ok} ok, {3600 * ok / wall:6.1f} sessions/h, "
                  f"{audio_min / (wall / 60):5.2f} audio-min per wall-min; exit {r.returncode}; "
                  f"max child RSS so far {ru.ru_maxrss / 1024:.0f} MB", flush=True)
            if r.returncode not in (0, 1):
                print(r.stderr[-2000:], file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_one":
        _one(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    lo = sub.add_parser("long")
    lo.add_argument("--minutes", type=float, nargs="+", default=[10, 30, 60, 120])
    lo.add_argument("--stages", choices=("full", "front", "audio"), default="full")
    lo.add_argument("--threads", type=int, default=2)
    lo.add_argument("--json")
    lo.set_defaults(fn=cmd_long)
    ba = sub.add_parser("batch")
    ba.add_argument("--sessions", type=int, default=20)
    ba.add_argument("--seconds", type=float, default=30.0)
    ba.add_argument("--backends", nargs="+", default=["local", "local:2", "ray:2"])
    ba.set_defaults(fn=cmd_batch)
    args = ap.parse_args()
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
