"""Printing the tagger's cross-validated figures, and the check on the written calm sessions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

ROOT = Path(__file__).resolve().parents[2]
CALM_FILES = ("calm_dev.jsonl", "calm_test.jsonl", "calm_test2_a.jsonl", "calm_test2_b.jsonl")
FIGURES = (("rupture_f1", "rupture F1"), ("rupture_p", "rupture P"), ("rupture_r", "rupture R"),
           ("false_per_100_calm", "false ruptures /100 calm"), ("repair_f1", "repair F1"), ("repair_p", "repair P"),
           ("repair_r", "repair R"), ("top3_precision", "top-3 moments precision"),
           ("top5_precision", "top-5 moments precision"), ("moments_empty_share", "conversations w/o moments"),
           ("count_spearman", "count Spearman"), ("expected_count_spearman", "expected-count Spearman"),
           ("rupture_f1_best", "rupture F1 at the best threshold (ceiling)"),
           ("repair_f1_best", "repair F1 at the best threshold (ceiling)"))


def print_cv(res: Mapping[str, Mapping[str, Mapping]], kinds: Sequence[str]) -> None:
    systems = [s for s in ("model", "bow", "bow+context") if s in res]
    for kind in kinds:
        print(f"\n## {kind} copy (pooled over the held-out folds; [min, max] across the 5 folds)")
        print("| figure | " + " | ".join(systems) + (" | model - bow |" if "bow" in res else " |"))
        print("| --- |" + " --- |" * (len(systems) + ("bow" in res)))
        for key, name in FIGURES:
            cells = []
            for s in systems:
                r = res[s][kind]
                vals = [f[key] for f in r["folds"]]
                cells.append(f"{r['pooled'][key]:.3f} [{min(vals):.2f}, {max(vals):.2f}]")
            margin = f" {res['model'][kind]['pooled'][key] - res['bow'][kind]['pooled'][key]:+.3f} |" if "bow" in res else ""
            print(f"| {name} | " + " | ".join(cells) + " |" + margin)


def timed_turns(lines: Sequence[tuple[str, str]]):  # type: ignore[no-untyped-def]
    """Turns from (role, text) with simulated timing: 2.9 words/s, 0.7 s gaps."""
    from pipeline.records import Turn

    turns, t = [], 0.0
    for role, text in lines:
        t += 0.7
        dur = len(text.split()) / 2.9
        turns.append(Turn(len(turns), "T" if role == "therapist" else "C", role, round(t, 2), round(t + dur, 2),
                          text, len(text.split())))
        t += dur
    return tuple(turns)


def calm_written_sessions(classifier=None) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """False ruptures per 10 minutes of the bundled head on the team's written calm sessions
    (models/tagger/data/calm_*.jsonl; no rupture in them), through the pipeline's own decision."""
    from models.tagger import MarkerClassifier
    from pipeline.config import ModelsConfig, TaggingConfig
    from pipeline.measures import turn_features
    from pipeline.tagging import tag_turns

    clf = classifier or MarkerClassifier(TaggingConfig(), ModelsConfig())
    cfg = clf.tagging_config()
    n = minutes = 0.0
    sessions = 0
    for name in CALM_FILES:
        path = ROOT / "models" / "tagger" / "data" / name
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            s = json.loads(line)
            turns = timed_turns([(t["role"], t["text"]) for t in s["turns"]])
            ev = tag_turns(turns, turn_features(turns), clf(turns), cfg)
            n += sum(1 for e in ev if e.type == "rupture")
            minutes += (turns[-1].end - turns[0].start) / 60.0
            sessions += 1
    rate = n / minutes * 10.0 if minutes else 0.0
    print(f"\nwritten calm sessions: {sessions} sessions, {minutes:.0f} min, {int(n)} false ruptures = "
          f"{rate:.2f} per 10 minutes (target at most 1)")
    return {"sessions": sessions, "minutes": minutes, "false_ruptures": n, "per_10min": rate}
