"""The degradation suite (issue 16): synthetic dev sessions rendered under real recording conditions (room
reverberation, stationary noise and babble at 20/10/5 dB SNR, telephone band, Opus/AAC/MP3, a quieter
client, clipping), the whole pipeline run on each, and one Markdown table of what survives.

    .venv/bin/python scripts/degradation_suite.py [--sessions 2] [--out out/degradation] [--conditions a,b]

Steps (each skipped when its output is already there, so an interrupted run resumes):
1. sources: scripts/make_synthetic_sessions.py `--split dev --seed SEED --scenarios SCENARIOS`, rendered with
   `--attenuate none` (both voices at one level: the clean base) and, for the quieter-client condition,
   `--attenuate client:10` (the same sessions, the client 10 dB down); babble from four held-out-pool
   sessions (other words than the scored sessions'), `OUT/sources/`;
2. conditions: each session rendered under each condition (scripts/research/degrade.py), `OUT/audio/`,
   and one manifest with the session ids `<condition>__<session>`;
3. `rupture run OUT/manifest.csv --out OUT/runs` (the default config unless `--config`: the whole pipeline,
   tagging included; one process, models loaded once; done sessions are skipped);
4. scoring (scripts/research/robustness.py): the table on stdout, every figure in `OUT/report.json`, and the
   done-when check for the office-reverberation conditions at 10 dB SNR per session.

Exit status 0 when the table was printed (sessions that failed in the pipeline are counted in it), 2 on a
usage error. No transcript text is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

import make_synthetic_sessions
from research.degrade import CONDITIONS, Condition, condition, condition_rng, render, speech_spans
from research.robustness import markdown_table, pool, report_json, score_run, verdict
from synth import manifest_csv

CHECKED = ("office_noise_10db", "office_babble_10db")  # the done-when conditions of issue 16


def make_sources(out: Path, attenuate: str, n: int, seed: int, scenarios: str, split: str = "dev") -> Path:
    if not (out / "manifest.csv").is_file():
        with contextlib.redirect_stdout(sys.stderr):  # stdout is the table
            make_synthetic_sessions.main(["--out", str(out), "--split", split, "--n", str(n), "--seed", str(seed),
                                          "--scenarios", scenarios, "--attenuate", attenuate])
    return out


def truths(folder: Path) -> list[dict]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*_truth.json"))]


def read_mono(path: Path) -> tuple[np.ndarray, int]:
    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return audio.mean(axis=1), int(sr)


def render_all(conds: Sequence[Condition], sources: dict[str | None, Path], babble_dir: Path, out: Path,
               seed: int) -> list[dict]:
    babble = [read_mono(p)[0] for p in sorted(babble_dir.glob("*.flac"))]
    rows = []
    for cond in conds:
        folder = out / "audio" / cond.name
        folder.mkdir(parents=True, exist_ok=True)
        for truth in truths(sources[cond.attenuate]):
            sid = truth["session_id"]
            dest = folder / f"{sid}.flac"
            if not dest.is_file():
                audio, sr = read_mono(sources[cond.attenuate] / f"{sid}.flac")
                y, rate = render(cond, audio, sr, speech_spans(truth), condition_rng(seed, cond.name, sid), babble)
                tmp = dest.with_suffix(".tmp.flac")
                sf.write(str(tmp), y, rate, format="FLAC", subtype="PCM_16")
                tmp.replace(dest)
            rows.append({"audio": str(dest.relative_to(out)), "session_id": f"{cond.name}__{sid}",
                         "consent_recording": "true", "consent_analysis": "true", "consent_date": "2026-12-06",
                         "num_speakers": 2, "therapist": "", "condition": cond.name})
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=2, help="dev sessions per condition (default 2)")
    ap.add_argument("--seed", type=int, default=11, help="dev seed of the sessions (default 11)")
    ap.add_argument("--scenarios", default="mixed",
                    help="scenarios of make_synthetic_sessions, cycled (default mixed: interruptions, backchannels, "
                         "a long pause and a rupture in every session)")
    ap.add_argument("--conditions", default=",".join(c.name for c in CONDITIONS),
                    help="comma-separated subset (default: all, in table order)")
    ap.add_argument("--out", type=Path, default=Path("out/degradation"))
    ap.add_argument("--config", type=Path, help="config for rupture run (default: the default config)")
    ap.add_argument("--score-only", action="store_true", help="skip rendering and running; score OUT/runs")
    args = ap.parse_args(argv)
    try:
        conds = [condition(c) for c in args.conditions.split(",") if c]
    except KeyError as e:
        ap.error(str(e))
    if args.sessions < 1 or not conds:
        ap.error("--sessions must be at least 1 and --conditions not empty")
    out = args.out.resolve()
    src = out / "sources"
    sources: dict[str | None, Path] = {}
    for att in sorted({c.attenuate for c in conds}, key=str):
        name = "equal" if att is None else att.replace(":", "")
        sources[att] = (src / name if args.score_only else
                        make_sources(src / name, att or "none", args.sessions, args.seed, args.scenarios))
    babble_dir = src / "babble"
    if not args.score_only:
        if any(c.needs_babble for c in conds):
            make_sources(babble_dir, "none", 4, args.seed + 1000, "calm", split="heldout")
        rows = render_all(conds, sources, babble_dir, out, args.seed)
        manifest = out / "manifest.csv"
        manifest.write_text(manifest_csv(rows, ("condition",)), encoding="utf-8")
        cmd = [str(Path(sys.executable).with_name("rupture")), "run", str(manifest), "--out", str(out / "runs")]
        if args.config:
            cmd += ["--config", str(args.config)]
        print("running: " + " ".join(cmd), file=sys.stderr, flush=True)
        subprocess.run(cmd, check=False)  # exit 1 when a session failed: it is counted in the table
    scores, table_rows = [], []
    for cond in conds:
        per = []
        for truth in truths(sources[cond.attenuate]):
            sid = truth["session_id"]
            rttm = sources[cond.attenuate] / f"{sid}.rttm"
            per.append(score_run(cond.name, truth, out / "runs" / f"{cond.name}__{sid}" / "session.json", rttm))
        scores += per
        table_rows.append(pool(cond.name, per))
    print(markdown_table(table_rows))
    for s in scores:
        if s.condition in CHECKED:
            print(f"done-when check, {s.condition}, {s.session_id}: {verdict(s)}")
    meta = {"sessions": args.sessions, "seed": args.seed, "scenarios": args.scenarios,
            "conditions": {c.name: c.description for c in conds}, "config": str(args.config or "default")}
    (out / "report.json").write_text(report_json(table_rows, scores, meta), encoding="utf-8")
    print(f"wrote {out / 'report.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
