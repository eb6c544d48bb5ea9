"""Benchmark: all exports and the review page for a synthetic 60-minute session (target: under 5 s).

Builds a session record of about 900 turns, 9,000 words, 150 events and the overlapping diarization
track, then times `write_exports(..., FORMATS)` (report.html, .eaf, .rttm, .vtt, .TextGrid, turns.csv,
events.csv, transcript.txt). The first ("cold") run includes importing pympi, praatio, webvtt-py and
pyannote.core; the later ("warm") runs are what each further session of a batch costs. Also times the
batch index and the corpus tables over the one session.

    .venv/bin/python scripts/bench_exports.py [--minutes 60] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path


from pipeline.records import (  # noqa: E402
    INTERRUPTION_SUBTYPES,
    Metrics,
    ModelInfo,
    Provenance,
    REPAIR_SUBTYPES,
    RUPTURE_SUBTYPES,
    Event,
    Segment,
    SessionRecord,
    Speaker,
    Turn,
    Word,
)

VOCAB = ("I", "you", "the", "really", "feel", "think", "week", "work", "sister", "sleep", "okay", "maybe",
         "that", "was", "hard", "and", "then", "we", "talked", "about", "it", "know", "just", "mm-hm", "so")


def synthetic_session(minutes: float = 60.0, seed: int = 0) -> SessionRecord:
    rng = random.Random(seed)
    duration = minutes * 60.0
    n_turns = int(round(900 * minutes / 60.0))
    per_turn = duration / n_turns
    speakers = ("SPEAKER_00", "SPEAKER_01")
    turns: list[Turn] = []
    words: list[Word] = []
    segments: list[Segment] = []
    for i in range(n_turns):
        spk = speakers[i % 2]
        start = i * per_turn + rng.uniform(-0.4, 0.3) if i else 0.5
        n_words = max(1, int(rng.gauss(10, 4)))
        length = min(per_turn * 0.95, n_words * 0.3)
        end = start + length
        toks = [rng.choice(VOCAB) for _ in range(n_words)]
        if i % 97 == 5:
            toks.append("<b>&</b>")
        step = length / n_words
        for k, tok in enumerate(toks):
            words.append(Word(start + k * step, start + (k + 0.9) * step, tok, rng.uniform(0.6, 1.0), spk))
        turns.append(Turn(i, spk, "therapist" if spk == speakers[0] else "client", start, end, " ".join(toks),
                          len(toks)))
        segments.append(Segment(start, end, spk))
    events: list[Event] = []
    for k in range(150):
        t = turns[rng.randrange(1, n_turns)]
        kind = ("rupture", "repair", "interruption", "backchannel", "overlap", "long_pause")[k % 6]
        sub = {"rupture": rng.choice(RUPTURE_SUBTYPES), "repair": rng.choice(REPAIR_SUBTYPES),
               "interruption": rng.choice(INTERRUPTION_SUBTYPES)}.get(kind)
        other = speakers[1] if t.speaker == speakers[0] else speakers[0]
        events.append(Event(kind, sub, t.start, t.end, t.speaker, other, t.index, round(rng.uniform(0.3, 1.0), 3),
                            "synthetic evidence " + t.text[:40], resolved=(rng.random() < 0.5) if kind == "rupture"
                            else None, repair_turn_index=None))
    events.append(Event("talk_time_imbalance", None, 600.0, 900.0, speakers[0], None, None, 0.7, "share 0.71"))
    talk = {s: sum(t.end - t.start for t in turns if t.speaker == s) for s in speakers}
    return SessionRecord(
        session_id="bench-60min", duration_s=duration,
        speakers=(Speaker(speakers[0], "therapist", talk[speakers[0]], 0.9, "inferred"),
                  Speaker(speakers[1], "client", talk[speakers[1]], 0.9, "inferred")),
        turns=tuple(turns), words=tuple(words), events=tuple(sorted(events, key=lambda e: e.start)),
        metrics=Metrics(other={"talk_time_share": {s: v / sum(talk.values()) for s, v in talk.items()}}),
        provenance=Provenance(models={"asr": ModelInfo(name="whisper-base", version="x", sha256="0" * 64)},
                              created="2026-01-01T00:00:00+00:00"),
        segments=tuple(segments))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from pipeline.exports import FORMATS, summary_from_record, write_corpus_tables, write_exports, write_index
    from pipeline.serialize import write_session_json

    rec = synthetic_session(args.minutes)
    print(f"session: {rec.duration_s / 60:.0f} min, {len(rec.turns)} turns, {len(rec.words or ())} words, "
          f"{len(rec.events)} events, {len(rec.segments)} segments")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        audio = root / "audio" / "session.wav"
        times = []
        for r in range(max(1, args.repeat)):
            t0 = time.perf_counter()
            paths = write_exports(rec, root / "out" / rec.session_id, audio, FORMATS)
            times.append(time.perf_counter() - t0)
            label = "cold (includes library imports)" if r == 0 else "warm"
            print(f"write_exports, all {len(FORMATS)} formats ({len(paths)} files): {times[-1]:.3f} s  [{label}]")
        sizes = {p.name: p.stat().st_size for p in paths}
        print("sizes: " + ", ".join(f"{k} {v / 1024:.0f} KiB" for k, v in sizes.items()))
        write_session_json(rec, root / "out" / rec.session_id / "session.json")
        t0 = time.perf_counter()
        write_index(root / "out", [summary_from_record(rec)])
        t_index = time.perf_counter() - t0
        t0 = time.perf_counter()
        write_corpus_tables(root / "out")
        t_corpus = time.perf_counter() - t0
        print(f"write_index: {t_index:.3f} s; write_corpus_tables (incl. reading session.json): {t_corpus:.3f} s")
        worst = max(times)
        warm = statistics.median(times[1:]) if len(times) > 1 else times[0]
        print(f"RESULT worst={worst:.3f}s warm_median={warm:.3f}s target<5s {'PASS' if worst < 5.0 else 'FAIL'}")
        return 0 if worst < 5.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
