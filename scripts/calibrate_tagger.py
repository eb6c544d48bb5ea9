"""Choose the tagger's thresholds for your own sessions from a few that a person coded.

    .venv/bin/python scripts/calibrate_tagger.py CODED/session.json... [--config FILE]
        [--max-false-per-100 1.0] [--all-coded] [--json OUT]

Why: the bundled thresholds were chosen on AnnoMI's counselling demonstrations; sessions in another style
can score on another scale and get few or no flags (models/tagger/MODEL_CARD.md). Code a few sessions of
your own, then set what this prints in your config.

Input: session.json records whose events a coder corrected in ELAN (the `.eaf` that `rupture run` wrote)
and `rupture import-eaf` read back. The tagger of the config (`tagging.classifier`, the bundled head by
default) tags each record's turns again with the pipeline's own decision (session context and the cues the
record keeps: turn timing and interruptions); every client turn's rupture probability and every therapist
turn's repair probability is compared with the coder's events. Prints, for ruptures and repairs, the
figures at the current thresholds and at the recommended ones: for ruptures the best F1 among thresholds
flagging at most --max-false-per-100 turns per 100 that the coder left uncoded, for repairs the best F1.
Then the config lines. Nothing is written unless --json is given; no transcript text is printed.

A record with no human-coded event is refused (the coder may never have opened it); a session the coder
found calm has none, so pass --all-coded when every record given was coded. Turns of unknown role are left
out. Few coded ruptures make an uncertain threshold: the count is printed with it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from research.calibration import Point, at, best_point, coded_turns, record_features, scored_turns

MIN_CODED = 20  # below this many coded turns of a family, the recommendation is marked uncertain


def _read(path: Path):  # type: ignore[no-untyped-def]
    from pipeline.errors import UsageError
    from pipeline.serialize import read_session_json

    try:
        return read_session_json(path)
    except FileNotFoundError:
        raise UsageError(f"session record not found: {path}") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:  # never quote the record's content
        raise UsageError(f"{path} is not a readable session.json ({type(e).__name__})") from None


def _figures(pt: Point) -> dict[str, float]:
    return {"threshold": pt.threshold, "tp": pt.tp, "fp": pt.fp, "fn": pt.fn, "precision": pt.precision,
            "recall": pt.recall, "f1": pt.f1, "false_per_100": pt.false_per_100}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("records", nargs="+", type=Path, help="session.json files with the coder's events")
    ap.add_argument("--config", help="the config the sessions are run with (its tagging.classifier is calibrated)")
    ap.add_argument("--max-false-per-100", type=float, default=1.0,
                    help="false ruptures allowed per 100 client turns the coder left uncoded (default %(default)s)")
    ap.add_argument("--all-coded", action="store_true",
                    help="take every record as coded, also those without a human-coded event (calm sessions)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args(argv)

    import pipeline.offline  # noqa: F401  (offline environment before any model import)
    from models.tagger import MarkerClassifier
    from pipeline.config import load_config
    from pipeline.errors import ConfigError, ModelError, UsageError
    from pipeline.process import init_process

    try:
        cfg = load_config(args.config)
        init_process(cfg=cfg)
        records = [(p, _read(p)) for p in args.records]
        uncoded = [str(p) for p, r in records if not coded_turns(r).human_coded]
        if uncoded and not args.all_coded:
            raise UsageError(f"{len(uncoded)} record(s) have no human-coded event (run `rupture import-eaf` with "
                             f"the coder's file first, or pass --all-coded for sessions coded calm): "
                             + ", ".join(uncoded))
        untext = [str(p) for p, r in records if r.turns and not any(t.text for t in r.turns)]
        if untext:
            raise UsageError("record(s) without transcript text (purged?): " + ", ".join(untext))
        clf = MarkerClassifier(cfg.tagging, cfg.models)
    except (UsageError, ConfigError, ModelError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    tcfg = clf.tagging_config()
    scored = []
    for i, (p, rec) in enumerate(records, 1):
        print(f"[{i}/{len(records)}] tagging {rec.session_id} ({len(rec.turns)} turns)", file=sys.stderr)
        preds = clf(rec.turns)
        scored.extend(scored_turns(rec.turns, record_features(rec), preds, tcfg, coded_turns(rec)))

    current = {"rupture": tcfg.threshold, "repair": tcfg.repair_threshold}
    budget = {"rupture": args.max_false_per_100, "repair": None}
    out: dict[str, dict] = {}
    print(f"\ncoded sessions: {len(records)}; the tagger in {clf.head_dir}")
    print("| family | coded turns | uncoded turns | threshold | precision | recall | F1 | false per 100 uncoded |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for fam in ("rupture", "repair"):
        p = np.asarray([s.p for s in scored if s.family == fam], dtype=float)
        y = np.asarray([s.coded for s in scored if s.family == fam], dtype=bool)
        now = at(p, y, float(current[fam]))
        best = best_point(p, y, budget[fam])
        out[fam] = {"coded": int(y.sum()), "uncoded": int((~y).sum()),
                    "current": _figures(now), "recommended": None if best is None else _figures(best),
                    "uncertain": bool(y.sum() < MIN_CODED)}
        for name, pt in (("current", now), ("recommended", best)):
            if pt is None:
                print(f"| {fam} | {int(y.sum())} | {int((~y).sum())} | {name}: none (no threshold catches a coded "
                      f"turn within the budget) | | | | |")
                continue
            print(f"| {fam} | {int(y.sum())} | {int((~y).sum())} | {name} {pt.threshold:.3f} | {pt.precision:.2f} | "
                  f"{pt.recall:.2f} | {pt.f1:.3f} | {pt.false_per_100:.2f} |")
    r, q = out["rupture"]["recommended"], out["repair"]["recommended"]
    lines = [f"  threshold: {r['threshold']:.3f}" if r else None,
             f"  repair_threshold: {q['threshold']:.3f}" if q else None]
    if any(lines):
        print("\nconfig (YAML):\ntagging:\n" + "\n".join(x for x in lines if x))
    for fam in ("rupture", "repair"):
        if out[fam]["uncertain"]:
            print(f"note: only {out[fam]['coded']} coded {fam} turns (fewer than {MIN_CODED}): the {fam} threshold "
                  "is uncertain; code more sessions before relying on it")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"sessions": len(records), "head": str(clf.head_dir), **out}, indent=2) + "\n",
                             encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
