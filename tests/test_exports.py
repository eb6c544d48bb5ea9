"""Exports, review page, batch index, corpus tables and the ELAN round trip, on the hand-made fixture
session (tests/fixtures/session_small.json) and, when present, the demo session (tests/fixtures/demo_session.json).

tests/fixtures/demo_session.json is a frozen snapshot of `rupture demo` (pipeline/demo/demo.flac, whisper-base,
pyannote, the bundled tagger head) taken 2026-11-23: the golden files test the exports of that fixed record,
so model or threshold changes do not touch them.

Golden files live in tests/golden/<session_id>/; regenerate them with
    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_exports.py
and review the diff before committing.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import html
import json
import os
import re
import stat
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings, strategies as st

from pipeline.config import config_from_dict
from pipeline.errors import ConfigError, UsageError
from pipeline.exports import (
    FILE_NAMES,
    FORMATS,
    SessionSummary,
    import_eaf,
    summary_from_record,
    write_corpus_tables,
    write_exports,
    write_index,
)
from pipeline.exports._formats import eaf_text, transcript_text, vtt_text
from pipeline.exports._html import render_report
from pipeline.records import Event, Metrics, ModelInfo, Provenance, SessionRecord, Speaker, Turn
from pipeline.serialize import (event_to_dict, metrics_from_dict, provenance_from_dict, read_session_json,
                                write_session_json)

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
GOLDEN = ROOT / "tests" / "golden"
XSD = Path(os.environ.get("RUPTURE_SHARED", ROOT.parent / "shared")) / "schemas" / "EAFv3.0.xsd"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"

SESSIONS = [p for p in (FIXTURES / "session_small.json", FIXTURES / "demo_session.json") if p.exists()]
ALL_FILES = [name for fmt in FORMATS for name in FILE_NAMES[fmt]]


def _xsd() -> Path:
    for cand in (XSD, ROOT / "shared" / "schemas" / "EAFv3.0.xsd", Path("/work/shared/schemas/EAFv3.0.xsd")):
        if cand.exists():
            return cand
    pytest.skip("EAFv3.0.xsd not found (shared/schemas)")


@pytest.fixture(scope="module")
def small() -> SessionRecord:
    return read_session_json(FIXTURES / "session_small.json")


def _export_all(record: SessionRecord, root: Path) -> tuple[Path, Path]:
    audio = root / "audio" / "demo small.wav"
    audio.parent.mkdir(parents=True, exist_ok=True)
    audio.write_bytes(b"")  # only its path matters here
    session_dir = root / "out" / record.session_id
    write_exports(record, session_dir, audio, FORMATS)
    return session_dir, audio


def _normalised(text: str, root: Path) -> str:
    """Replace the machine-specific absolute media URL (EAF MEDIA_URL) with a placeholder."""
    return text.replace(root.resolve().as_uri(), "file:///TMP")


# ------------------------------------------------------------------------------------------ golden files

@pytest.mark.parametrize("session_json", SESSIONS, ids=lambda p: p.stem)
def test_golden_files(session_json: Path, tmp_path: Path) -> None:
    record = read_session_json(session_json)
    session_dir, _ = _export_all(record, tmp_path)
    outputs = {name: _normalised((session_dir / name).read_text(encoding="utf-8"), tmp_path) for name in ALL_FILES}
    outputs["index.html"] = _normalised(
        write_index(tmp_path / "out", [summary_from_record(record)]).read_text(encoding="utf-8"), tmp_path)
    gdir = GOLDEN / record.session_id
    if UPDATE:
        gdir.mkdir(parents=True, exist_ok=True)
        for name, text in outputs.items():
            (gdir / name).write_text(text, encoding="utf-8")
    missing = [n for n in outputs if not (gdir / n).exists()]
    assert not missing, f"golden files missing for {missing}: run with UPDATE_GOLDEN=1"
    for name, text in outputs.items():
        expected = (gdir / name).read_text(encoding="utf-8")
        assert text == expected, f"{name} differs from {gdir / name} (UPDATE_GOLDEN=1 to accept)"


def test_exports_are_deterministic(small: SessionRecord, tmp_path: Path) -> None:
    a, _ = _export_all(small, tmp_path / "a")
    b, _ = _export_all(small, tmp_path / "b")
    for name in ALL_FILES:
        ta = _normalised((a / name).read_text(encoding="utf-8"), tmp_path / "a")
        tb = _normalised((b / name).read_text(encoding="utf-8"), tmp_path / "b")
        assert ta == tb, name


# ------------------------------------------------------------------------------------------ write_exports

def test_write_exports_files_modes_and_selection(small: SessionRecord, tmp_path: Path) -> None:
    session_dir, _ = _export_all(small, tmp_path)
    for name in ALL_FILES:
        p = session_dir / name
        assert p.exists() and p.stat().st_size > 0, name
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, name
    assert not [p for p in session_dir.iterdir() if p.name.endswith(".tmp")]
    only = write_exports(small, tmp_path / "only", None, ("csv", "vtt"))
    assert [p.name for p in only] == ["turns.csv", "events.csv", "session.vtt"]
    assert sorted(p.name for p in (tmp_path / "only").iterdir()) == ["events.csv", "session.vtt", "turns.csv"]
    with pytest.raises(ConfigError, match="pdf"):
        write_exports(small, tmp_path / "bad", None, ("html", "pdf"))


def test_exports_config_rejects_unknown_format() -> None:
    assert config_from_dict({"exports": {"formats": ["eaf", "csv"]}}).exports.formats == ("eaf", "csv")
    with pytest.raises(ConfigError, match="docx"):
        config_from_dict({"exports": {"formats": ["eaf", "docx"]}})


# ------------------------------------------------------------------------------------------ ELAN

def test_eaf_validates_against_schema(small: SessionRecord, tmp_path: Path) -> None:
    xmlschema = pytest.importorskip("xmlschema", reason="pip install xmlschema (scripts/install_sysdeps.sh)")
    schema = xmlschema.XMLSchema(str(_xsd()))
    for session_json in SESSIONS:  # the fixture and, when present, the demo session
        session_dir, _ = _export_all(read_session_json(session_json), tmp_path / session_json.stem)
        schema.validate(str(session_dir / "session.eaf"))
    # also with overlapping events of one type (overflow tiers) and without linked media
    crowded = dataclasses.replace(small, events=small.events + (
        Event("interruption", "successful", 90.0, 95.0, "SPEAKER_01", "SPEAKER_00", 17, 0.5, "x"),
        Event("interruption", "unsuccessful", 91.0, 92.0, "SPEAKER_00", "SPEAKER_01", 16, 0.5, "y"),
    ))
    p = tmp_path / "crowded.eaf"
    p.write_text(eaf_text(crowded), encoding="utf-8")
    schema.validate(str(p))
    assert len(re.findall(r'TIER_ID="interruption \d"', p.read_text())) == 1  # an overflow tier was needed
    # the check can fail: a broken document does not validate
    bad = tmp_path / "bad.eaf"
    bad.write_text(p.read_text(encoding="utf-8").replace('LINGUISTIC_TYPE_REF="turn"', 'LINGUISTIC_TYPE="turn"'),
                   encoding="utf-8")
    assert not schema.is_valid(str(bad))


def test_eaf_structure(small: SessionRecord, tmp_path: Path) -> None:
    from pympi import Elan

    session_dir, audio = _export_all(small, tmp_path)
    eaf = Elan.Eaf(str(session_dir / "session.eaf"))
    tiers = set(eaf.get_tier_names())
    assert {"Therapist", "Client", "rupture", "repair", "interruption", "rupture notes"} <= tiers
    assert eaf.get_parameters_for_tier("Client")["PARTICIPANT"] == "SPEAKER_01"
    assert eaf.get_parameters_for_tier("rupture")["LINGUISTIC_TYPE_REF"] == "rupture-code"
    assert eaf.linguistic_types["rupture-code"]["CONTROLLED_VOCABULARY_REF"] == "rupture-codes"
    cv_values = {v[0][0] for v, _ in eaf.get_cv_entries("rupture-codes").values()}
    assert "withdrawal.minimal_response" in cv_values and len(cv_values) == 15
    turns = sorted(eaf.get_annotation_data_for_tier("Client"))
    client_turns = [t for t in small.turns if t.speaker == "SPEAKER_01"]
    assert len(turns) == len(client_turns)
    assert turns[0] == (round(client_turns[0].start * 1000), round(client_turns[0].end * 1000), client_turns[0].text)
    ruptures = sorted(eaf.get_annotation_data_for_tier("rupture"))
    assert [r[2] for r in ruptures] == [e.subtype for e in small.events if e.type == "rupture"]
    notes = eaf.get_ref_annotation_data_for_tier("rupture notes")
    assert any("confidence 0.81" in n[2] and "unresolved" in n[2] for n in notes)
    (media,) = eaf.get_linked_files()
    assert media["RELATIVE_MEDIA_URL"] == "../../audio/demo small.wav"
    assert media["MEDIA_URL"] == audio.resolve().as_uri()
    assert media["MIME_TYPE"] == "audio/x-wav"


# ------------------------------------------------------------------------------------------ other formats

def test_rttm_is_the_overlapping_track(small: SessionRecord, tmp_path: Path) -> None:
    session_dir, _ = _export_all(small, tmp_path)
    rows = [ln.split() for ln in (session_dir / "session.rttm").read_text().splitlines()]
    assert len(rows) == len(small.segments)
    assert all(r[0] == "SPEAKER" and r[1] == small.session_id and len(r) == 10 for r in rows)
    spans = sorted((float(r[3]), float(r[3]) + float(r[4]), r[7]) for r in rows)
    want = sorted((s.start, s.end, s.speaker) for s in small.segments)
    for (a0, a1, sa), (b0, b1, sb) in zip(spans, want):
        assert sa == sb and a0 == pytest.approx(b0, abs=1e-3) and a1 == pytest.approx(b1, abs=1e-3)
    # overlapping speech survives (the track is not made exclusive)
    assert any(spans[i + 1][0] < spans[i][1] for i in range(len(spans) - 1))


def test_vtt_voices_and_text_round_trip(small: SessionRecord, tmp_path: Path) -> None:
    import webvtt

    session_dir, _ = _export_all(small, tmp_path)
    vtt = webvtt.from_string((session_dir / "session.vtt").read_text(encoding="utf-8"))
    assert len(vtt.captions) == len(small.turns)
    names = {"SPEAKER_00": "Therapist", "SPEAKER_01": "Client"}
    for cap, turn in zip(vtt.captions, small.turns):
        assert cap.voice == names[turn.speaker]
        assert html.unescape(cap.text) == turn.text
        assert cap.start_in_seconds == int(turn.start)
    assert "<b>" not in (session_dir / "session.vtt").read_text(encoding="utf-8")


def test_textgrid_one_tier_per_speaker(small: SessionRecord, tmp_path: Path) -> None:
    from praatio import textgrid

    session_dir, _ = _export_all(small, tmp_path)
    tg = textgrid.openTextgrid(str(session_dir / "session.TextGrid"), includeEmptyIntervals=False)
    assert list(tg.tierNames) == ["Therapist", "Client"]
    for name, spk in (("Therapist", "SPEAKER_00"), ("Client", "SPEAKER_01")):
        entries = tg.getTier(name).entries
        turns = [t for t in small.turns if t.speaker == spk]
        assert [e.label for e in entries] == [t.text for t in turns]
        assert [round(e.start, 3) for e in entries] == [round(t.start, 3) for t in turns]
    assert tg.maxTimestamp == pytest.approx(small.duration_s)


def test_csv_tables(small: SessionRecord, tmp_path: Path) -> None:
    session_dir, _ = _export_all(small, tmp_path)
    turns = pd.read_csv(session_dir / "turns.csv")
    events = pd.read_csv(session_dir / "events.csv")
    assert len(turns) == len(small.turns) and list(turns["text"]) == [t.text for t in small.turns]
    assert list(turns["role"].unique()) == ["therapist", "client"]
    assert len(events) == len(small.events)
    rup = events[events["type"] == "rupture"]
    assert set(rup["subtype_label"]) >= {"withdrawal: minimal response"}
    assert rup["resolved"].tolist() == [e.resolved for e in small.events if e.type == "rupture"]
    assert (events["coder"] == "model").all()
    assert json.loads(events.loc[events["subtype"] == "withdrawal.minimal_response", "details"].iloc[0]) == \
        {"cues": {"latency_s": 1.4, "word_count": 1}}


def test_plain_transcript_format(small: SessionRecord) -> None:
    text = transcript_text(small)
    paras = text.rstrip("\n").split("\n\n")
    assert len(paras) == len(small.turns)
    pat = re.compile(r"^\[(\d\d):(\d\d):(\d\d)\] (Therapist|Client): (.+)$")
    for p, t in zip(paras, small.turns):
        m = pat.match(p)
        assert m, p[:30]
        secs = int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3])
        assert secs == int(t.start)  # whole seconds, rounded down: never after the turn starts
        assert m[5] == t.text


# ------------------------------------------------------------------------------------------ review page

def _page(record: SessionRecord, audio_rel: str | None = "../audio/a b.wav") -> str:
    return render_report(record, audio_rel)


def test_report_is_self_contained_and_offline(small: SessionRecord) -> None:
    page = _page(small)
    assert not re.search(r"(?i)(https?:|ftp:|wss?:)//", page)
    assert not re.search(r"(?i)\b(src|href)\s*=\s*[\"']?\s*//", page)
    assert not re.search(r"(?i)<(link|iframe|img|object|embed|base)\b", page)
    assert not re.search(r"(?i)<script[^>]*\bsrc=", page)
    assert "@import" not in page and "url(" not in page
    # the audio is linked by an escaped relative path, never embedded
    assert re.findall(r'<audio id="audio"[^>]*src="([^"]+)"', page) == ["../audio/a%20b.wav"]
    assert "data:" not in page and "base64" not in page
    no_audio = _page(small, None)
    assert "src=" not in re.search(r"<audio[^>]*>", no_audio)[0] and "No recording linked" in no_audio


def test_report_csp_hashes_match_inline_code(small: SessionRecord) -> None:
    page = _page(small)
    csp = html.unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)[1])
    assert "default-src 'none'" in csp and "connect-src 'none'" in csp
    js = re.search(r"<script>(.*?)</script>", page, re.S)[1]
    css = re.search(r"<style>(.*?)</style>", page, re.S)[1]
    for code, directive in ((js, "script-src"), (css, "style-src")):
        h = base64.b64encode(hashlib.sha256(code.encode()).digest()).decode()
        assert f"{directive} 'sha256-{h}'" in csp


def test_report_escapes_transcript_text(small: SessionRecord) -> None:
    page = _page(small)
    assert "<b>URGENT</b>" not in page and "&lt;b&gt;URGENT&lt;/b&gt; &amp; it said &lt;/script&gt;" in page
    assert page.count("</script>") == 2  # the data block and the code block, nothing from the text
    data_raw = re.search(r'<script type="application/json" id="session-data">(.*?)</script>', page, re.S)[1]
    assert "</" not in data_raw and "<" not in data_raw
    data = json.loads(data_raw)
    assert data["session_id"] == small.session_id and len(data["turns"]) == len(small.turns)


def test_report_content(small: SessionRecord) -> None:
    page = _page(small)
    assert "Ruptures</dt><dd>5 (2 resolved, 3 unresolved)</dd>" in page
    assert "Repairs</dt><dd>3</dd>" in page
    assert "client→therapist 1, therapist→client 1" in page
    assert "Therapist talk share</dt><dd>53%</dd>" in page
    assert "whisper-base ct2-int8" in page
    flags = re.findall(r'<li class="flag t-(\w+)" id="flag-(\d+)"[^>]*data-conf="([\d.]+)" data-start="([\d.]+)"', page)
    assert len(flags) == sum(1 for e in small.events
                             if e.type in ("rupture", "repair", "interruption", "talk_time_imbalance"))
    assert [float(f[3]) for f in flags] == sorted(float(f[3]) for f in flags)
    assert "withdrawal: minimal response" in page and "invites discussion of the rupture" in page
    assert "surrounding turns" in page and '<span class="status resolved">resolved</span>' in page
    assert re.search(r'<button class="t jump" type="button" data-start="33.810">repair at 0:33</button>', page)
    assert len(re.findall(r'<li class="turn', page)) == len(small.turns)
    assert page.count('class="mark mark-') == len(flags)
    assert "<svg" in page and 'id="playhead"' in page
    # metrics of unknown shape are shown, flattened
    assert "talk_time_share.SPEAKER_00" in page


def test_report_survives_sparse_records() -> None:
    rec = SessionRecord(session_id="empty", duration_s=0.0, speakers=(), turns=(), words=None, events=(),
                        metrics=Metrics(), provenance=Provenance())
    page = render_report(rec, None)
    assert "No flagged moments." in page and "No transcript." in page and "Models: not recorded" in page
    odd = SessionRecord(session_id="odd", duration_s=10.0, speakers=(Speaker("A", "unknown", 2.0, 0.5, "inferred"),),
                        turns=(Turn(0, "A", "unknown", 1.0, 3.0, "hello", 1),), words=None,
                        events=(Event("talk_time_imbalance", None, 0, 10, None, None, None, 0.5, ""),),
                        metrics=Metrics(other={"nested": {"deep": [1, 2, 3], "x": None}}),
                        provenance=provenance_from_dict({"models": ["a", "b"]}))
    page = render_report(odd, None)
    assert "Therapist talk share</dt><dd>n/a</dd>" in page and "nested.deep" in page


_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)


@settings(max_examples=40, deadline=None)
@given(texts=st.lists(_text, min_size=1, max_size=6), sid=_text)
def test_any_text_is_escaped_everywhere(texts: list[str], sid: str) -> None:
    turns = tuple(Turn(i, "S0" if i % 2 else "S1", "therapist" if i % 2 else "client", i * 2.0, i * 2.0 + 1.5,
                       t, len(t.split())) for i, t in enumerate(texts))
    rec = SessionRecord(session_id=sid, duration_s=len(texts) * 2.0 + 1, words=None,
                        speakers=(Speaker("S0", "therapist", 1.0, 1, "x"), Speaker("S1", "client", 1.0, 1, "x")),
                        turns=turns, events=(Event("rupture", "withdrawal.denial", 0.0, 1.5, "S1", "S0", 0, 0.7,
                                                   texts[0], resolved=False),), metrics=Metrics(), provenance=Provenance())
    page = render_report(rec, None)
    assert page.count("</script") == 2 and page.count("<script") == 2
    assert len(re.findall(r"<li class=\"turn", page)) == len(texts)
    data = re.search(r'<script type="application/json" id="session-data">(.*?)</script>', page, re.S)[1]
    assert json.loads(data)["session_id"] == sid
    import webvtt
    vtt = webvtt.from_string(vtt_text(rec))
    assert [html.unescape(c.text) for c in vtt.captions] == [" ".join(t.split()) for t in texts]


# ------------------------------------------------------------------------------------------ index page

def test_index_page(small: SessionRecord, tmp_path: Path) -> None:
    rows = [
        summary_from_record(small),
        SessionSummary("s<02>", "failed", error="audio could not be decoded", stage="audio"),
        SessionSummary("s03", "refused", error="no recorded consent"),
        SessionSummary("s04", "skipped"),
    ]
    path = write_index(tmp_path, rows)
    assert path == tmp_path / "index.html" and stat.S_IMODE(path.stat().st_mode) == 0o600
    page = path.read_text(encoding="utf-8")
    assert '<a href="demo-small/report.html">demo-small</a>' in page
    assert "s&lt;02&gt;" in page and "<02>" not in page
    assert '<a href="s04/report.html">s04</a>' in page  # skipped: done in an earlier run, report exists
    assert 'href="s03' not in page and "s%3C02" not in page  # refused/failed: no report to link
    assert "audio: audio could not be decoded" in page
    assert "4 sessions: 1 ok, 1 failed, 1 refused, 1 skipped" in page
    assert not re.search(r"(?i)https?://", page) and "<script" not in page
    row = re.search(r'<tr id="row-demo-small".*?</tr>', page)[0]
    assert [c for c in re.findall(r'<td class="num">([^<]*)</td>', row)] == ["00:02:34", "5", "2", "3", "3", "2", "53%"]
    with pytest.raises(ValueError):
        SessionSummary("x", "crashed")


# ------------------------------------------------------------------------------------------ corpus tables

def _two_session_tree(small: SessionRecord, root: Path) -> None:
    write_session_json(small, root / small.session_id / "session.json")
    other = dataclasses.replace(small, session_id="second", events=tuple(e for e in small.events if e.type != "rupture"))
    write_session_json(other, root / "second" / "session.json")
    (root / "broken").mkdir()
    (root / "broken" / "session.json").write_text("{not json", encoding="utf-8")


def test_corpus_tables(small: SessionRecord, tmp_path: Path) -> None:
    _two_session_tree(small, tmp_path)
    paths = write_corpus_tables(tmp_path)
    assert [p.name for p in paths] == ["sessions.parquet", "turns.parquet", "events.parquet"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in paths)
    sessions = pd.read_parquet(tmp_path / "sessions.parquet")
    turns = pd.read_parquet(tmp_path / "turns.parquet")
    events = pq.read_table(tmp_path / "events.parquet").to_pandas()
    assert sessions["session_id"].tolist() == ["demo-small", "second"]
    assert sessions.set_index("session_id").loc["demo-small", "ruptures"] == 5
    assert sessions.set_index("session_id").loc["second", "ruptures"] == 0
    assert sessions.set_index("session_id").loc["demo-small", "ruptures_resolved"] == 2
    assert len(turns) == 2 * len(small.turns)
    assert len(events) == len(small.events) + sum(1 for e in small.events if e.type != "rupture")
    # a researcher's join: ruptures per session
    per = events[events["type"] == "rupture"].groupby("session_id").size()
    assert per.to_dict() == {"demo-small": 5}
    assert pq.read_schema(tmp_path / "events.parquet").field("turn_index").type == "int32"


def test_corpus_tables_other_readers(small: SessionRecord, tmp_path: Path) -> None:
    """DuckDB and polars (both in the `test` extra, so never skipped) read the tables a researcher opens."""
    import duckdb
    import polars as pl

    _two_session_tree(small, tmp_path)
    write_corpus_tables(tmp_path)
    n = duckdb.sql(f"SELECT count(*) FROM '{tmp_path}/events.parquet' WHERE type = 'rupture'").fetchall()[0][0]
    assert n == 5
    turns = pl.read_parquet(tmp_path / "turns.parquet")
    assert len(small.turns) > 0 and turns.height == 2 * len(small.turns)
    assert sorted(turns["session_id"].unique().to_list()) == ["demo-small", "second"]
    sessions = pl.read_parquet(tmp_path / "sessions.parquet")
    assert dict(zip(sessions["session_id"].to_list(), sessions["ruptures"].to_list())) == {"demo-small": 5, "second": 0}


# ------------------------------------------------------------------------------------------ EAF import

def test_import_eaf_unchanged_round_trip(small: SessionRecord, tmp_path: Path) -> None:
    session_dir, _ = _export_all(small, tmp_path)
    back = import_eaf(session_dir / "session.eaf", small)
    coded = ("rupture", "repair", "interruption")
    before = sorted((e.type, e.subtype, round(e.start, 3), round(e.end, 3), e.speaker, e.turn_index, e.resolved,
                     e.repair_turn_index) for e in small.events)
    after = sorted((e.type, e.subtype, round(e.start, 3), round(e.end, 3), e.speaker, e.turn_index, e.resolved,
                    e.repair_turn_index) for e in back.events)
    assert before == after
    for e in back.events:
        if e.type in coded:
            assert e.details.human_coded and e.details.coding.human_action == "confirmed"
        else:
            assert e.details.coding is None
    assert back.turns == small.turns and back.metrics == small.metrics


def test_import_eaf_corrections_flow_into_corpus(small: SessionRecord, tmp_path: Path) -> None:
    from pympi import Elan

    session_dir, _ = _export_all(small, tmp_path)
    eaf = Elan.Eaf(str(session_dir / "session.eaf"))
    # the coder deletes the 'self-criticism' rupture, relabels the complaint, and adds a repair after it
    crit = next(e for e in small.events if e.subtype == "withdrawal.self_criticism_hopelessness")
    eaf.remove_annotation("rupture", (round(crit.start * 1000) + round(crit.end * 1000)) // 2)
    comp = next(e for e in small.events if e.subtype == "confrontation.complaint_about_therapist")
    mid = (round(comp.start * 1000) + round(comp.end * 1000)) // 2
    s_ms, e_ms = round(comp.start * 1000), round(comp.end * 1000)
    eaf.remove_annotation("rupture", mid)
    eaf.add_annotation("rupture", s_ms, e_ms, "confrontation.defends_self")
    last = small.turns[-1]
    eaf.add_annotation("repair", round(last.start * 1000), round(last.end * 1000), "validates_defensive_posture")
    edited = tmp_path / "coded.eaf"
    Elan.to_eaf(str(edited), eaf)

    back = import_eaf(edited, small)
    rup = [e for e in back.events if e.type == "rupture"]
    assert len(rup) == 4
    assert not any(e.subtype == "withdrawal.self_criticism_hopelessness" for e in rup)
    relabelled = next(e for e in rup if e.subtype == "confrontation.defends_self")
    coding = relabelled.details.coding
    assert coding.human_action == "relabelled" and coding.model_subtype == "confrontation.complaint_about_therapist"
    assert relabelled.resolved is True and relabelled.repair_turn_index == last.index
    added = next(e for e in back.events if e.subtype == "validates_defensive_posture")
    assert added.details.coding.human_action == "added"
    assert added.speaker == "SPEAKER_00" and added.target_speaker == "SPEAKER_01" and added.turn_index == last.index
    assert added.confidence == 1.0
    # non-coded events are kept as they were
    assert [e for e in back.events if e.type == "long_pause"] == [e for e in small.events if e.type == "long_pause"]
    # imported again (the relabel now confirmed): the model's subtype is kept, where earlier imports wrote it
    again = next(e for e in import_eaf(edited, back).events if e.subtype == "confrontation.defends_self")
    assert again.details.coding.human_action == "confirmed"
    assert again.details.coding.model_subtype == "confrontation.complaint_about_therapist"
    assert list(event_to_dict(again))[-4:] == ["model_subtype", "coder", "human_action", "eaf_tier"]

    write_session_json(back, tmp_path / "corpus" / small.session_id / "session.json")
    write_corpus_tables(tmp_path / "corpus")
    events = pd.read_parquet(tmp_path / "corpus" / "events.parquet")
    coded = events[events["type"].isin(["rupture", "repair", "interruption"])]
    assert (coded["coder"] == "human").all()
    assert "confrontation.defends_self" in set(coded["subtype"])
    sessions = pd.read_parquet(tmp_path / "corpus" / "sessions.parquet")
    assert sessions["ruptures"].tolist() == [4] and sessions["human_coded_events"].tolist() == [len(coded)]
    # the review page marks them
    assert "human-coded" in render_report(back, None)


def test_import_eaf_errors(small: SessionRecord, tmp_path: Path) -> None:
    from pympi import Elan

    session_dir, _ = _export_all(small, tmp_path)
    with pytest.raises(UsageError, match="not found"):
        import_eaf(tmp_path / "nope.eaf", small)
    (tmp_path / "junk.eaf").write_text("not xml", encoding="utf-8")
    with pytest.raises(UsageError, match="cannot read"):
        import_eaf(tmp_path / "junk.eaf", small)
    with pytest.raises(UsageError, match="belongs to session"):
        import_eaf(session_dir / "session.eaf", dataclasses.replace(small, session_id="other"))
    eaf = Elan.Eaf(str(session_dir / "session.eaf"))
    eaf.add_annotation("repair", 150000, 151000, "made_up_code")
    Elan.to_eaf(str(tmp_path / "badcode.eaf"), eaf)
    with pytest.raises(UsageError, match="not in the repair vocabulary"):
        import_eaf(tmp_path / "badcode.eaf", small)
    plain = Elan.Eaf()
    plain.add_tier("words")
    Elan.to_eaf(str(tmp_path / "plain.eaf"), plain)
    with pytest.raises(UsageError, match="no rupture, repair or interruption tier"):
        import_eaf(tmp_path / "plain.eaf", small)


# ------------------------------------------------------------------------------------------ speed

def test_sixty_minute_session_exports_under_five_seconds(tmp_path: Path) -> None:
    import importlib.util
    import time

    spec = importlib.util.spec_from_file_location("bench_exports", ROOT / "scripts" / "bench_exports.py")
    bench = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(bench)
    rec = bench.synthetic_session(60.0)
    assert len(rec.turns) == 900 and len(rec.events) >= 150 and 8000 <= len(rec.words) <= 10000
    write_exports(rec, tmp_path / "warmup", None, ("rttm", "eaf", "vtt", "textgrid"))  # library imports
    t0 = time.perf_counter()
    paths = write_exports(rec, tmp_path / "out", tmp_path / "a.wav", FORMATS)
    elapsed = time.perf_counter() - t0
    assert len(paths) == len(ALL_FILES)
    assert elapsed < 5.0, f"all exports of a 60-minute session took {elapsed:.2f} s"


def test_therapist_share_prefers_the_measures_value(small: SessionRecord) -> None:
    from pipeline.exports._summary import therapist_talk_share

    assert therapist_talk_share(small) == pytest.approx(
        small.speakers[0].talk_time_s / sum(s.talk_time_s for s in small.speakers))
    with_metric = dataclasses.replace(small, metrics=dataclasses.replace(small.metrics, therapist_share=0.42))
    assert therapist_talk_share(with_metric) == 0.42
    assert "Therapist talk share</dt><dd>42%</dd>" in render_report(with_metric, None)
    odd = dataclasses.replace(small, metrics=metrics_from_dict({"therapist_share": "high"}))
    assert odd.metrics.therapist_share is None and odd.metrics.other == {"therapist_share": "high"}
    assert therapist_talk_share(odd) == therapist_talk_share(small)


def test_provenance_round_trip_keeps_order_and_unknown_keys() -> None:
    """session.json "provenance" <-> Provenance: typed fields, absent ones not written; keys this version does
    not know, and known ones whose value does not read as their type, kept as read in `other`; a file from
    elsewhere written back unchanged, key order included; a non-mapping reads as empty."""
    from pipeline.serialize import provenance_from_dict, provenance_to_dict

    raw = {"created": "2026-01-01T00:00:00+00:00", "models": {"asr": {"name": "w", "version": "1"}},
           "from_a_newer_writer": {"x": 1}, "outputs": ["report.html"], "input": {"sha256": "ab" * 32}}
    prov = provenance_from_dict(raw)
    assert prov.outputs == ("report.html",) and prov.input_sha256 == "ab" * 32 and prov.config_digest is None
    assert prov.models is None and prov.other == {"models": raw["models"], "from_a_newer_writer": {"x": 1}}
    out = provenance_to_dict(prov)
    assert list(out) == list(raw) and json.dumps(out) == json.dumps(raw)
    made = Provenance(models={"asr": ModelInfo("w", "1", "0" * 64)}, created="2026-01-01T00:00:00+00:00",
                      outputs=("report.html",), other={"from_a_newer_writer": {"x": 1}})
    assert list(provenance_to_dict(made)) == ["models", "created", "outputs", "from_a_newer_writer"]
    assert provenance_from_dict(provenance_to_dict(made)) == made
    assert provenance_from_dict(["not", "a", "mapping"]) == Provenance() and provenance_to_dict(Provenance()) == {}
    bad = provenance_from_dict({"input": {"sha256": 5}, "outputs": "report.html", "stage_seconds": {"asr": "1"}})
    assert bad.input_sha256 is None and bad.outputs is None and bad.stage_seconds is None and len(bad.other) == 3
