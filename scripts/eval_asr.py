"""Word error rate overall and per role (therapist words, client words), DER, and the word coverage the
pipeline reports, for `rupture run` outputs of synthetic sessions (issue 17: the quieter voice).

    .venv/bin/python scripts/eval_asr.py TRUTH_DIR=RUN_DIR [TRUTH_DIR=RUN_DIR ...] [--per-session] [--json OUT]

Each argument pairs a folder of `*_truth.json` files (scripts/make_synthetic_sessions.py, e.g. rendered with
`--attenuate client:10`) with the `rupture run --out` folder of those sessions; one table row per pair
(a condition), pooled over its sessions.

- WER: errors / reference words summed over sessions (micro average; `pipeline.scoring.word_error_counts`).
  Overall: every truth utterance in time order against every recognised word in time order.
- Per role: each recognised word goes to the truth utterance it overlaps most in time (else the nearest),
  whatever speaker the pipeline gave it (`pipeline.scoring.words_by_reference_speaker`), so a client-word
  WER measures what the recogniser heard of the client's voice, not the diarization.
- DER: overlapping diarization `segments` against the truth RTTM, no collar (pyannote.metrics).
- coverage: `quality.speakers[].word_coverage` of session.json per role, when the session has a `quality`
  block (mean over sessions), and how many sessions it marks untrustworthy.

Exit status 0 (it reports), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence


from pipeline.scoring import (diarization_error_rate, read_rttm, speaker_word_error_counts,  # noqa: E402
                              word_error_counts)
from pipeline.serialize import record_from_dict  # noqa: E402

ROLES = ("therapist", "client")


def score_session(truth: dict[str, Any], session: dict[str, Any], rttm: Path | None) -> dict[str, Any]:
    rec_words = record_from_dict(session)
    utts = sorted(truth["utterances"], key=lambda u: (u["start"], u["end"]))
    ref = [(float(u["start"]), float(u["end"]), str(u["role"]), str(u["text"])) for u in utts]
    words = rec_words.words or ()
    out: dict[str, Any] = {"session_id": truth["session_id"]}
    out["overall"] = word_error_counts(" ".join(r[3] for r in ref), " ".join(w.text for w in words))
    per = speaker_word_error_counts(ref, words)
    for role in ROLES:
        out[role] = per.get(role, (0, 0))
    if rttm is not None and rttm.exists():
        out["der"] = diarization_error_rate(read_rttm(rttm), rec_words.segments, collar=0.0)["der"]
    q = session.get("quality")
    if isinstance(q, dict):
        roles = {s["id"]: s["role"] for s in session.get("speakers", ())}
        out["coverage"] = {roles.get(s["id"], s["id"]): s.get("word_coverage") for s in q.get("speakers", ())}
        out["untrustworthy"] = not q.get("trustworthy", True)
        out["warnings"] = [w.get("code") for w in q.get("warnings", ())]
    return out


def pool(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    def wer(key: str) -> float | None:
        e = sum(r[key][0] for r in rows)
        n = sum(r[key][1] for r in rows)
        return round(e / n, 4) if n else None

    ders = [r["der"] for r in rows if "der" in r]
    cov: dict[str, list[float]] = {}
    for r in rows:
        for role, c in (r.get("coverage") or {}).items():
            if c is not None:
                cov.setdefault(role, []).append(float(c))
    return {"sessions": len(rows), "wer": wer("overall"), **{f"wer_{r}": wer(r) for r in ROLES},
            "der": round(sum(ders) / len(ders), 4) if ders else None,
            **{f"coverage_{r}": round(sum(cov[r]) / len(cov[r]), 3) if r in cov else None for r in ROLES},
            "untrustworthy": sum(1 for r in rows if r.get("untrustworthy"))}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="See the module docstring for the definitions.")
    ap.add_argument("pairs", nargs="+", metavar="TRUTH_DIR=RUN_DIR")
    ap.add_argument("--per-session", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    report: dict[str, Any] = {}
    for pair in args.pairs:
        truth_dir, sep, run_dir = pair.partition("=")
        if not sep or not Path(truth_dir).is_dir() or not Path(run_dir).is_dir():
            ap.error(f"not TRUTH_DIR=RUN_DIR with two folders: {pair}")
        rows = []
        for tp in sorted(Path(truth_dir).glob("*_truth.json")):
            truth = json.loads(tp.read_text(encoding="utf-8"))
            sj = Path(run_dir) / truth["session_id"] / "session.json"
            if not sj.is_file():
                print(f"warning: no session.json for {truth['session_id']} in {run_dir}", file=sys.stderr)
                continue
            session = json.loads(sj.read_text(encoding="utf-8"))
            rows.append(score_session(truth, session, tp.with_name(tp.name.replace("_truth.json", ".rttm"))))
        if not rows:
            ap.error(f"no scored session for {pair}")
        report[pair] = {"summary": pool(rows), "sessions": rows}
    cols = ["sessions", "wer", "wer_therapist", "wer_client", "der", "coverage_therapist", "coverage_client",
            "untrustworthy"]
    width = max(len(k) for k in report)
    print(f"{'condition':<{width}}  " + "  ".join(f"{c:>18}" for c in cols))
    for k, v in report.items():
        s = v["summary"]
        print(f"{k:<{width}}  " + "  ".join(f"{'-' if s[c] is None else s[c]!s:>18}" for c in cols))
        if args.per_session:
            for r in v["sessions"]:
                fmt = lambda key: f"{r[key][0] / r[key][1]:.3f}" if r[key][1] else "-"  # noqa: E731
                print(f"    {r['session_id']}: wer {fmt('overall')} therapist {fmt('therapist')} client "
                      f"{fmt('client')} der {r.get('der', float('nan')):.3f} coverage {r.get('coverage')} "
                      f"warnings {r.get('warnings')}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
