"""Score the rupture/repair events of `rupture run` outputs against synthetic ground truth, per session.

    .venv/bin/python scripts/eval_sessions.py TRUTH_DIR [TRUTH_DIR ...] --runs RUN_OUT [--runs RUN_OUT ...]
        [--tol 2.0] [--min-confidence 0.0] [--split NAME ...] [--per-session] [--json OUT.json]

Truth: `*_truth.json` files (format "rupture-synth-truth/1", scripts/synth.py), found recursively under each
TRUTH_DIR; rupture and repair truth events come from line labels (synth.build_events). A session's split is
its `metadata.split` (make_calm_audio.py: calm_test / calm_dev; make_synthetic_sessions.py: dev / heldout),
else the name of the folder holding the truth file. Predictions: `RUN_OUT/<session_id>/session.json`
(read with pipeline.serialize.read_session_json; the first --runs folder that has it), events of type
`rupture` and `repair` with confidence >= --min-confidence.

Matching: a predicted event matches a truth event of the same type when their time spans overlap or their
starts are within --tol seconds (default 2.0); one to one, greedily, overlapping pairs first, then by start
distance.

Reported per split and overall (`all`):
  audio minutes (truth durations) and predicted ruptures, over every scored session;
  sessions WITH truth ruptures: rupture recall (matched / truth) and precision (matched / predicted, in those
    sessions), subtype accuracy and family accuracy (withdrawal / confrontation) among matched ruptures,
    repair recall (truth repairs matched by a predicted repair), resolved/unresolved agreement among matched
    ruptures where both sides say (truth: a repair by another speaker within the repair window);
  sessions WITHOUT truth ruptures (calm): false ruptures and false ruptures per 10 minutes of their audio.

Exit status 0 (it reports, it does not gate), 2 on a usage error (missing folder, no truth file, no run
output for any truth session). The scoring functions are pure (records in, records out); I/O is in
`load_truth`, `load_predictions` and `main`.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence


from pipeline.records import Event  # noqa: E402
from pipeline.serialize import event_from_dict, read_session_json  # noqa: E402

TRUTH_FORMAT = "rupture-synth-truth/1"
ALL = "all"


# --------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class SessionTruth:
    session_id: str
    split: str
    duration_s: float
    ruptures: tuple[Event, ...]
    repairs: tuple[Event, ...]


@dataclass(frozen=True)
class MatchedRupture:
    truth_start: float
    pred_start: float
    truth_subtype: str
    pred_subtype: str
    truth_resolved: bool | None
    pred_resolved: bool | None


@dataclass(frozen=True)
class SessionScore:
    session_id: str
    split: str
    duration_s: float
    truth_ruptures: int
    pred_ruptures: int
    matched_ruptures: int
    subtype_correct: int
    family_correct: int
    truth_repairs: int
    pred_repairs: int
    matched_repairs: int
    resolved_both: int  # matched ruptures where truth and prediction both say resolved or not
    resolved_agree: int
    matches: tuple[MatchedRupture, ...]

    @property
    def has_ruptures(self) -> bool:
        return self.truth_ruptures > 0


@dataclass(frozen=True)
class Summary:
    """Aggregate over sessions; ratios are None when their denominator is 0."""

    sessions: int
    audio_min: float
    pred_ruptures: int
    # sessions with truth ruptures
    rupture_sessions: int
    rupture_audio_min: float
    truth_ruptures: int
    pred_ruptures_in_rupture_sessions: int
    matched_ruptures: int
    subtype_correct: int
    family_correct: int
    rupture_recall: float | None
    rupture_precision: float | None
    subtype_accuracy: float | None
    family_accuracy: float | None
    truth_repairs: int
    matched_repairs: int
    repair_recall: float | None
    resolved_both: int
    resolved_agree: int
    resolved_agreement: float | None
    # sessions without truth ruptures
    calm_sessions: int
    calm_audio_min: float
    false_ruptures: int
    false_ruptures_per_10min: float | None
    calm_pred_repairs: int


# ------------------------------------------------------------------------------------------ pure scoring


def family(subtype: str | None) -> str | None:
    """"withdrawal" / "confrontation" for a 3RS rupture subtype ("withdrawal.denial" -> "withdrawal")."""
    if not subtype:
        return None
    return subtype.split(".", 1)[0]


def spans_overlap(a: Event, b: Event) -> float:
    """Seconds of overlap of two events' spans (0 when they do not overlap)."""
    return max(0.0, min(a.end, b.end) - max(a.start, b.start))


def events_match(pred: Event, truth: Event, tol: float) -> bool:
    """Spans overlap (by more than 0 s; touching is not overlapping), or starts within `tol` seconds."""
    return spans_overlap(pred, truth) > 0 or abs(pred.start - truth.start) <= tol


def match_events(pred: Sequence[Event], truth: Sequence[Event], tol: float) -> list[tuple[int, int]]:
    """One-to-one (pred index, truth index) pairs: greedy, overlapping pairs first (most overlap), then by
    start distance; ties by index."""
    cands = []
    for i, p in enumerate(pred):
        for j, t in enumerate(truth):
            if events_match(p, t, tol):
                ov = spans_overlap(p, t)
                cands.append((0 if ov > 0 else 1, -ov, abs(p.start - t.start), i, j))
    used_p: set[int] = set()
    used_t: set[int] = set()
    out = []
    for *_, i, j in sorted(cands):
        if i in used_p or j in used_t:
            continue
        used_p.add(i)
        used_t.add(j)
        out.append((i, j))
    return sorted(out, key=lambda ij: ij[1])


def truth_from_dict(d: Mapping[str, Any], split: str) -> SessionTruth:
    """The rupture/repair truth of one `_truth.json` document (pure)."""
    events = [event_from_dict(e) for e in d.get("events", ())]
    return SessionTruth(
        session_id=str(d["session_id"]), split=split, duration_s=float(d["duration_s"]),
        ruptures=tuple(e for e in events if e.type == "rupture"),
        repairs=tuple(e for e in events if e.type == "repair"),
    )


def select_predictions(events: Sequence[Event],
                       min_confidence: float = 0.0) -> tuple[tuple[Event, ...], tuple[Event, ...]]:
    """(ruptures, repairs) among predicted events, in time order, at or above `min_confidence`."""
    keep = sorted((e for e in events if e.confidence >= min_confidence), key=lambda e: (e.start, e.end))
    return (tuple(e for e in keep if e.type == "rupture"), tuple(e for e in keep if e.type == "repair"))


def score_session(truth: SessionTruth, pred_ruptures: Sequence[Event], pred_repairs: Sequence[Event],
                  tol: float) -> SessionScore:
    """Counts for one session (pure)."""
    m = match_events(pred_ruptures, truth.ruptures, tol)
    matches = tuple(
        MatchedRupture(truth.ruptures[j].start, pred_ruptures[i].start, truth.ruptures[j].subtype or "",
                       pred_ruptures[i].subtype or "", truth.ruptures[j].resolved, pred_ruptures[i].resolved)
        for i, j in m)
    both = [x for x in matches if x.truth_resolved is not None and x.pred_resolved is not None]
    return SessionScore(
        session_id=truth.session_id, split=truth.split, duration_s=truth.duration_s,
        truth_ruptures=len(truth.ruptures), pred_ruptures=len(pred_ruptures), matched_ruptures=len(m),
        subtype_correct=sum(1 for x in matches if x.truth_subtype == x.pred_subtype),
        family_correct=sum(1 for x in matches if family(x.truth_subtype) == family(x.pred_subtype)),
        truth_repairs=len(truth.repairs), pred_repairs=len(pred_repairs),
        matched_repairs=len(match_events(pred_repairs, truth.repairs, tol)),
        resolved_both=len(both), resolved_agree=sum(1 for x in both if x.truth_resolved == x.pred_resolved),
        matches=matches,
    )


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def summarize(scores: Sequence[SessionScore]) -> Summary:
    """Aggregate session scores (pure). Ratios pool counts over sessions (micro averages)."""
    rup = [s for s in scores if s.has_ruptures]
    calm = [s for s in scores if not s.has_ruptures]
    tot = lambda rows, k: sum(int(getattr(r, k)) for r in rows)  # noqa: E731
    calm_min = sum(s.duration_s for s in calm) / 60.0
    false = tot(calm, "pred_ruptures")
    return Summary(
        sessions=len(scores),
        audio_min=round(sum(s.duration_s for s in scores) / 60.0, 2),
        pred_ruptures=tot(scores, "pred_ruptures"),
        rupture_sessions=len(rup),
        rupture_audio_min=round(sum(s.duration_s for s in rup) / 60.0, 2),
        truth_ruptures=tot(rup, "truth_ruptures"),
        pred_ruptures_in_rupture_sessions=tot(rup, "pred_ruptures"),
        matched_ruptures=tot(rup, "matched_ruptures"),
        subtype_correct=tot(rup, "subtype_correct"),
        family_correct=tot(rup, "family_correct"),
        rupture_recall=_ratio(tot(rup, "matched_ruptures"), tot(rup, "truth_ruptures")),
        rupture_precision=_ratio(tot(rup, "matched_ruptures"), tot(rup, "pred_ruptures")),
        subtype_accuracy=_ratio(tot(rup, "subtype_correct"), tot(rup, "matched_ruptures")),
        family_accuracy=_ratio(tot(rup, "family_correct"), tot(rup, "matched_ruptures")),
        truth_repairs=tot(rup, "truth_repairs"),
        matched_repairs=tot(rup, "matched_repairs"),
        repair_recall=_ratio(tot(rup, "matched_repairs"), tot(rup, "truth_repairs")),
        resolved_both=tot(scores, "resolved_both"),
        resolved_agree=tot(scores, "resolved_agree"),
        resolved_agreement=_ratio(tot(scores, "resolved_agree"), tot(scores, "resolved_both")),
        calm_sessions=len(calm),
        calm_audio_min=round(calm_min, 2),
        false_ruptures=false,
        false_ruptures_per_10min=round(false / calm_min * 10.0, 3) if calm_min > 0 else None,
        calm_pred_repairs=tot(calm, "pred_repairs"),
    )


def summarize_by_split(scores: Sequence[SessionScore]) -> dict[str, Summary]:
    """One summary per split (sorted) plus `all` (pure)."""
    out = {sp: summarize([s for s in scores if s.split == sp]) for sp in sorted({s.split for s in scores})}
    out[ALL] = summarize(scores)
    return out


def _fmt(x: float | None, frac: tuple[int, int] | None = None) -> str:
    if x is None:
        return "-"
    s = f"{x:.2f}"
    return f"{s} ({frac[0]}/{frac[1]})" if frac is not None else s


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    if not rows:
        return ["  (no such session)"]
    widths = [max(len(str(r[k])) for r in [header, *rows]) for k in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) if k == 0 else str(c).rjust(w)  # noqa: E731
                               for k, (c, w) in enumerate(zip(r, widths)))
    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def format_report(summaries: Mapping[str, Summary], tol: float) -> str:
    """A plain-text report of split summaries (pure)."""
    out = [f"rupture/repair scoring (match: spans overlap or starts within {tol:g} s)", ""]
    out += _table(["split", "sessions", "audio min", "pred ruptures"],
                  [[k, str(s.sessions), f"{s.audio_min:.1f}", str(s.pred_ruptures)] for k, s in summaries.items()])
    out += ["", "sessions with truth ruptures"]
    out += _table(
        ["split", "sessions", "min", "truth", "pred", "recall", "precision", "subtype acc", "family acc",
         "repair recall", "resolved agree"],
        [[k, str(s.rupture_sessions), f"{s.rupture_audio_min:.1f}", str(s.truth_ruptures),
          str(s.pred_ruptures_in_rupture_sessions),
          _fmt(s.rupture_recall, (s.matched_ruptures, s.truth_ruptures)),
          _fmt(s.rupture_precision, (s.matched_ruptures, s.pred_ruptures_in_rupture_sessions)),
          _fmt(s.subtype_accuracy, (s.subtype_correct, s.matched_ruptures)),
          _fmt(s.family_accuracy, (s.family_correct, s.matched_ruptures)),
          _fmt(s.repair_recall, (s.matched_repairs, s.truth_repairs)),
          _fmt(s.resolved_agreement, (s.resolved_agree, s.resolved_both))]
         for k, s in summaries.items() if s.rupture_sessions])
    out += ["", "sessions without truth ruptures (calm)"]
    out += _table(
        ["split", "sessions", "min", "false ruptures", "per 10 min", "repairs flagged"],
        [[k, str(s.calm_sessions), f"{s.calm_audio_min:.1f}", str(s.false_ruptures),
          _fmt(s.false_ruptures_per_10min), str(s.calm_pred_repairs)]
         for k, s in summaries.items() if s.calm_sessions])
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------------- I/O


def split_of(truth: Mapping[str, Any], path: Path) -> str:
    meta = truth.get("metadata") or {}
    return str(meta.get("split") or path.parent.name)


def load_truth(path: Path) -> SessionTruth:
    d = json.loads(path.read_text(encoding="utf-8"))
    if d.get("format") != TRUTH_FORMAT:
        raise ValueError(f"{path}: format {d.get('format')!r}, expected {TRUTH_FORMAT!r}")
    return truth_from_dict(d, split_of(d, path))


def find_session_json(runs: Sequence[Path], session_id: str) -> Path | None:
    for r in runs:
        p = r / session_id / "session.json"
        if p.is_file():
            return p
    return None


def load_predictions(path: Path, min_confidence: float) -> tuple[tuple[Event, ...], tuple[Event, ...]]:
    return select_predictions(read_session_json(path).events, min_confidence)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="See the module docstring for the definitions.")
    ap.add_argument("truth_dirs", type=Path, nargs="+", metavar="TRUTH_DIR", help="folder(s) searched for *_truth.json")
    ap.add_argument("--runs", type=Path, action="append", required=True,
                    help="rupture run output folder (OUT/<session_id>/session.json); repeatable")
    ap.add_argument("--tol", type=float, default=2.0, help="start tolerance in seconds (default 2.0)")
    ap.add_argument("--min-confidence", type=float, default=0.0, help="ignore predicted events below this confidence")
    ap.add_argument("--split", action="append", help="only these splits (repeatable); default all")
    ap.add_argument("--per-session", action="store_true", help="also print one line per session")
    ap.add_argument("--json", type=Path, help="write the full report (summaries and per-session scores) here")
    args = ap.parse_args(argv)
    bad = [str(p) for p in [*args.truth_dirs, *args.runs] if not p.is_dir()]
    if bad:
        ap.error(f"not a folder: {', '.join(bad)}")
    if args.tol < 0:
        ap.error("--tol must be >= 0")
    truth_paths = sorted({p for d in args.truth_dirs for p in d.rglob("*_truth.json")})
    if not truth_paths:
        ap.error(f"no *_truth.json under {', '.join(map(str, args.truth_dirs))}")

    scores: list[SessionScore] = []
    missing: list[str] = []
    unreadable: list[str] = []
    for tp in truth_paths:
        try:
            truth = load_truth(tp)
        except (OSError, ValueError, KeyError) as e:  # json.JSONDecodeError is a ValueError
            unreadable.append(f"{tp}: {e}")
            continue
        if args.split and truth.split not in args.split:
            continue
        sj = find_session_json(args.runs, truth.session_id)
        if sj is None:
            missing.append(truth.session_id)
            continue
        try:
            ruptures, repairs = load_predictions(sj, args.min_confidence)
        except (OSError, ValueError, KeyError, TypeError) as e:
            unreadable.append(f"{sj}: {e}")
            continue
        scores.append(score_session(truth, ruptures, repairs, args.tol))

    for u in unreadable:
        print(f"warning: skipped unreadable {u}", file=sys.stderr)
    if missing:
        print(f"warning: no session.json for {len(missing)} truth session(s): {', '.join(missing[:10])}"
              + (" ..." if len(missing) > 10 else ""), file=sys.stderr)
    if not scores:
        print("error: no truth session has a run output to score (check TRUTH_DIR, --runs and --split)",
              file=sys.stderr)
        return 2

    summaries = summarize_by_split(scores)
    if args.per_session:
        for s in scores:
            print(f"{s.session_id} [{s.split}] {s.duration_s / 60:.1f} min: truth ruptures {s.truth_ruptures}, "
                  f"predicted {s.pred_ruptures}, matched {s.matched_ruptures} (subtype {s.subtype_correct}, "
                  f"family {s.family_correct}); repairs {s.matched_repairs}/{s.truth_repairs} found, "
                  f"{s.pred_repairs} predicted")
        print()
    print(format_report(summaries, args.tol), end="")
    if args.json:
        report = {
            "tol_s": args.tol, "min_confidence": args.min_confidence,
            "truth_dirs": [str(p) for p in args.truth_dirs], "runs": [str(p) for p in args.runs],
            "summaries": {k: asdict(v) for k, v in summaries.items()},
            "sessions": [asdict(s) for s in scores],
            "missing_runs": missing, "unreadable": unreadable,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
