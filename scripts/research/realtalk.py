"""The real-talk development data (../shared/data/real-talk/annomi_coded.csv): loading, the ASR-style noised
copy, and utterance-level scoring with the coders' consensus.

Records:
  `Utterance`  one coded utterance (AnnoMI row), its consensus family and subtype, fold and AnnoMI columns.
  `Conversation` one transcript: its utterances in order.
  `TaggedTurn` one turn as the tagger sees it (role, text) plus the utterances it came from (`origin`):
      in the clean copy one turn per utterance; in the noised copy a turn may merge several utterances or be
      one part of a split utterance, and every figure is scored back on the original utterances.

The noised copy imitates what `rupture run` hands the tagger from Whisper on a real recording: lower case,
punctuation removed or reduced to sentence marks, stutters and cut-off dashes collapsed, fillers dropped or
kept, consecutive turns of one speaker merged, long turns split at a sentence boundary (a pause), and
optionally no roles at all. It is seeded, so every model is scored on the same copy.
"""

from __future__ import annotations

import csv
import random
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Sequence

DEFAULT_CSV = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real-talk" / "annomi_coded.csv"

RUPTURE_FAMILIES = ("withdrawal", "confrontation")
FAMILIES = (*RUPTURE_FAMILIES, "repair")


@dataclass(frozen=True)
class Utterance:
    conv: str
    index: int  # position in the conversation
    role: str  # therapist | client
    text: str
    family: str  # withdrawal | confrontation | repair | none | dontcare (consensus)
    subtype: str  # consensus subtype ("" when the coders agreed on the family only, or none)
    fold: int
    mi_quality: str
    therapist_behaviour: str  # AnnoMI: question | reflection | therapist_input | other | n/a
    client_talk_type: str  # AnnoMI: change | neutral | sustain | n/a
    coder_families: tuple[str, ...] = ()  # each coder's family (withdrawal | confrontation | repair | none | unusable)

    @property
    def is_rupture(self) -> bool:
        return self.family in RUPTURE_FAMILIES

    @property
    def scored(self) -> bool:
        """Counted in figures: don't-care utterances are neither positive nor negative."""
        return self.family != "dontcare"


@dataclass(frozen=True)
class Conversation:
    conv: str
    fold: int
    mi_quality: str
    topic: str
    utterances: tuple[Utterance, ...]


@dataclass(frozen=True)
class TaggedTurn:
    role: str  # therapist | client | unknown
    text: str
    origin: tuple[int, ...]  # utterance indices this turn carries


def load_conversations(path: Path = DEFAULT_CSV) -> tuple[Conversation, ...]:
    """All conversations of the coded CSV, in file order (utterances by utterance_id)."""
    by: dict[str, list[dict[str, str]]] = {}
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            by.setdefault(row["transcript_id"], []).append(row)
    out = []
    for conv, rows in by.items():
        rows.sort(key=lambda r: int(r["utterance_id"]))
        utts = []
        for i, r in enumerate(rows):
            fam = r["consensus"]
            if fam not in ("withdrawal", "confrontation", "repair", "none", "dontcare"):
                raise ValueError(f"{path}: transcript {conv} utterance {r['utterance_id']}: unknown consensus {fam!r}")
            sub = r["consensus_label"].removeprefix("repair.") if fam != "none" else ""
            coders = tuple((r.get(k) or "none").split(".", 1)[0] for k in ("coder1", "coder2"))
            utts.append(Utterance(conv, i, r["interlocutor"], r["utterance_text"], fam, sub, int(r["fold"]),
                                  r["mi_quality"], r["main_therapist_behaviour"], r["client_talk_type"], coders))
        out.append(Conversation(conv, int(rows[0]["fold"]), rows[0]["mi_quality"], rows[0]["topic"], tuple(utts)))
    return tuple(out)


def clean_turns(conv: Conversation, roles: bool = True) -> tuple[TaggedTurn, ...]:
    return tuple(TaggedTurn(u.role if roles else "unknown", u.text, (u.index,)) for u in conv.utterances)


# ---- the ASR-style copy ------------------------------------------------------------------------------------
FILLERS = frozenset({"um", "uh", "erm", "er", "ah", "hmm", "mm", "mhm", "uh-huh", "mm-hmm", "huh"})
_STUTTER = re.compile(r"\b(\w+)(?:-\1\b)+", re.IGNORECASE)  # "I-I-I" -> "I"
_CUTOFF = re.compile(r"\s*-{1,2}(?=\s|$)")  # "put-- You", "It's like-" -> cut-off marks dropped
_BRACKETS = re.compile(r"\[[^\]]*\]|\([^)]*\)")  # [laughs], (inaudible): transcriber notes
_SENT = re.compile(r"(?<=[.!?])\s+")


def asr_text(text: str, rng: random.Random, punctuation: str, drop_fillers: float) -> str:
    """One utterance as Whisper would plausibly write it. punctuation: "none" (all removed) or
    "sentence" (only . ? and , kept, as Whisper writes them)."""
    t = _BRACKETS.sub(" ", text)
    t = _STUTTER.sub(r"\1", t)
    t = _CUTOFF.sub(" ", t)
    words = []
    for w in t.split():
        core = re.sub(r"[^\w'-]", "", w).lower()
        if core in FILLERS and rng.random() < drop_fillers:
            continue
        words.append(w)
    t = " ".join(words).lower()
    if punctuation == "none":
        t = re.sub(r"[^\w\s'-]", " ", t)
    else:
        t = re.sub(r"[;:!\"]", lambda m: "." if m.group() in ";:!" else "", t)
    return " ".join(t.split())


def noised_turns(conv: Conversation, seed: int = 0, roles: bool = True, split_words: int = 40,
                 split_prob: float = 0.5) -> tuple[TaggedTurn, ...]:
    """The ASR-style copy of one conversation (deterministic for a seed and conversation)."""
    rng = random.Random(f"{seed}:{conv.conv}")
    punctuation = rng.choice(("none", "sentence"))
    drop_fillers = rng.choice((0.0, 0.6, 1.0))
    merged: list[TaggedTurn] = []
    for u in conv.utterances:
        text = asr_text(u.text, rng, punctuation, drop_fillers)
        if merged and merged[-1].role == u.role:  # one speaker's consecutive utterances: one ASR turn
            prev = merged[-1]
            merged[-1] = replace(prev, text=f"{prev.text} {text}".strip(), origin=prev.origin + (u.index,))
        else:
            merged.append(TaggedTurn(u.role, text, (u.index,)))
    out: list[TaggedTurn] = []
    for t in merged:
        words = t.text.split()
        if len(words) > split_words and rng.random() < split_prob:  # a pause inside a long turn
            cut = _split_point(t.text)
            if cut is not None:
                out.append(replace(t, text=t.text[:cut].strip()))
                out.append(replace(t, text=t.text[cut:].strip()))
                continue
        out.append(t)
    out = [t for t in out if t.text]
    if not roles:
        out = [replace(t, role="unknown") for t in out]
    return tuple(out)


def _split_point(text: str) -> int | None:
    """A character offset near the middle: a sentence boundary when there is one, else a word boundary."""
    mid = len(text) // 2
    cands = [m.start() for m in _SENT.finditer(text)] or [m.start() for m in re.finditer(r"\s", text)]
    if not cands:
        return None
    return min(cands, key=lambda c: abs(c - mid))


def copies(convs: Iterable[Conversation], kind: str, seed: int = 0) -> dict[str, tuple[TaggedTurn, ...]]:
    """kind: clean | noised | noised_noroles."""
    out = {}
    for c in convs:
        if kind == "clean":
            out[c.conv] = clean_turns(c)
        elif kind == "noised":
            out[c.conv] = noised_turns(c, seed)
        elif kind == "noised_noroles":
            out[c.conv] = noised_turns(c, seed, roles=False)
        else:
            raise ValueError(f"unknown copy {kind!r}")
    return out


# ---- scoring back on the coded utterances ------------------------------------------------------------------
def to_utterances(conv: Conversation, turns: Sequence[TaggedTurn], turn_values: Sequence[float]) -> list[float]:
    """Per utterance, the highest value of the turns that carry it (a merged turn's decision applies to each
    of its utterances; a split utterance is flagged when any part is)."""
    out = [float("-inf")] * len(conv.utterances)
    for t, v in zip(turns, turn_values):
        for i in t.origin:
            out[i] = max(out[i], v)
    return out


def turn_label(conv: Conversation, turn: TaggedTurn, single_coder: bool = False) -> str:
    """Training label of a turn: the most salient consensus family among its utterances (rupture >
    repair > dontcare > none). With `single_coder`, a turn that would be `dontcare` takes the family that
    one of the coders gave one of its utterances (first coder first; `dontcare` still when a coder marked
    it unusable and none gave a family)."""
    fams = [conv.utterances[i].family for i in turn.origin]
    for f in ("confrontation", "withdrawal", "repair", "dontcare"):
        if f in fams:
            if f == "dontcare" and single_coder:
                given = [c for i in turn.origin for c in conv.utterances[i].coder_families if c in FAMILIES]
                return given[0] if given else f
            return f
    return "none"
