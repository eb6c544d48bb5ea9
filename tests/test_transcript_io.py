import pytest

from pipeline.errors import UsageError
from pipeline.transcript_io import parse_time, read_transcript


def test_csv_with_hms_times_empty_end_and_roles(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("start,end,speaker,text,role\n"
                 "00:00:01.5,,Dr K,How did the week go?,therapist\n"
                 "0:00:04,00:00:05,Pat,Fine.,client\n"
                 "6,8,Pat,Really fine.,client\n"
                 "9,10,Dr K,Okay.,therapist\n")
    t = read_transcript(p)
    assert [(x.speaker, x.text) for x in t.turns] == [("Dr K", "How did the week go?"), ("Pat", "Fine. Really fine."),
                                                    ("Dr K", "Okay.")]
    assert t.turns[0].start == 1.5 and t.turns[0].end == 4.0  # empty end -> next start
    assert t.roles == {"Dr K": "therapist", "Pat": "client"}


def test_vtt_with_voices(tmp_path):
    p = tmp_path / "t.vtt"
    p.write_text("WEBVTT\n\n00:00:00.000 --> 00:00:02.000\n<v Therapist>Hello there.</v>\n\n"
                 "00:00:02.500 --> 00:00:03.000\n<v Client>Hi.\n")
    t = read_transcript(p)
    assert [(x.speaker, x.text, x.start) for x in t.turns] == [("Therapist", "Hello there.", 0.0), ("Client", "Hi.", 2.5)]


def test_bad_transcripts_give_clear_errors(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("start,speaker,text\n1,A,hi\n")
    with pytest.raises(UsageError, match="end"):
        read_transcript(p)
    v = tmp_path / "t.vtt"
    v.write_text("WEBVTT\n\n00:00:00.000 --> 00:00:02.000\nno voice here\n")
    with pytest.raises(UsageError, match="voice"):
        read_transcript(v)
    with pytest.raises(UsageError, match="unsupported"):
        (tmp_path / "t.docx").write_text("x")
        read_transcript(tmp_path / "t.docx")


def test_parse_time():
    assert parse_time("1:02:03.5", "x") == 3723.5
    assert parse_time("02:03,25", "x") == 123.25
    with pytest.raises(UsageError):
        parse_time("soon", "x")
