from hypothesis import given, strategies as st

from pipeline.config import RolesConfig
from pipeline.records import Segment, Word
from pipeline.measures import is_question_or_invitation as is_question
from pipeline.roles import assign_roles
from pipeline.turns import attribute_words, build_turns


def W(s, e, t, spk=None):
    return Word(s, e, t, 0.9, spk)


def test_words_take_the_most_overlapping_speaker_and_gaps_the_nearest():
    excl = (Segment(0.0, 2.0, "A"), Segment(2.5, 5.0, "B"))
    words = (W(0.1, 0.5, "hi"), W(1.8, 2.2, "there"), W(2.2, 2.45, "gap"), W(2.6, 3.0, "yes"), W(5.2, 5.5, "late"))
    out = attribute_words(words, excl)
    assert [w.speaker for w in out] == ["A", "A", "B", "B", "B"]


def test_turns_are_maximal_runs_in_time_order():
    words = (W(0, 1, "How", "A"), W(1, 2, "are", "A"), W(2, 3, "you?", "A"), W(3.5, 4, "Fine.", "B"),
             W(4.5, 5, "Good.", "A"))
    turns = build_turns(words, {"A": "therapist", "B": "client"})
    assert [(t.speaker, t.text, t.role, t.word_count) for t in turns] == [
        ("A", "How are you?", "therapist", 3), ("B", "Fine.", "client", 1), ("A", "Good.", "therapist", 1)]
    assert [t.index for t in turns] == [0, 1, 2]


@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0.01, 2), st.sampled_from("AB")), min_size=1, max_size=40))
def test_every_word_gets_a_speaker_and_turn_word_counts_add_up(items):
    words = tuple(W(s, s + d, "w") for s, d, _ in items)
    segs = tuple(Segment(float(i * 10), float(i * 10 + 9), "AB"[i % 2]) for i in range(11))
    out = attribute_words(words, segs)
    assert all(w.speaker in ("A", "B") for w in out)
    turns = build_turns(out, {})
    assert sum(t.word_count for t in turns) == len(words)
    assert all(a.speaker != b.speaker for a, b in zip(turns, turns[1:]))


def test_question_detection_with_and_without_punctuation():
    assert is_question("How did the homework go?")
    assert is_question("so how did the week go")
    assert is_question("I see. What came up for you")
    assert not is_question("It was fine.")
    assert not is_question("")


def _turns(spec):
    words, t = [], 0.0
    for spk, text in spec:
        for tok in text.split():
            words.append(W(t, t + 0.3, tok, spk))
            t += 0.35
        t += 0.5
    return build_turns(tuple(words), {})


def test_roles_inferred_from_questions_and_opening():
    turns = _turns([("S2", "Hello, how have you been this week?"), ("S1", "Okay I guess."),
                    ("S2", "What happened with the homework?"), ("S1", "I did not do it."),
                    ("S2", "Can you tell me more about that?"), ("S1", "I was too tired.")])
    a = assign_roles(turns, ("S1", "S2"), RolesConfig())
    assert a.roles == {"S1": "client", "S2": "therapist"} and a.source == "inferred"
    assert 0.5 < a.confidence["S2"] <= 1.0


def test_manifest_hint_wins_and_extra_speakers_are_clients():
    turns = _turns([("S1", "hi"), ("S2", "hello?"), ("S3", "yes")])
    a = assign_roles(turns, ("S1", "S2", "S3"), RolesConfig(), therapist_hint="S3")
    assert a.roles == {"S1": "client", "S2": "client", "S3": "therapist"} and a.source == "manifest"
    import pytest
    with pytest.raises(ValueError, match="not one of the speakers"):
        assign_roles(turns, ("S1", "S2"), RolesConfig(), therapist_hint="S9")
