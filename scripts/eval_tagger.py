"""Evaluate the rupture/repair tagger on a labelled split (default: the held-out test split).

    .venv/bin/python scripts/eval_tagger.py [--data models/tagger/data/test.jsonl ...] [--calm FILE] [--json out.json]

Runs the same path as the pipeline: MarkerClassifier (calibrated, role-masked probabilities) and the
pipeline.tagging decision (family threshold + conversational cues from each item's `cues`). Reports
per-class precision/recall/F1, macro-F1 over {withdrawal, confrontation, repair, none} and over all
labels (subtypes), subtype accuracy among detected ruptures, family and subtype confusion matrices,
expected calibration error, and an estimated false-rupture rate for calm sessions: the rate of false
ruptures on client `none` turns times 25 client turns per 10 minutes (a 50-minute session has ~250 turns,
half of them the client's). Both with cues and model-only (cue_weight 0). Then false ruptures per 10 minutes
on whole calm sessions (`--calm`, default data/calm_test.jsonl; 2.9 words/s, 0.7 s gaps) and on the calm
sessions built from the script pools of scripts/make_synthetic_sessions.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pipeline.offline  # noqa: E402,F401

import numpy as np  # noqa: E402

from pipeline.config import TaggingConfig  # noqa: E402
from pipeline.records import Turn, TurnFeatures  # noqa: E402
from pipeline.tagging import FAMILIES, LABELS, MarkerPrediction, decide, family_of, role_allows, text_features  # noqa: E402

CLIENT_TURNS_PER_10MIN = 25.0


def read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed object) for each non-blank line of a JSON Lines file."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                yield n, json.loads(line)


def load_items(path: Path, context_turns: int = 2) -> tuple[list[dict], list[Any]]:

    items = []
    for n, it in read_jsonl(path):
        lab, role = it["label"], it["target"]["role"]
        if lab not in LABELS:
            raise ValueError(f"{path}:{n}: unknown label {lab!r}")
        if not role_allows(role, lab) or role not in ("client", "therapist"):
            raise ValueError(f"{path}:{n}: label {lab!r} does not fit role {role!r}")
        items.append(it)
    return items_to_examples(items, context_turns)


def items_to_examples(items: list[dict], context_turns: int = 2) -> tuple[list[dict], list[Any]]:
    from models.tagger import Example

    examples = [Example(tuple((c["role"], c["text"]) for c in it["context"][-context_turns:] if context_turns > 0),
                        (it["target"]["role"], it["target"]["text"])) for it in items]
    return items, examples


def item_features(it: dict) -> TurnFeatures:
    """The target turn's cues: follows_question/minimal_response from the text, latency and interruption
    from the item's `cues` (None/False when absent)."""
    turns = [Turn(i, f"S{0 if c['role'] == 'therapist' else 1}", c["role"], float(i), float(i) + 0.5, c["text"],
                  len(c["text"].split())) for i, c in enumerate(it["context"])]
    tg = it["target"]
    k = len(turns)
    turns.append(Turn(k, f"S{0 if tg['role'] == 'therapist' else 1}", tg["role"], float(k), float(k) + 0.5, tg["text"],
                      len(tg["text"].split())))
    cues = it.get("cues") or {}
    lat = [None] * k + [cues.get("latency_s")]
    intr = [False] * k + [bool(cues.get("interrupts_previous", False))]
    return text_features(turns, lat, intr)[-1]


def prf(gold: list[str], pred: list[str], classes: list[str]) -> dict[str, dict[str, float]]:
    out = {}
    for c in classes:
        tp = sum(1 for g, p in zip(gold, pred) if g == c and p == c)
        fp = sum(1 for g, p in zip(gold, pred) if g != c and p == c)
        fn = sum(1 for g, p in zip(gold, pred) if g == c and p != c)
        P = tp / (tp + fp) if tp + fp else 0.0
        R = tp / (tp + fn) if tp + fn else 0.0
        F = 2 * P * R / (P + R) if P + R else 0.0
        out[c] = {"precision": P, "recall": R, "f1": F, "support": float(tp + fn)}
    return out


def confusion(gold: list[str], pred: list[str], classes: list[str]) -> list[list[int]]:
    idx = {c: i for i, c in enumerate(classes)}
    m = [[0] * len(classes) for _ in classes]
    for g, p in zip(gold, pred):
        m[idx[g]][idx[p]] += 1
    return m


def ece(probs: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    conf = probs.max(1)
    correct = probs.argmax(1) == y
    e = 0.0
    for b in range(bins):
        sel = (conf > b / bins) & (conf <= (b + 1) / bins)
        if sel.any():
            e += sel.mean() * abs(conf[sel].mean() - correct[sel].mean())
    return float(e)


def evaluate(items: list[dict], probs: np.ndarray, cfg: TaggingConfig,
             client_turns_per_10min: float = CLIENT_TURNS_PER_10MIN) -> dict[str, Any]:
    gold_lab, pred_lab, gold_fam, pred_fam = [], [], [], []
    for it, row in zip(items, probs):
        pred = MarkerPrediction(0, tuple((lab, float(p)) for lab, p in zip(LABELS, row)))
        d = decide(it["target"]["role"], pred, item_features(it), cfg)
        gold_lab.append(it["label"])
        pred_lab.append(d.subtype)
        gold_fam.append(family_of(it["label"]))
        pred_fam.append(d.family)
    fam = prf(gold_fam, pred_fam, list(FAMILIES))
    labels_present = [lab for lab in LABELS if lab in set(gold_lab)]
    sub = prf(gold_lab, pred_lab, labels_present)
    rupt = ("withdrawal", "confrontation")
    det = [(g, p) for g, p, gf, pf in zip(gold_lab, pred_lab, gold_fam, pred_fam) if gf in rupt and pf in rupt]
    tp_r = sum(1 for gf, pf in zip(gold_fam, pred_fam) if gf in rupt and pf in rupt)
    fp_r = sum(1 for gf, pf in zip(gold_fam, pred_fam) if gf not in rupt and pf in rupt)
    fn_r = sum(1 for gf, pf in zip(gold_fam, pred_fam) if gf in rupt and pf not in rupt)
    client_none = [pf for it, gf, pf in zip(items, gold_fam, pred_fam) if gf == "none" and it["target"]["role"] == "client"]
    false_rate = (sum(1 for pf in client_none if pf in rupt) / len(client_none)) if client_none else 0.0
    y = np.array([LABELS.index(g) for g in gold_lab])
    return {
        "n": len(items),
        "family": fam,
        "family_macro_f1": float(np.mean([fam[c]["f1"] for c in FAMILIES])),
        "subtype": sub,
        "subtype_macro_f1": float(np.mean([sub[c]["f1"] for c in labels_present])),
        "subtype_accuracy_detected": (sum(1 for g, p in det if g == p) / len(det)) if det else 0.0,
        "detected_ruptures": len(det),
        "rupture_precision": tp_r / (tp_r + fp_r) if tp_r + fp_r else 1.0,
        "rupture_recall": tp_r / (tp_r + fn_r) if tp_r + fn_r else 0.0,
        "client_none_turns": len(client_none),
        "false_rupture_rate_client_none": false_rate,
        "est_false_ruptures_per_10min_calm": false_rate * client_turns_per_10min,
        "family_confusion": {"classes": list(FAMILIES), "matrix": confusion(gold_fam, pred_fam, list(FAMILIES))},
        "subtype_confusion": {"classes": labels_present + [l for l in LABELS if l not in labels_present],
                              "matrix": confusion(gold_lab, pred_lab, labels_present + [l for l in LABELS if l not in labels_present])},
        "ece": ece(probs, y),
        "threshold": cfg.threshold,
        "cue_weight": cfg.cue_weight,
    }


def synthetic_pool(name: str):  # type: ignore[no-untyped-def]
    """A script pool of scripts/make_synthetic_sessions.py (another engineer's, independent of the corpus):
    "DEV" for tuning, "HELDOUT" for reporting. None when that script is not importable."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import make_synthetic_sessions as mss
    except Exception:  # noqa: BLE001 - optional cross-check only
        return None
    return getattr(mss, name, None)


def calm_session(pool) -> tuple[Turn, ...]:  # type: ignore[no-untyped-def]
    """A calm, collaborative session from a synthetic pool: openings, every collaborative exchange,
    prompts with client narratives, explanations with short answers, closings (no rupture lines).
    Timing: 2.9 words/s, 0.7 s gaps."""
    pairs: list[tuple[str, str]] = list(pool.openings) + list(pool.exchanges)
    pairs += [(pool.therapist_short[i % len(pool.therapist_short)], c) for i, c in enumerate(pool.client_long)]
    pairs += [(t, pool.client_short[i % len(pool.client_short)]) for i, t in enumerate(pool.therapist_long)]
    pairs += list(pool.closings)
    return timed_turns([(role, text) for th, cl in pairs for role, text in (("therapist", th), ("client", cl))])


def timed_turns(lines: list[tuple[str, str]]) -> tuple[Turn, ...]:
    """Turns from (role, text) lines with simulated timing: 2.9 words/s, 0.7 s gaps."""
    turns, t = [], 0.0
    for role, text in lines:
        t += 0.7
        dur = len(text.split()) / 2.9
        turns.append(Turn(len(turns), "T" if role == "therapist" else "C", role, round(t, 2), round(t + dur, 2),
                          text, len(text.split())))
        t += dur
    return tuple(turns)


def load_calm_sessions(path: Path) -> list[tuple[str, tuple[Turn, ...]]]:
    """Hand-written calm sessions (JSON Lines: {"id", "modality", "description", "turns": [{"role", "text"}]})
    as (id, timed turns)."""
    return [(s["id"], timed_turns([(t["role"], t["text"]) for t in s["turns"]])) for _, s in read_jsonl(path)]


def session_items(path: Path, context_turns: int = 3) -> list[dict]:
    """Corpus items (the load_items format) from labelled whole sessions (JSON Lines: {"id", "modality",
    "turns": [{"role", "text", "label", "latency_s"?}]}): one item per turn, with the turns before it as context."""
    items = []
    for n, s in read_jsonl(path):
        turns = s["turns"]
        for i, t in enumerate(turns):
            lab = t.get("label", "none")
            if lab not in LABELS or not role_allows(t["role"], lab):
                raise ValueError(f"{path}:{n}: turn {i}: label {lab!r} does not fit role {t['role']!r}")
            items.append({"id": f"{s['id']}-{i}", "modality": s.get("modality", ""),
                          "context": [{"role": c["role"], "text": c["text"]} for c in turns[max(0, i - context_turns):i]],
                          "target": {"role": t["role"], "text": t["text"]}, "label": lab,
                          "cues": {"latency_s": t.get("latency_s"), "interrupts_previous": False}})
    return items


def load_many(paths: list[Path], context_turns: int) -> tuple[list[dict], list]:  # type: ignore[type-arg]
    """Items from corpus files and from labelled whole sessions (files named sessions_*.jsonl)."""
    items, examples = [], []
    for p in paths:
        if p.name.startswith("sessions_"):
            it, ex = items_to_examples(session_items(p), context_turns)
        else:
            it, ex = load_items(p, context_turns)
        items += it
        examples += ex
    return items, examples


def calm_sessions_rate(sessions: list[tuple[str, tuple[Turn, ...]]], preds: list, cfg: TaggingConfig,  # type: ignore[type-arg]
                       per_session: list | None = None) -> tuple[int, float, float]:  # type: ignore[type-arg]
    """(false ruptures, minutes, false ruptures per 10 minutes) over several calm sessions; each session's
    (id, turns, false ruptures, minutes) is appended to `per_session` when given."""
    n = minutes = 0.0
    for (sid, turns), p in zip(sessions, preds):
        k, m, _ = calm_false_per_10min(turns, p, cfg)
        n += k
        minutes += m
        if per_session is not None:
            per_session.append((sid, turns, k, m))
    return int(n), minutes, (n / minutes * 10.0 if minutes else 0.0)


def calm_false_per_10min(turns: tuple[Turn, ...], preds, cfg: TaggingConfig) -> tuple[int, float, float]:  # type: ignore[no-untyped-def]
    """(false ruptures, minutes, false ruptures per 10 minutes) on a calm session."""
    from pipeline.tagging import tag_turns

    ev = tag_turns(turns, text_features(turns), preds, cfg)
    n = sum(1 for e in ev if e.type == "rupture")
    minutes = (turns[-1].end - turns[0].start) / 60.0
    return n, minutes, n / minutes * 10.0


def pool_rupture_items(pool) -> list[dict]:  # type: ignore[no-untyped-def]
    """The pool's labelled rupture lines (and the repair lines after them) as corpus items."""
    items = []
    for k, (sub, prompt, line) in enumerate(pool.ruptures):
        items.append({"id": f"pool-r{k}", "modality": "cbt", "context": [{"role": "therapist", "text": prompt}],
                      "target": {"role": "client", "text": line}, "label": sub, "cues": {}})
        rsub, rline = pool.repairs[k % len(pool.repairs)]
        items.append({"id": f"pool-p{k}", "modality": "cbt",
                      "context": [{"role": "therapist", "text": prompt}, {"role": "client", "text": line}],
                      "target": {"role": "therapist", "text": rline}, "label": rsub, "cues": {}})
    return items


def print_report(m: dict[str, Any], title: str = "") -> None:
    print(f"=== {title} (n={m['n']}, threshold={m['threshold']}, cue_weight={m['cue_weight']}) ===")
    print(f"{'family':<16}{'P':>7}{'R':>7}{'F1':>7}{'n':>6}")
    for c, v in m["family"].items():
        print(f"{c:<16}{v['precision']:7.3f}{v['recall']:7.3f}{v['f1']:7.3f}{int(v['support']):6d}")
    print(f"macro-F1 (withdrawal, confrontation, repair, none): {m['family_macro_f1']:.3f}")
    print(f"{'label':<44}{'P':>7}{'R':>7}{'F1':>7}{'n':>6}")
    for c, v in m["subtype"].items():
        print(f"{c:<44}{v['precision']:7.3f}{v['recall']:7.3f}{v['f1']:7.3f}{int(v['support']):6d}")
    print(f"macro-F1 over labels (subtypes + none): {m['subtype_macro_f1']:.3f}")
    print(f"subtype accuracy among detected ruptures: {m['subtype_accuracy_detected']:.3f} (of {m['detected_ruptures']})")
    print(f"rupture precision {m['rupture_precision']:.3f} recall {m['rupture_recall']:.3f}; ECE {m['ece']:.3f}")
    print(f"false ruptures on client none turns: {m['false_rupture_rate_client_none']:.3f} "
          f"(n={m['client_none_turns']}) -> est. {m['est_false_ruptures_per_10min_calm']:.2f} per 10 min of calm session")
    fc = m["family_confusion"]
    print("family confusion (rows gold, cols predicted):", "  ".join(c[:6] for c in fc["classes"]))
    for c, row in zip(fc["classes"], fc["matrix"]):
        print(f"  {c:<14}" + "".join(f"{v:7d}" for v in row))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", nargs="+", default=[str(ROOT / "models/tagger/data/test.jsonl")],
                    help="labelled JSONL file(s), scored together (default data/test.jsonl)")
    ap.add_argument("--config", default=None, help="YAML config (tagging section used)")
    ap.add_argument("--json", default="", help="write all metrics (with confusion matrices) here")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--subtype-confusion", action="store_true", help="print the full subtype confusion matrix")
    ap.add_argument("--calm", nargs="*", default=[str(ROOT / "models/tagger/data/calm_test.jsonl")],
                    help="hand-written calm session file(s) to count false ruptures on (default data/calm_test.jsonl)")
    args = ap.parse_args()
    import torch

    from models.tagger import MarkerClassifier
    from pipeline.config import load_config

    torch.set_num_threads(args.threads)
    conf = load_config(args.config)
    clf = MarkerClassifier(conf.tagging, conf.models)
    tcfg = clf.tagging_config()  # the threshold in force: the config's, else the model's tuned one
    items, examples = load_many([Path(p) for p in args.data], conf.tagging.context_turns)
    data_name = " + ".join(Path(p).name for p in args.data)
    probs = clf.predict_examples(examples)
    full = np.zeros((len(items), len(LABELS)))
    for j, lab in enumerate(clf.labels):
        full[:, LABELS.index(lab)] = probs[:, j]
    results = {}
    for name, cfg in (("with cues", tcfg), ("model only", replace(tcfg, cue_weight=0.0))):
        m = evaluate(items, full, cfg)
        print_report(m, title=f"{data_name}: {name}")
        if args.subtype_confusion and name == "with cues":
            sc = m["subtype_confusion"]
            for c, row in zip(sc["classes"], sc["matrix"]):
                if sum(row):
                    print(f"  {c:<44}" + " ".join(f"{v:3d}" for v in row))
        results[name] = m
    calm_files = [Path(p) for p in args.calm if p]
    if calm_files:
        sessions = [s for p in calm_files for s in load_calm_sessions(p)]
        per: list = []  # type: ignore[type-arg]
        n, minutes, rate = calm_sessions_rate(sessions, [clf(turns) for _, turns in sessions], tcfg, per)
        for sid, turns, k, m in per:
            print(f"calm session {sid} ({len(turns)} turns, {m:.1f} min): {k} false ruptures")
        names = " + ".join(p.name for p in calm_files)
        print(f"calm sessions {names}: {n} false ruptures in {minutes:.1f} min = {rate:.2f} per 10 min")
        results["calm_sessions"] = {"files": names, "false_ruptures": n, "minutes": minutes,
                                    "per_10min": rate}
    for pool_name in ("DEV", "HELDOUT"):
        pool = synthetic_pool(pool_name)
        if pool is None:
            continue
        turns = calm_session(pool)
        n, minutes, rate = calm_false_per_10min(turns, clf(turns), tcfg)
        print(f"calm synthetic session ({pool_name} pool of make_synthetic_sessions.py, {len(turns)} turns, "
              f"{minutes:.1f} min): {n} false ruptures = {rate:.2f} per 10 min")
        pitems = pool_rupture_items(pool)
        _, pex = items_to_examples(pitems, conf.tagging.context_turns)
        pp = clf.predict_examples(pex)
        pfull = np.zeros((len(pitems), len(LABELS)))
        for j, lab in enumerate(clf.labels):
            pfull[:, LABELS.index(lab)] = pp[:, j]
        pm = evaluate(pitems, pfull, tcfg)
        print(f"  its rupture lines: recall {pm['rupture_recall']:.2f}, subtype accuracy among detected "
              f"{pm['subtype_accuracy_detected']:.2f}; repair lines: recall {pm['family']['repair']['recall']:.2f}")
        results[f"calm_{pool_name}"] = {"false_ruptures": n, "minutes": minutes, "per_10min": rate,
                                        "pool_rupture_recall": pm["rupture_recall"],
                                        "pool_subtype_accuracy": pm["subtype_accuracy_detected"],
                                        "pool_repair_recall": pm["family"]["repair"]["recall"]}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
