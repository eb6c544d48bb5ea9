"""Benchmark batched tagging throughput on a synthetic 1,000-turn transcript.

    .venv/bin/python scripts/bench_tagger.py [--turns 1000] [--threads 1] [--parallel-batches 2] [--cli]

Builds a transcript of alternating therapist/client turns from the corpus generator's phrasing pools
(seeded), then times (1) model load, (2) MarkerClassifier over all turns (batched) plus
pipeline.tagging.tag_turns, and, with --cli, (3) the whole `rupture tag` command on the same transcript
written as CSV (a fresh process: imports, model load, measures, tagging, exports). Prints turns/minute.
"""

from __future__ import annotations

import argparse
import csv
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import pipeline.offline  # noqa: E402,F401


def synthetic_turns(n: int, seed: int = 0):
    from make_tagger_corpus import CLIENT_NONE, REPAIRS, RUPTURES, T_CONTEXT, THERAPIST_NONE, fill

    from pipeline.records import Turn

    rng = random.Random(seed)
    client_pool = [p for _, pool in CLIENT_NONE for p in pool] * 3 + [p for _, pool in RUPTURES.values() for p in pool]
    ther_pool = THERAPIST_NONE * 2 + [p for pool in T_CONTEXT.values() for p in pool] + [p for pool in REPAIRS.values() for p in pool]
    turns, t = [], 0.0
    for i in range(n):
        role = "therapist" if i % 2 == 0 else "client"
        text = fill(rng.choice(ther_pool if role == "therapist" else client_pool), rng)
        dur = 0.35 * len(text.split()) + 0.5
        t += rng.uniform(0.2, 1.5)
        turns.append(Turn(i, "SPEAKER_00" if role == "therapist" else "SPEAKER_01", role, round(t, 2),
                          round(t + dur, 2), text, len(text.split())))
        t += dur
    return tuple(turns)


def main() -> None:
    from pipeline.config import TaggingConfig

    TAGGING_DEFAULTS = TaggingConfig()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--turns", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (default %(default)s, as `rupture tag` sets them by default)")
    ap.add_argument("--parallel-batches", type=int, default=TAGGING_DEFAULTS.parallel_batches,
                    help="tagging.parallel_batches: encoder batches on this many threads (default %(default)s)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--cli", action="store_true", help="also time `rupture tag` end to end on a CSV")
    args = ap.parse_args()
    import torch

    from models.tagger import MarkerClassifier
    from pipeline.config import ModelsConfig, TaggingConfig
    from pipeline.measures import turn_features
    from pipeline.tagging import rupture_metrics, tag_turns

    torch.set_num_threads(args.threads)
    turns = synthetic_turns(args.turns)
    cfg = TaggingConfig(batch_size=args.batch_size, parallel_batches=args.parallel_batches)
    t0 = time.perf_counter()
    clf = MarkerClassifier(cfg, ModelsConfig())
    t_load = time.perf_counter() - t0
    t1 = time.perf_counter()
    preds = clf(turns)
    t_pred = time.perf_counter() - t1
    t2 = time.perf_counter()
    events = tag_turns(turns, turn_features(turns), preds, clf.tagging_config())
    t_tag = time.perf_counter() - t2
    total = t_pred + t_tag
    m = rupture_metrics(events)
    print(f"turns {len(turns)}, threads {args.threads}, parallel batches {args.parallel_batches}, batch {args.batch_size}")
    print(f"load {t_load:.1f} s; classify {t_pred:.1f} s; tag {t_tag * 1000:.0f} ms; "
          f"=> {len(turns) / total * 60:.0f} turns/minute (model loaded)")
    print(f"events: {m.ruptures} ruptures ({m.resolved} resolved), {m.repairs} repairs")
    if args.cli:
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / "bench1000.csv"
            with open(p, "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(["start", "end", "speaker", "text", "role"])
                for t in turns:
                    w.writerow([t.start, t.end, t.speaker, t.text, t.role])
            conf = Path(tmp) / "bench.yaml"
            conf.write_text(f"tagging:\n  parallel_batches: {args.parallel_batches}\n", encoding="utf-8")
            cmd = [sys.executable, "-m", "pipeline.cli", "tag", str(p), "--out", str(Path(tmp) / "out"),
                   "--config", str(conf)]
            t3 = time.perf_counter()
            r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            t_cli = time.perf_counter() - t3
            print(f"`rupture tag` on {len(turns)} turns: exit {r.returncode}, {t_cli:.1f} s wall "
                  f"(fresh process, including imports and model load)")
            if r.returncode != 0:
                print(r.stderr[-2000:])


if __name__ == "__main__":
    main()
