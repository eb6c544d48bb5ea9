"""Scoring against references: diarization error rate (pyannote.metrics), word error rate (jiwer), and
readers for the reference formats (RTTM, STM).

Pure functions of records and strings, except `read_rttm` / `read_stm`, which only read the file given.

Evaluation only: used by `scripts/` (evaluate, eval_diarization, make_calm_audio) and the tests, never by a
session run. jiwer comes with the `test` extra, so it is imported inside `word_error_rate` only.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Iterable

import pipeline.offline  # noqa: F401  (pyannote.metrics pulls in ML libraries)
from pipeline.records import Segment, Word

StmEntry = tuple[float, float, str, str]  # (start, end, speaker, text)


def read_rttm(path: str | Path) -> tuple[Segment, ...]:
    """Read the SPEAKER lines of an RTTM file (any file id) as Segments sorted by (start, end, speaker).

    RTTM fields: type, file, channel, onset, duration, <NA>, <NA>, speaker, ...; other line types and
    comments (';;') are skipped. Raises ValueError naming the line when a SPEAKER line is malformed."""
    out: list[Segment] = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith(";") or fields[0] != "SPEAKER":
            continue
        try:
            onset, duration, speaker = float(fields[3]), float(fields[4]), fields[7]
        except (IndexError, ValueError) as e:
            raise ValueError(f"{path}:{n}: malformed RTTM SPEAKER line") from e
        if duration < 0:
            raise ValueError(f"{path}:{n}: negative duration")
        out.append(Segment(onset, onset + duration, speaker))
    return tuple(sorted(out, key=lambda s: (s.start, s.end, s.speaker)))


def read_stm(path: str | Path) -> tuple[StmEntry, ...]:
    """Read an STM file (`file channel speaker start end [<label>] text...`) as (start, end, speaker, text)
    tuples in file order. Comment lines (';;') are skipped; an optional `<...>` label field is dropped."""
    out: list[StmEntry] = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith(";;"):
            continue
        fields = line.split(maxsplit=5)
        if len(fields) < 5:
            raise ValueError(f"{path}:{n}: malformed STM line")
        try:
            start, end = float(fields[3]), float(fields[4])
        except ValueError as e:
            raise ValueError(f"{path}:{n}: malformed STM times") from e
        text = fields[5] if len(fields) > 5 else ""
        if text.startswith("<"):
            text = text.split(">", 1)[1].strip() if ">" in text else ""
        out.append((start, end, fields[2], text))
    return tuple(out)


def _annotation(segments: Iterable[Segment]):  # -> pyannote.core.Annotation
    from pyannote.core import Annotation
    from pyannote.core import Segment as PSegment

    ann = Annotation(uri="session")
    for i, s in enumerate(segments):
        if s.end > s.start:
            ann[PSegment(s.start, s.end), i] = s.speaker
    return ann


def diarization_error_rate(
    reference: Iterable[Segment],
    hypothesis: Iterable[Segment],
    collar: float = 0.0,
    skip_overlap: bool = False,
    uem: tuple[float, float] | None = None,
) -> dict[str, float]:
    """Diarization error rate of `hypothesis` against `reference` (pyannote.metrics DiarizationErrorRate,
    optimal one-to-one speaker mapping).

    `collar` is in seconds, as pyannote defines it: the total width of the no-score zone centred on every
    reference boundary (collar / 2 on each side; NIST md-eval's "0.25 s collar", +-0.25 s, is collar=0.5
    here). `skip_overlap` drops regions where reference speakers overlap. `uem` (start, end) limits
    scoring; None: the union of both extents.

    Returns {"der", "false_alarm", "missed_detection", "confusion", "total", "correct"}: `der` is a
    fraction (0.05 = 5%); the others are seconds, `total` being the scored reference speech.
    """
    import warnings

    from pyannote.core import Segment as PSegment
    from pyannote.core import Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    ref = _annotation(reference)
    hyp = _annotation(hypothesis)
    metric = DiarizationErrorRate(collar=collar, skip_overlap=skip_overlap)
    kwargs = {}
    if uem is not None:
        kwargs["uem"] = Timeline([PSegment(*uem)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "uem was approximated by the union of reference and hypothesis"
        detail = metric(ref, hyp, detailed=True, **kwargs)
    return {
        "der": float(detail["diarization error rate"]),
        "false_alarm": float(detail["false alarm"]),
        "missed_detection": float(detail["missed detection"]),
        "confusion": float(detail["confusion"]),
        "total": float(detail["total"]),
        "correct": float(detail["correct"]),
    }


_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_to_words(n: int) -> str:
    """English words for a non-negative integer below 10**12 ("21" -> "twenty one"); larger numbers are
    spelled digit by digit."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_to_words(rest))
    for size, name in ((10**9, "billion"), (10**6, "million"), (1000, "thousand")):
        if n >= size:
            if n >= 1000 * size and size == 10**9:
                break
            rest = n % size
            return number_to_words(n // size) + " " + name + ("" if rest == 0 else " " + number_to_words(rest))
    return " ".join(_ONES[int(d)] for d in str(n))


def normalize_text(text: str) -> str:
    """The WER normalisation: Unicode NFKC; lowercase; "%" -> " percent", "&" -> " and "; digit runs written
    as English words ("1,200" -> "one thousand two hundred", "3.5" -> "three point five"); apostrophes
    inside words kept ("don't"), every other punctuation mark or symbol replaced by a space; whitespace
    collapsed. Contractions, spelling variants and fillers are NOT normalised."""
    t = unicodedata.normalize("NFKC", text).lower()
    t = t.replace("\u2019", "'").replace("%", " percent ").replace("&", " and ")
    t = re.sub(r"(?<=\d),(?=\d{3}\b)", "", t)  # thousands separators

    def _num(m: re.Match[str]) -> str:
        whole, _, frac = m.group(0).partition(".")
        words = number_to_words(int(whole))
        if frac:
            words += " point " + " ".join(_ONES[int(d)] for d in frac)
        return f" {words} "

    t = re.sub(r"\d+(?:\.\d+)?", _num, t)
    t = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", t)  # quotes, not apostrophes inside words
    t = re.sub(r"[^\w\s']|_", " ", t)
    return " ".join(t.split())


def word_error_rate(reference_text: str, hypothesis_text: str) -> float:
    """Word error rate (substitutions + deletions + insertions) / reference words, computed by jiwer after
    `normalize_text` on both sides. An empty reference gives 0.0 for an empty hypothesis, else 1.0.
    Needs jiwer (the `test` extra): without it, ModuleNotFoundError saying how to install it."""
    try:
        import jiwer
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            "word_error_rate needs jiwer, an evaluation/test dependency that the runtime does not install: "
            "pip install -e '.[test]'", name="jiwer") from e

    ref = normalize_text(reference_text)
    hyp = normalize_text(hypothesis_text)
    if not ref:
        return 0.0 if not hyp else 1.0
    if not hyp:
        return 1.0
    return float(jiwer.wer(ref, hyp))


def word_error_counts(reference_text: str, hypothesis_text: str) -> tuple[int, int]:
    """(errors, reference words) after `normalize_text`: substitutions + deletions + insertions, for pooling
    WER over sessions (sum of errors / sum of reference words). Needs jiwer, like `word_error_rate`."""
    ref = normalize_text(reference_text).split()
    hyp = normalize_text(hypothesis_text).split()
    if not ref or not hyp:
        return len(ref) + len(hyp), len(ref)
    import jiwer

    out = jiwer.process_words(" ".join(ref), " ".join(hyp))
    return int(out.substitutions + out.deletions + out.insertions), len(ref)


def words_by_reference_speaker(reference: Iterable[StmEntry], words: Iterable[Word]) -> dict[str, tuple[Word, ...]]:
    """Give every recognised word to the reference speaker whose utterance it overlaps most (by time), or,
    overlapping none, to the speaker of the nearest utterance; the pipeline's own speaker labels play no
    part. Per-speaker WER on these words measures what the recogniser heard of each voice (a word it
    dropped is a deletion of that speaker, one it invented in a speaker's utterance an insertion there).
    Every reference speaker gets an entry (possibly empty); words are in time order."""
    ref = sorted(reference, key=lambda r: (r[0], r[1]))
    out: dict[str, list[Word]] = {r[2]: [] for r in ref}
    if not ref:
        return {}
    for w in sorted(words, key=lambda w: (w.start, w.end)):
        best, best_key = None, None
        for start, end, speaker, _ in ref:
            ov = min(end, w.end) - max(start, w.start)
            gap = max(start - w.end, w.start - end, 0.0)
            key = (0, -ov) if ov > 0 else (1, gap)
            if best_key is None or key < best_key:
                best, best_key = speaker, key
        out[best].append(w)  # type: ignore[index]
    return {k: tuple(v) for k, v in out.items()}


def speaker_word_error_counts(reference: Iterable[StmEntry], words: Iterable[Word]) -> dict[str, tuple[int, int]]:
    """{reference speaker: (errors, reference words)}: each speaker's utterances in time order against the
    recognised words `words_by_reference_speaker` gives them."""
    ref = sorted(reference, key=lambda r: (r[0], r[1]))
    heard = words_by_reference_speaker(ref, words)
    return {spk: word_error_counts(" ".join(r[3] for r in ref if r[2] == spk), " ".join(w.text for w in ws))
            for spk, ws in heard.items()}
