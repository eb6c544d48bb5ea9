"""Score the conversation measures (pipeline.measures) against synthetic ground truth.

Truth: `*_truth.json` files written by scripts/synth.py (format "rupture-synth-truth/1"), found recursively
under TRUTH_DIR; a session's split is its `metadata.split`, else the name of the folder holding it.

Modes
  --oracle            build turns, words and the overlapping segment track from the truth utterances
                      (exact times; words spread evenly over their utterance) and run the measures: no
                      models. Checks the classification logic in isolation.
  --runs OUT          score `rupture run` outputs `OUT/<session_id>/session.json` (words, turns, overlapping
                      `segments`, `speakers` with roles, `events`), i.e. end to end from audio.
  --runs OUT --recompute   recompute the measures from the stored turns/words/segments with the current
                      config (pure; for threshold tuning on dev without re-running the models).
  --pyannote-sample   also score overlap detection on the pyannote sample (reference RTTM + STM; oracle
                      inputs, or with --pyannote-session PATH a session.json produced from sample.wav).

Scores per split
  interruptions: a predicted interruption matches a truth one when the onsets differ by at most --tol
  seconds and the direction (interrupter -> interrupted, after mapping predicted speakers onto truth
  speakers by time overlap) agrees; precision, recall, subtype accuracy among matches.
  bc_as_interruption: predicted interruptions whose onset lies within --tol of a truth backchannel by the
  same (mapped) speaker (must be 0).
  therapist share error: |predicted - true| therapist share of speech, percentage points.
  long-pause recall: truth long pauses overlapped by a predicted long_pause event.
  backchannel precision/recall (information only).

Usage
  .venv/bin/python scripts/eval_measures.py TRUTH_DIR --oracle [--split dev] [--json OUT.json]
  .venv/bin/python scripts/eval_measures.py TRUTH_DIR --runs RUN_OUT [--split heldout]
  .venv/bin/python scripts/eval_measures.py --pyannote-sample [--pyannote-session session.json]

Exit status 0 always (it reports; it does not gate), 2 on a usage error.

Measured (2026-11-23, CPU, default config with tagging/exports off; synthetic sessions from
scripts/make_synthetic_sessions.py: dev --seed 11 and --seed 12 for tuning, heldout --seed 23 scored only):
  oracle, 36 dev + 18 heldout sessions: interruptions P = R = 1.0, subtypes 100 %, no backchannel counted
    as an interruption, long-pause recall 1.0, therapist share error 0.0 pp.
  end to end from audio (whisper-base + segmentation-3.0/CAM++), heldout (18 sessions): interruption
    P 0.92, R 0.71 (12/17), subtype accuracy 0.92, backchannels counted as interruptions 0, long-pause
    recall 1.0 (10/10), therapist share error mean 2.3 pp (15/18 sessions within 3 pp; the rest are
    diarization speaker confusions). dev seed 11: P 0.94, R 0.94; dev seed 12: P 0.86, R 0.75.
  fresh held-out seeds 41 + 43 (36 sessions, same code): interruption P 0.88 (28/32), R 0.76 (28/37),
    subtype accuracy 1.0, 1 backchannel counted as an interruption, long-pause recall 1.0 (18/18),
    therapist share error mean 3.9 pp (31/36 within 3 pp; the rest male-male voice pairs, two role swaps).
  pyannote sample: all 4 reference overlaps of >= 0.2 s found on oracle inputs, 3 of 4 end to end.
  current code (diarization second pass, free-relative fix), dev seeds 11-14 (72 sessions): P 0.93, R 0.85,
    4 backchannels counted as interruptions, long-pause recall 1.0, therapist share error mean 0.6 pp (max
    2.8). Fresh held-out seeds 47 + 53 (36 sessions, scored once): P 0.91 (30/33), R 0.79 (30/38), subtype
    accuracy 0.97, 3 backchannels counted as interruptions, long-pause recall 1.0 (18/18), therapist share
    error mean 0.6 pp (max 2.5; 36/36 within 3 pp).
  current code (per-channel crosstalk gate, ASR punctuation after an overlap onset not trusted, low-probability
    words judged by length), fresh held-out seeds 59 + 61 (36 sessions, scored once):
    mono: P 0.93 (25/27), R 0.69 (25/36), 1 backchannel counted as an interruption (of 29), long-pause recall
    1.0 (20/20), therapist share error mean 0.53 pp (max 2.85; 36/36 within 3 pp);
    two channels (--stereo, -20 dB crosstalk): P 0.91 (30/33), R 0.83 (30/36), 2 backchannels counted as
    interruptions, long-pause recall 1.0, therapist share error mean 0.14 pp (max 0.37).
    Dev seeds 11-14 two channels: P 0.98, R 0.89, 1 backchannel as an interruption; mono unchanged.
  oracle: 72 dev + 36 held-out (59 + 61) sessions exact (P = R = 1, 0 backchannels as interruptions).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Mapping, Sequence


from pipeline.config import MeasuresConfig, load_config  # noqa: E402
from pipeline.measures import measure_conversation  # noqa: E402
from pipeline.records import Event, Segment, Turn, Word  # noqa: E402
from pipeline.serialize import read_session_json  # noqa: E402
from pipeline.turns import build_turns  # noqa: E402


# ------------------------------------------------------------------------------------------- inputs


def find_truths(root: Path) -> list[Path]:
    return sorted(root.rglob("*_truth.json"))


def split_of(truth: Mapping[str, Any], path: Path) -> str:
    meta = truth.get("metadata") or {}
    return str(meta.get("split") or path.parent.name)


def words_from_text(speaker: str, start: float, end: float, text: str) -> list[Word]:
    """Spread an utterance's words evenly over its span (flite speaks at a near-constant rate)."""
    toks = text.split()
    if not toks:
        return []
    weights = [max(1, len(t.strip(".,?!;:"))) for t in toks]
    total = float(sum(weights))
    out, t = [], start
    for tok, w in zip(toks, weights):
        d = (end - start) * w / total
        out.append(Word(t, t + d, tok, 1.0, speaker))
        t += d
    return out


def oracle_inputs(truth: Mapping[str, Any]) -> tuple[tuple[Turn, ...], tuple[Word, ...], tuple[Segment, ...], dict[str, str]]:
    roles = {s["id"]: s["role"] for s in truth["speakers"]}
    words: list[Word] = []
    segs: list[Segment] = []
    for u in truth["utterances"]:
        words += words_from_text(u["speaker"], float(u["start"]), float(u["end"]), u["text"])
        segs.append(Segment(float(u["start"]), float(u["end"]), u["speaker"]))
    ws = tuple(sorted(words, key=lambda w: (w.start, w.end)))
    return build_turns(ws, roles), ws, tuple(sorted(segs, key=lambda s: s.start)), roles


# ------------------------------------------------------------------------------------------- scoring


def speaker_map(pred_segments: Sequence[Segment], truth_utts: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Map each predicted speaker to the truth speaker it overlaps most in time."""
    ov: dict[tuple[str, str], float] = defaultdict(float)
    for s in pred_segments:
        for u in truth_utts:
            d = min(s.end, float(u["end"])) - max(s.start, float(u["start"]))
            if d > 0:
                ov[(s.speaker, u["speaker"])] += d
    out: dict[str, str] = {}
    for (p, t), _ in sorted(ov.items(), key=lambda kv: -kv[1]):
        out.setdefault(p, t)
    return out


def _match(pred: Sequence[Event], truth: Sequence[Mapping[str, Any]], tol: float, smap: Mapping[str, str],
           directional: bool = True) -> list[tuple[int, int]]:
    """Greedy one-to-one matching by onset distance (<= tol) and, optionally, direction."""
    pairs = []
    for i, p in enumerate(pred):
        for j, t in enumerate(truth):
            d = abs(p.start - float(t["start"]))
            if d > tol:
                continue
            if directional and (smap.get(p.speaker or "", p.speaker) != t.get("speaker")
                                or smap.get(p.target_speaker or "", p.target_speaker) != t.get("target_speaker")):
                continue
            pairs.append((d, i, j))
    used_p, used_t, out = set(), set(), []
    for _, i, j in sorted(pairs):
        if i in used_p or j in used_t:
            continue
        used_p.add(i)
        used_t.add(j)
        out.append((i, j))
    return out


def score_session(truth: Mapping[str, Any], events: Sequence[Event], therapist_share: float | None,
                  pred_segments: Sequence[Segment], tol: float) -> dict[str, Any]:
    utts = truth["utterances"]
    smap = speaker_map(pred_segments, utts) if pred_segments else {}
    t_ev = truth["events"]
    t_int = [e for e in t_ev if e["type"] == "interruption"]
    t_bc = [e for e in t_ev if e["type"] == "backchannel"]
    t_lp = [e for e in t_ev if e["type"] == "long_pause"]
    p_int = [e for e in events if e.type == "interruption"]
    p_bc = [e for e in events if e.type == "backchannel"]
    p_lp = [e for e in events if e.type == "long_pause"]
    m_int = _match(p_int, t_int, tol, smap)
    subtype_ok = sum(1 for i, j in m_int if p_int[i].subtype == t_int[j]["subtype"])
    # backchannels counted as interruptions: predicted interruption by the backchanneller at its onset
    bc_as_int = len(_match(p_int, t_bc, tol, smap, directional=False)) if t_bc else 0
    bc_as_int = sum(
        1 for i, j in _match(p_int, t_bc, tol, smap, directional=False)
        if smap.get(p_int[i].speaker or "", p_int[i].speaker) == t_bc[j]["speaker"]
    )
    m_bc = _match(p_bc, t_bc, tol, smap, directional=False)
    lp_hit = 0
    for t in t_lp:
        ts, te = float(t["start"]), float(t["end"])
        if any(min(te, p.end) - max(ts, p.start) > 0 for p in p_lp):
            lp_hit += 1
    true_share = truth["talk_time"]["share_by_role"].get("therapist")
    share_err = None if therapist_share is None or true_share is None else abs(therapist_share - true_share) * 100
    return {
        "session_id": truth["session_id"],
        "int_tp": len(m_int), "int_pred": len(p_int), "int_true": len(t_int), "int_subtype_ok": subtype_ok,
        "bc_as_interruption": bc_as_int,
        "bc_tp": len(m_bc), "bc_pred": len(p_bc), "bc_true": len(t_bc),
        "lp_hit": lp_hit, "lp_true": len(t_lp), "lp_pred": len(p_lp),
        "therapist_share_pred": therapist_share, "therapist_share_true": true_share,
        "therapist_share_err_pp": None if share_err is None else round(share_err, 2),
    }


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def aggregate(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    s = lambda k: sum(int(r[k]) for r in rows)  # noqa: E731
    errs = [r["therapist_share_err_pp"] for r in rows if r["therapist_share_err_pp"] is not None]
    return {
        "sessions": len(rows),
        "interruption_precision": _ratio(s("int_tp"), s("int_pred")),
        "interruption_recall": _ratio(s("int_tp"), s("int_true")),
        "interruption_subtype_accuracy": _ratio(s("int_subtype_ok"), s("int_tp")),
        "interruptions": {"tp": s("int_tp"), "pred": s("int_pred"), "true": s("int_true")},
        "backchannels_counted_as_interruptions": s("bc_as_interruption"),
        "backchannel_precision": _ratio(s("bc_tp"), s("bc_pred")),
        "backchannel_recall": _ratio(s("bc_tp"), s("bc_true")),
        "long_pause_recall": _ratio(s("lp_hit"), s("lp_true")),
        "long_pauses": {"hit": s("lp_hit"), "true": s("lp_true"), "pred": s("lp_pred")},
        "therapist_share_err_pp_mean": round(sum(errs) / len(errs), 2) if errs else None,
        "therapist_share_err_pp_max": round(max(errs), 2) if errs else None,
    }


# ------------------------------------------------------------------------------------------- runners


def run_oracle(truth: Mapping[str, Any], cfg: MeasuresConfig, tol: float) -> dict[str, Any]:
    turns, words, segs, roles = oracle_inputs(truth)
    m = measure_conversation(turns, words, segs, roles, float(truth["duration_s"]), cfg)
    return score_session(truth, m.events, m.metrics.therapist_share, segs, tol)


def run_output(truth: Mapping[str, Any], session_json: Path, tol: float,
               recompute: MeasuresConfig | None = None) -> dict[str, Any]:
    rec = read_session_json(session_json)
    if recompute is not None:  # re-run the (pure) measures on the stored turns, words and segments
        roles = {s.id: s.role for s in rec.speakers}
        m = measure_conversation(rec.turns, rec.words or (), rec.segments, roles, rec.duration_s, recompute,
                                 asr_words=bool(rec.words))
        segs = rec.segments or tuple(Segment(t.start, t.end, t.speaker) for t in rec.turns)
        return score_session(truth, m.events, m.metrics.therapist_share, segs, tol)
    share = rec.metrics.therapist_share
    if share is None:  # fall back on speaker talk times and roles
        tot = sum(s.talk_time_s for s in rec.speakers)
        th = sum(s.talk_time_s for s in rec.speakers if s.role == "therapist")
        share = th / tot if tot > 0 else None
    segs = rec.segments or tuple(Segment(t.start, t.end, t.speaker) for t in rec.turns)
    return score_session(truth, rec.events, share, segs, tol)


def pyannote_sample(cfg: MeasuresConfig, session: Path | None, tol: float) -> dict[str, Any]:
    """Overlap detection on the pyannote sample: reference overlap regions (RTTM) vs predicted
    overlap-type events (interruption, backchannel, overlap)."""
    import importlib.util

    spec = importlib.util.find_spec("pyannote.audio")
    if spec is None or not spec.submodule_search_locations:
        return {"error": "pyannote.audio is not installed"}
    sample = Path(list(spec.submodule_search_locations)[0]) / "sample"
    ref = []
    for ln in (sample / "sample.rttm").read_text().splitlines():
        f = ln.split()
        if f and f[0] == "SPEAKER":
            ref.append(Segment(float(f[3]), float(f[3]) + float(f[4]), f[7]))
    # reference overlap regions
    regions = []
    for i, a in enumerate(ref):
        for b in ref[i + 1:]:
            if a.speaker != b.speaker:
                s, e = max(a.start, b.start), min(a.end, b.end)
                if e > s:
                    regions.append((s, e))
    regions.sort()
    out: dict[str, Any] = {"reference_overlaps": len(regions),
                           "reference_overlaps_ge_min": sum(1 for s, e in regions if e - s >= cfg.min_overlap_s)}

    def score(events: Sequence[Event]) -> dict[str, Any]:
        ov = [e for e in events if e.type in ("interruption", "backchannel", "overlap")]
        hit = sum(1 for s, e in regions if e - s >= cfg.min_overlap_s
                  and any(min(e, p.end + tol) - max(s, p.start - tol) > 0 for p in ov))
        kinds: dict[str, int] = defaultdict(int)
        for p in ov:
            kinds[p.type if p.subtype is None else f"{p.type}.{p.subtype}"] += 1
        return {"overlap_events": len(ov), "reference_overlaps_found": hit, "by_kind": dict(sorted(kinds.items()))}

    # oracle: RTTM segments + STM phrases (words spread over each phrase)
    speakers = {"Diane": "speaker90", "Sheila": "speaker91"}  # STM names -> RTTM ids (by timing)
    words: list[Word] = []
    for ln in (sample / "sample.stm").read_text().splitlines():
        f = ln.split(maxsplit=5)
        if len(f) < 6 or ln.startswith(";;"):
            continue
        words += words_from_text(speakers.get(f[2], f[2]), float(f[3]), float(f[4]), f[5])
    ws = tuple(sorted(words, key=lambda w: w.start))
    roles = {"speaker90": "therapist", "speaker91": "client"}  # arbitrary: the sample is not therapy
    turns = build_turns(ws, roles)
    m = measure_conversation(turns, ws, tuple(ref), roles, 30.0, cfg)
    out["oracle"] = score(m.events)
    if session is not None:
        rec = read_session_json(session)
        out["session"] = score(rec.events)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("truth_dir", type=Path, nargs="?")
    ap.add_argument("--oracle", action="store_true")
    ap.add_argument("--runs", type=Path, help="directory of rupture run outputs (OUT/<session_id>/session.json)")
    ap.add_argument("--recompute", action="store_true",
                    help="with --runs: recompute the measures from the stored turns/words/segments with --config "
                         "(for tuning thresholds without re-running the models)")
    ap.add_argument("--split", action="append", help="only these splits (repeatable); default all")
    ap.add_argument("--config", type=Path, help="config YAML (its `measures` section is used in --oracle)")
    ap.add_argument("--tol", type=float, default=1.0, help="onset tolerance, seconds (default 1.0)")
    ap.add_argument("--pyannote-sample", action="store_true")
    ap.add_argument("--pyannote-session", type=Path)
    ap.add_argument("--json", type=Path, help="write the full report here")
    ap.add_argument("--per-session", action="store_true", help="print one line per session")
    args = ap.parse_args(argv)
    if not args.truth_dir and not args.pyannote_sample:
        ap.error("give TRUTH_DIR (with --oracle or --runs) and/or --pyannote-sample")
    if args.truth_dir and not (args.oracle or args.runs):
        ap.error("choose --oracle or --runs OUT")
    cfg = load_config(args.config).measures
    report: dict[str, Any] = {"config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}}
    if args.truth_dir:
        by_split: dict[str, list[dict[str, Any]]] = defaultdict(list)
        missing = []
        for p in find_truths(args.truth_dir):
            truth = json.loads(p.read_text(encoding="utf-8"))
            split = split_of(truth, p)
            if args.split and split not in args.split:
                continue
            if args.oracle:
                row = run_oracle(truth, cfg, args.tol)
            else:
                sj = args.runs / truth["session_id"] / "session.json"
                if not sj.exists():
                    missing.append(truth["session_id"])
                    continue
                row = run_output(truth, sj, args.tol, cfg if args.recompute else None)
            row["split"] = split
            by_split[split].append(row)
            if args.per_session:
                print(json.dumps(row))
        report["mode"] = "oracle" if args.oracle else f"runs:{args.runs}" + (":recomputed" if args.recompute else "")
        report["splits"] = {k: aggregate(v) for k, v in sorted(by_split.items())}
        report["sessions"] = {k: v for k, v in sorted(by_split.items())}
        if missing:
            report["missing_runs"] = missing
        for k, v in report["splits"].items():
            print(f"[{report['mode']}] split={k} " + json.dumps(v))
        if missing:
            print(f"missing session.json for {len(missing)} session(s): {', '.join(missing[:10])}")
    if args.pyannote_sample:
        report["pyannote_sample"] = pyannote_sample(cfg, args.pyannote_session, args.tol)
        print("[pyannote sample] " + json.dumps(report["pyannote_sample"]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
