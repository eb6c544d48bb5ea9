"""Render the hand-written calm sessions (no ruptures) into flite audio with exact ground truth.

    .venv/bin/python scripts/make_calm_audio.py --out DIR [--in models/tagger/data/calm_test.jsonl ...]
        [--seed S] [--limit-turns N] [--only SOURCE_ID ...] [--noise-dbfs DB]

Input: JSON Lines, one session per line, `{"id", "modality", "description", "turns": [{"role", "text"}]}`
(`models/tagger/data/calm_test.jsonl` and `calm_dev.jsonl` by default). The split is the file's stem
(`calm_test`, `calm_dev`); the session id is `<split>_<source id>` (e.g. `calm_test_ct-1`).

Rendering (scripts/synth.py: `Script`/`Line`/`Part`, `render_script`, `write_session`):
* voices: therapist and client get two distinct flite voices (slt, rms, awb, kal); the ordered voice pairs
  are shuffled with --seed and dealt out one per session, so the sessions of one run all get different
  pairs (up to twelve sessions). The client's level is varied (-4..+2 dB, seeded) as in
  make_synthetic_sessions.py.
* two clients (couples/family sessions): a client turn that directly follows a client turn is the other
  client, rendered with a third voice and its own speaker id `client_b` (role "client"); after a therapist
  turn the client who spoke last goes on. Sessions without consecutive client turns have one client.
  The split of client turns between the two people is this heuristic, not the authors' intent; the truth
  is what is rendered, so it is exact either way.
* gaps between turns: uniform 0.3-1.5 s (seeded per session from --seed and the session id). A turn that
  opens with a "(pause)" stage direction gets 1.5-2.5 s, "(long pause)" 3.3-5.0 s.
* text: stage directions in brackets or parentheses ("(laughs)", "[laughs]", "(crying)", "(pause)") are
  removed, digits are written as words ("47" -> "forty seven"), spacing is tidied; then every line must
  pass `synth.check_text`. Changed turns are counted and listed (original text) in the truth metadata.
* --limit-turns N renders only the first N turns of each session, --only ID only the named source
  sessions (quick tests; the voice pairs are dealt over all sessions of the inputs either way, so a session
  keeps its voices).

Writes per session `<id>.flac`, `.rttm`, `.stm`, `_truth.json` (metadata: split, source_id, source_file,
modality, seed, voices, turns, adapted turns), `_transcript.csv`, and one `manifest.csv` for
`rupture run` (CONTRACT manifest: consent true, `therapist` empty, `num_speakers` = voices rendered, extra
columns split/source_id/modality/seed), as make_synthetic_sessions.py does.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np


from synth import Line, Part, Script, SynthError, check_text, manifest_csv, render_script, write_session  # noqa: E402

from pipeline.scoring import number_to_words  # noqa: E402
from pipeline.serialize import atomic_write_text  # noqa: E402

_REPO = Path(__file__).resolve().parents[1]
DEFAULT_INPUTS = (_REPO / "models/tagger/data/calm_test.jsonl", _REPO / "models/tagger/data/calm_dev.jsonl")
VOICE_NAMES = ("slt", "rms", "awb", "kal")  # synth.VOICES, as make_synthetic_sessions.py uses them
T, C, C2 = "therapist", "client", "client_b"
GAP_S = (0.3, 1.5)
PAUSE_GAP_S = {"pause": (1.5, 2.5), "long pause": (3.3, 5.0)}
MANIFEST_EXTRA = ("split", "source_id", "modality", "seed")

# stage directions: anything in square brackets, or one to three lower-case words in parentheses
_DIRECTION = re.compile(r"\s*(?:\[[^\]]*\]|\((?:[a-z]+ ?){1,3}\))\s*")
_LEADING_PAUSE = re.compile(r"^\s*[\[(]\s*(long pause|pause)\s*[\])]", re.IGNORECASE)
_DIGITS = re.compile(r"\d+")


@dataclass(frozen=True)
class Adapted:
    text: str  # what flite says (and the truth text); "" when nothing speakable is left
    changed: bool
    pause: str | None  # "pause" | "long pause" when the turn opened with that stage direction


# ------------------------------------------------------------------------------------------ pure helpers


def adapt_text(text: str) -> Adapted:
    """Make a written turn flite-safe with as little change as possible (pure)."""
    m = _LEADING_PAUSE.match(text)
    pause = m.group(1).lower() if m else None
    out = _DIRECTION.sub(" ", text)
    out = _DIGITS.sub(lambda d: number_to_words(int(d.group(0))), out)
    out = re.sub(r"\s+", " ", out).strip()
    out = re.sub(r"\s+([,.;:?!])", r"\1", out)
    return Adapted(out, out != text, pause)


def voice_pairs(seed: int) -> list[tuple[str, str]]:
    """All ordered (therapist, client) voice pairs, shuffled by `seed` (pure)."""
    pairs = [(a, b) for a in VOICE_NAMES for b in VOICE_NAMES if a != b]
    order = np.random.default_rng([seed, 7]).permutation(len(pairs))
    return [pairs[int(i)] for i in order]


def has_two_clients(turns: Sequence[dict[str, Any]]) -> bool:
    return any(a["role"] == "client" and b["role"] == "client" for a, b in zip(turns, turns[1:]))


def build_script(session_id: str, turns: Sequence[dict[str, Any]], pair: tuple[str, str],
                 rng: np.random.Generator, two_clients: bool) -> tuple[Script, list[dict[str, Any]], int]:
    """One session's script (pure given `rng`): (script, adapted turns [{turn, original, rendered}], turns
    dropped). `two_clients` comes from the whole source session, so a --limit-turns render is a prefix of the
    full one (same voices, same gaps)."""
    tv, cv = pair
    two = two_clients
    cast = [Part(T, "therapist", tv), Part(C, "client", cv, gain_db=round(float(rng.uniform(-4.0, 2.0)), 2))]
    if two:
        c2v = [v for v in VOICE_NAMES if v not in pair][int(rng.integers(2))]
        cast.append(Part(C2, "client", c2v, gain_db=round(float(rng.uniform(-4.0, 2.0)), 2)))
    lines: list[Line] = []
    adapted: list[dict[str, Any]] = []
    dropped = 0
    client = C
    prev_role: str | None = None
    for i, turn in enumerate(turns):
        role = turn["role"]
        if role not in ("therapist", "client"):
            raise SynthError(f"{session_id} turn {i}: role {role!r} is neither therapist nor client")
        a = adapt_text(turn["text"])
        lo, hi = PAUSE_GAP_S.get(a.pause or "", GAP_S)
        gap = round(float(rng.uniform(lo, hi)), 3)  # drawn for every turn: the gaps do not shift when one is dropped
        if a.changed:
            adapted.append({"turn": i, "original": turn["text"], "rendered": a.text})
        if not a.text or not re.search(r"[A-Za-z]", a.text):
            dropped += 1
            continue
        try:
            check_text(a.text)
        except SynthError as e:
            raise SynthError(f"{session_id} turn {i}: {e}: {a.text!r}") from e
        if role == "therapist":
            speaker = T
        else:
            if two and prev_role == "client":
                client = C2 if client == C else C
            speaker = client
        prev_role = role
        lines.append(Line(speaker, a.text, gap=0.0 if not lines else gap))
    if not lines:
        raise SynthError(f"{session_id}: no speakable turns")
    used = {ln.speaker for ln in lines}
    return Script(session_id, tuple(p for p in cast if p.speaker in used), tuple(lines)), adapted, dropped


def session_rng(seed: int, split: str, source_id: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(f"{split}:{source_id}".encode("utf-8"))])


# ------------------------------------------------------------------------------------------------- I/O


def read_sessions(path: Path) -> list[dict[str, Any]]:
    out = []
    for n, ln in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not ln.strip():
            continue
        try:
            s = json.loads(ln)
        except json.JSONDecodeError as e:
            raise SystemExit(f"{path} line {n}: not JSON ({e})") from e
        if not isinstance(s, dict) or "id" not in s or not isinstance(s.get("turns"), list):
            raise SystemExit(f"{path} line {n}: expected an object with 'id' and a 'turns' list")
        out.append(s)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--in", dest="inputs", type=Path, action="append",
                    help="JSON Lines file of sessions (repeatable; default calm_test.jsonl and calm_dev.jsonl)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit-turns", type=int, default=None, help="render only the first N turns of each session")
    ap.add_argument("--only", action="append", metavar="ID", help="only the sessions with this source id (repeatable)")
    ap.add_argument("--noise-dbfs", type=float, default=-78.0, help="seeded white noise floor (default -78)")
    args = ap.parse_args(argv)
    inputs = args.inputs or list(DEFAULT_INPUTS)
    if args.limit_turns is not None and args.limit_turns < 1:
        ap.error("--limit-turns must be at least 1")
    missing = [str(p) for p in inputs if not p.is_file()]
    if missing:
        ap.error(f"input not found: {', '.join(missing)}")

    pairs = voice_pairs(args.seed)
    rows = []
    k = 0
    total_turns = total_adapted = total_dropped = 0
    for path in inputs:
        split = path.stem
        for s in read_sessions(path):
            src = str(s["id"])
            pair = pairs[k % len(pairs)]  # dealt before --only filters, so a session keeps its voices
            k += 1
            if args.only and src not in args.only:
                continue
            sid = f"{split}_{src}"
            turns = s["turns"][: args.limit_turns] if args.limit_turns else s["turns"]
            rng = session_rng(args.seed, split, src)
            try:
                script, adapted, dropped = build_script(sid, turns, pair, rng, has_two_clients(s["turns"]))
                rendered = render_script(script, seed=int(rng.integers(2**31)), noise_dbfs=args.noise_dbfs)
            except SynthError as e:
                print(f"error: {e}", file=sys.stderr)
                return 1
            meta = {"split": split, "source_id": src, "source_file": path.name, "modality": s.get("modality", ""),
                    "seed": args.seed, "voices": {p.speaker: p.voice for p in script.cast},
                    "turns_in_source": len(s["turns"]), "turns_rendered": len(script.lines),
                    "limit_turns": args.limit_turns, "turns_adapted": len(adapted), "turns_dropped": dropped,
                    "adapted": adapted, "noise_dbfs": args.noise_dbfs}
            paths = write_session(args.out, rendered, extra=meta)
            rows.append({"audio": paths["audio"].name, "session_id": sid, "consent_recording": "true",
                         "consent_analysis": "true", "consent_date": "2026-11-02", "num_speakers": len(script.cast),
                         "therapist": "", "split": split, "source_id": src, "modality": meta["modality"],
                         "seed": args.seed})
            total_turns += len(turns)
            total_adapted += len(adapted)
            total_dropped += dropped
            t = rendered.truth
            print(f"{sid}: {t.duration_s:.1f} s, {len(script.lines)} turns "
                  f"({len(adapted)} adapted, {dropped} dropped), voices "
                  + ", ".join(f"{p.speaker}={p.voice}" for p in script.cast)
                  + f", {sum(1 for e in t.events if e.type == 'rupture')} ruptures in truth", flush=True)
    if not rows:
        print("error: no session selected (check --only against the inputs' ids)", file=sys.stderr)
        return 2
    atomic_write_text(args.out / "manifest.csv", manifest_csv(rows, MANIFEST_EXTRA), mode=0o644)
    print(f"wrote {len(rows)} sessions and {args.out / 'manifest.csv'}; {total_adapted} of {total_turns} turns "
          f"adapted for flite, {total_dropped} dropped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
