"""Scoring of the degradation suite (issue 16): one `SessionScore` per (condition, session) from a `rupture
run` output and the synthetic truth, pooled into one row per condition and printed as one Markdown table.

    score_run(condition, truth, session_json, rttm) -> SessionScore
    pool(condition, scores) -> ConditionRow
    markdown_table(rows) -> str
    verdict(score, max_der, max_share_pp) -> str      the done-when check for one session

The figures reuse the evaluation scripts: WER and DER as scripts/eval_asr.py scores them (WER pooled over
sessions: errors / reference words; DER: overlapping segments against the truth RTTM, no collar, mean over
sessions), interruption P/R, long-pause recall and therapist talk-share error as scripts/eval_measures.py
scores them (`--runs`; onset tolerance 1 s). Rupture events per 10 minutes: the tagger's `rupture` events
over the audio's duration, beside the truth's (the scripted ruptures). Speed: audio seconds over processing seconds (the stages' wall time in
`provenance.stage_seconds`; model loading, once per run, excluded). Marked untrustworthy: sessions whose
`quality.trustworthy` is false (pipeline/quality.py), with the warning codes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import eval_asr
import eval_measures


@dataclass(frozen=True)
class SessionScore:
    condition: str
    session_id: str  # the source session (the truth's id)
    duration_s: float
    ok: bool  # the pipeline wrote a session.json
    wer_errors: int = 0
    wer_words: int = 0
    der: float | None = None
    share_err_pp: float | None = None
    int_tp: int = 0
    int_pred: int = 0
    int_true: int = 0
    lp_hit: int = 0
    lp_true: int = 0
    ruptures: int = 0
    truth_ruptures: int = 0
    seconds: float | None = None
    trustworthy: bool | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConditionRow:
    condition: str
    sessions: int
    failed: int
    wer: float | None
    der: float | None
    share_err_pp_mean: float | None
    share_err_pp_max: float | None
    interruptions: tuple[int, int, int]  # (matched, predicted, true)
    long_pauses: tuple[int, int]  # (found, true)
    ruptures_per_10min: float | None
    truth_ruptures_per_10min: float | None
    speed_x: float | None
    untrustworthy: int
    warnings: tuple[str, ...]

    @property
    def interruption_precision(self) -> float | None:
        return self.interruptions[0] / self.interruptions[1] if self.interruptions[1] else None

    @property
    def interruption_recall(self) -> float | None:
        return self.interruptions[0] / self.interruptions[2] if self.interruptions[2] else None

    @property
    def long_pause_recall(self) -> float | None:
        return self.long_pauses[0] / self.long_pauses[1] if self.long_pauses[1] else None


def score_run(condition: str, truth: Mapping[str, Any], session_json: Path, rttm: Path | None) -> SessionScore:
    """One session's figures; `ok` False (and nothing else) when the pipeline wrote no session.json."""
    sid, dur = str(truth["session_id"]), float(truth["duration_s"])
    n_true = sum(1 for e in truth.get("events", ()) if e.get("type") == "rupture")
    if not session_json.is_file():
        return SessionScore(condition, sid, dur, ok=False, truth_ruptures=n_true)
    session = json.loads(session_json.read_text(encoding="utf-8"))
    asr = eval_asr.score_session(truth, session, rttm)
    m = eval_measures.run_output(truth, session_json, tol=1.0)
    stage_s = (session.get("provenance") or {}).get("stage_seconds") or {}
    q = session.get("quality")
    return SessionScore(
        condition, sid, dur, ok=True, wer_errors=int(asr["overall"][0]), wer_words=int(asr["overall"][1]),
        der=asr.get("der"), share_err_pp=m["therapist_share_err_pp"],
        int_tp=m["int_tp"], int_pred=m["int_pred"], int_true=m["int_true"], lp_hit=m["lp_hit"], lp_true=m["lp_true"],
        ruptures=sum(1 for e in session.get("events", ()) if e.get("type") == "rupture"), truth_ruptures=n_true,
        seconds=round(sum(float(v) for v in stage_s.values()), 3) if stage_s else None,
        trustworthy=None if not isinstance(q, dict) else bool(q.get("trustworthy", True)),
        warnings=tuple(sorted({str(w.get("code")) for w in q.get("warnings", ())})) if isinstance(q, dict) else ())


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def pool(condition: str, scores: Sequence[SessionScore]) -> ConditionRow:
    ok = [s for s in scores if s.ok]
    words = sum(s.wer_words for s in ok)
    shares = [s.share_err_pp for s in ok if s.share_err_pp is not None]
    timed = [s for s in ok if s.seconds]
    dur = sum(s.duration_s for s in ok)
    return ConditionRow(
        condition=condition, sessions=len(scores), failed=len(scores) - len(ok),
        wer=sum(s.wer_errors for s in ok) / words if words else None,
        der=_mean([s.der for s in ok if s.der is not None]),
        share_err_pp_mean=_mean(shares), share_err_pp_max=max(shares) if shares else None,
        interruptions=(sum(s.int_tp for s in ok), sum(s.int_pred for s in ok), sum(s.int_true for s in ok)),
        long_pauses=(sum(s.lp_hit for s in ok), sum(s.lp_true for s in ok)),
        ruptures_per_10min=sum(s.ruptures for s in ok) / dur * 600.0 if dur else None,
        truth_ruptures_per_10min=sum(s.truth_ruptures for s in ok) / dur * 600.0 if dur else None,
        speed_x=sum(s.duration_s for s in timed) / sum(s.seconds or 0.0 for s in timed) if timed else None,
        untrustworthy=sum(1 for s in ok if s.trustworthy is False),
        warnings=tuple(sorted({w for s in ok for w in s.warnings})))


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _frac(x: float | None, num: int, den: int) -> str:
    return "-" if x is None else f"{x:.2f} ({num}/{den})"


HEADER = ("condition", "WER", "DER", "talk-share error (mean / max)", "interruption P", "interruption R",
          "long-pause recall", "ruptures / 10 min", "speed (x real time)", "marked untrustworthy")


def table_row(r: ConditionRow) -> tuple[str, ...]:
    n_ok = r.sessions - r.failed
    i_tp, i_pred, i_true = r.interruptions
    share = ("-" if r.share_err_pp_mean is None
             else f"{r.share_err_pp_mean:.1f} / {r.share_err_pp_max:.1f} pp")
    untrust = f"{r.untrustworthy}/{n_ok}" + (f" ({', '.join(r.warnings)})" if r.warnings else "")
    name = r.condition + (f" ({r.failed} failed)" if r.failed else "")
    return (name, _pct(r.wer), _pct(r.der), share, _frac(r.interruption_precision, i_tp, i_pred),
            _frac(r.interruption_recall, i_tp, i_true), _frac(r.long_pause_recall, *r.long_pauses),
            "-" if r.ruptures_per_10min is None else f"{r.ruptures_per_10min:.1f} (truth {r.truth_ruptures_per_10min:.1f})",
            "-" if r.speed_x is None else f"{r.speed_x:.1f}", untrust)


def markdown_table(rows: Sequence[ConditionRow]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "| " + " | ".join("---" for _ in HEADER) + " |"]
    lines += ["| " + " | ".join(table_row(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def verdict(s: SessionScore, max_der: float = 0.10, max_share_pp: float = 5.0) -> str:
    """The done-when check of one session: 'within' (DER and talk-share error within the bounds), 'marked
    untrustworthy', or 'MISSED' (neither), each with the figures."""
    if not s.ok:
        return "failed (no session.json)"
    figs = (f"DER {_pct(s.der)}, talk-share error "
            f"{'-' if s.share_err_pp is None else f'{s.share_err_pp:.1f} pp'}")
    within = (s.der is not None and s.der <= max_der and s.share_err_pp is not None
              and s.share_err_pp <= max_share_pp)
    if within:
        return f"within ({figs})"
    if s.trustworthy is False:
        return f"marked untrustworthy: {', '.join(s.warnings)} ({figs})"
    return f"MISSED: outside the bounds and not marked ({figs})"


def report_json(rows: Sequence[ConditionRow], scores: Sequence[SessionScore], meta: Mapping[str, Any]) -> str:
    return json.dumps({"meta": dict(meta), "conditions": [
        {**asdict(r), "interruption_precision": r.interruption_precision,
         "interruption_recall": r.interruption_recall, "long_pause_recall": r.long_pause_recall} for r in rows],
        "sessions": [asdict(s) for s in scores]}, indent=1) + "\n"
