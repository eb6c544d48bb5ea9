"""pipeline.scoring on hand-made segments (exact known DER), the real pyannote RTTM/STM files, and WER."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.records import Segment
from pipeline.scoring import (
    diarization_error_rate,
    normalize_text,
    number_to_words,
    read_rttm,
    read_stm,
    word_error_rate,
)

S = Segment


def test_perfect_hypothesis_with_other_labels_is_zero():
    ref = (S(0, 10, "a"), S(10, 20, "b"), S(25, 30, "a"))
    hyp = (S(0, 10, "S2"), S(10, 20, "S1"), S(25, 30, "S2"))
    r = diarization_error_rate(ref, hyp)
    assert r["der"] == 0.0
    assert r["total"] == pytest.approx(25.0)


def test_confusion_exact():
    # 2 s of b's speech are given to a's hypothesis speaker: 2 / 20
    r = diarization_error_rate((S(0, 10, "a"), S(10, 20, "b")), (S(0, 12, "x"), S(12, 20, "y")))
    assert r["confusion"] == pytest.approx(2.0)
    assert r["false_alarm"] == pytest.approx(0.0)
    assert r["missed_detection"] == pytest.approx(0.0)
    assert r["der"] == pytest.approx(0.1)


def test_false_alarm_and_miss_exact():
    # reference speech 0-10; hypothesis 2-12: 2 s missed, 2 s false alarm -> 4 / 10
    r = diarization_error_rate((S(0, 10, "a"),), (S(2, 12, "x"),))
    assert r["missed_detection"] == pytest.approx(2.0)
    assert r["false_alarm"] == pytest.approx(2.0)
    assert r["der"] == pytest.approx(0.4)


def test_empty_hypothesis_is_all_missed():
    r = diarization_error_rate((S(0, 4, "a"), S(5, 6, "b")), ())
    assert r["der"] == pytest.approx(1.0)
    assert r["missed_detection"] == pytest.approx(5.0)


def test_overlap_counts_both_speakers():
    # a 0-10, b 5-10 (overlap); hypothesis has only a: b's 5 s are missed -> 5 / 15
    r = diarization_error_rate((S(0, 10, "a"), S(5, 10, "b")), (S(0, 10, "x"),))
    assert r["der"] == pytest.approx(5 / 15)
    # skip_overlap removes the 5-10 region from scoring: remaining 0-5 is correct
    r2 = diarization_error_rate((S(0, 10, "a"), S(5, 10, "b")), (S(0, 10, "x"),), skip_overlap=True)
    assert r2["der"] == pytest.approx(0.0)
    assert r2["total"] == pytest.approx(5.0)


def test_collar_is_total_width_as_in_pyannote():
    ref = (S(0, 10, "a"), S(10, 20, "b"))
    hyp = (S(0, 10.1, "x"), S(10.1, 20, "y"))  # boundary 0.1 s late
    assert diarization_error_rate(ref, hyp)["der"] == pytest.approx(0.1 / 20)
    # collar 0.25 = +-0.125 s around each reference boundary: the 0.1 s error is forgiven
    assert diarization_error_rate(ref, hyp, collar=0.25)["der"] == pytest.approx(0.0)
    # collar 0.1 = +-0.05 s: half of the error remains, over less scored time
    r = diarization_error_rate(ref, hyp, collar=0.1)
    assert r["confusion"] == pytest.approx(0.05)


def test_uem_limits_scoring():
    r = diarization_error_rate((S(0, 10, "a"),), (S(0, 5, "x"),), uem=(0.0, 5.0))
    assert r["der"] == 0.0


segments = st.lists(
    st.tuples(st.floats(0, 100), st.floats(0.1, 10), st.sampled_from("abc")), min_size=1, max_size=8
).map(lambda xs: tuple(S(round(s, 3), round(s + d, 3), k) for s, d, k in xs))


@settings(max_examples=30, deadline=None)
@given(segments)
def test_der_of_reference_against_itself_is_zero(ref):
    renamed = tuple(S(s.start, s.end, "hyp_" + s.speaker) for s in ref)
    assert diarization_error_rate(ref, renamed)["der"] == pytest.approx(0.0, abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(segments, segments)
def test_der_components_add_up(ref, hyp):
    r = diarization_error_rate(ref, hyp)
    assert r["der"] >= 0.0
    errors = r["false_alarm"] + r["missed_detection"] + r["confusion"]
    assert r["der"] == pytest.approx(errors / r["total"])


def test_read_rttm_pyannote_sample(pyannote_sample):
    segs = read_rttm(pyannote_sample["rttm"])
    assert len(segs) == 10
    assert {s.speaker for s in segs} == {"speaker90", "speaker91"}
    assert segs[0] == S(6.69, pytest.approx(7.12), "speaker90")
    assert all(a.start <= b.start for a, b in zip(segs, segs[1:]))


def test_read_rttm_skips_comments_and_rejects_malformed(tmp_path):
    p = tmp_path / "x.rttm"
    p.write_text(";; comment\nSPKR-INFO x 1 <NA> <NA> <NA> unknown a <NA>\n"
                 "SPEAKER x 1 1.5 2.0 <NA> <NA> a <NA> <NA>\nSPEAKER x 1 0.5 0.5 <NA> <NA> b <NA> <NA>\n")
    assert read_rttm(p) == (S(0.5, 1.0, "b"), S(1.5, 3.5, "a"))
    p.write_text("SPEAKER x 1 oops 2.0 <NA> <NA> a <NA> <NA>\n")
    with pytest.raises(ValueError, match=":1:"):
        read_rttm(p)


def test_read_stm_pyannote_sample(pyannote_sample):
    entries = read_stm(pyannote_sample["stm"])
    assert entries[0] == (6.68, 7.16, "Diane", "Hello?")
    assert entries[1][2] == "Sheila"
    assert all(e >= s for s, e, _, _ in entries)


def test_read_stm_drops_label_field(tmp_path):
    p = tmp_path / "x.stm"
    p.write_text(";; c\nf 1 spk 1.0 2.0 <o,f0,male> hello there\nf 1 spk 2.0 3.0\n")
    assert read_stm(p) == ((1.0, 2.0, "spk", "hello there"), (2.0, 3.0, "spk", ""))


@pytest.mark.parametrize(
    "n, words",
    [(0, "zero"), (7, "seven"), (13, "thirteen"), (40, "forty"), (21, "twenty one"),
     (105, "one hundred five"), (1200, "one thousand two hundred"), (2_000_001, "two million one")],
)
def test_number_to_words(n, words):
    assert number_to_words(n) == words


def test_normalize_text():
    assert normalize_text("Hello, World!  It's 21 -- OK?") == "hello world it's twenty one ok"
    assert normalize_text("3.5% of 1,200") == "three point five percent of one thousand two hundred"
    assert normalize_text("\u201cQuoted\u201d \u2018word\u2019") == "quoted word"


def test_word_error_rate():
    assert word_error_rate("Hello, world! I'm 21.", "hello world i'm twenty one") == 0.0
    assert word_error_rate("the cat sat down", "the cat sat") == pytest.approx(0.25)  # one deletion
    assert word_error_rate("the cat sat down", "a cat sat down") == pytest.approx(0.25)  # one substitution
    assert word_error_rate("a b", "a b c d") == pytest.approx(1.0)  # two insertions over two words
    assert word_error_rate("", "") == 0.0
    assert word_error_rate("", "noise") == 1.0
    assert word_error_rate("words here", "") == 1.0


def test_word_error_rate_without_jiwer_says_how_to_install(monkeypatch):
    """jiwer is a test extra, not a runtime dependency: importing pipeline.scoring never needs it, and
    word_error_rate without it says which extra to install."""
    monkeypatch.setitem(sys.modules, "jiwer", None)  # `import jiwer` now raises ModuleNotFoundError
    with pytest.raises(ModuleNotFoundError, match=r"pip install -e '\.\[test\]'") as info:
        word_error_rate("the cat", "the cat")
    assert info.value.name == "jiwer"


def test_scoring_imports_without_jiwer():
    code = "import sys; sys.modules['jiwer'] = None; import pipeline.scoring; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
