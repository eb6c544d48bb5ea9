"""Property-based fuzzing (hypothesis) of every input reader: manifest CSV, transcript CSV / WebVTT /
session.json (through the real per-session unit of `rupture tag`), ELAN .eaf import, and YAML config.

Cells and values are drawn from valid values, values that broke the pipeline before (inf, nan, 1e9, an
unquoted comma, a bad role, non-UTF-8 bytes, NUL, quotes, newlines) and free text holding a sentinel phrase.
For every input the reader either succeeds or raises the project's own error for a bad input, whose message
never holds the sentinel (errors name the row, column and kind, never a cell's content); a failed session
is a SessionError caused by a UsageError (an explained refusal, not an internal crash); and each example
finishes within hypothesis' deadline and a bounded amount of Python memory (the analysis of a parsed
transcript included: `end=1e9` once made it allocate until the kernel killed the process).
"""

from __future__ import annotations

import csv
import io
import json
import os
import tracemalloc
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config import load_config
from pipeline.errors import ConfigError, RuptureError, SessionError, UsageError

SENTINEL = "Quokka lantern relapse 9051"
# 60 derandomized examples per reader by default (seconds, the same every run); RUPTURE_FUZZ_EXAMPLES=1000
# for a longer, random hunt.
FUZZ = settings(max_examples=int(os.environ.get("RUPTURE_FUZZ_EXAMPLES", "60")), deadline=4000,
                derandomize="RUPTURE_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])
MAX_PEAK_BYTES = 64 * 1024 * 1024

free_text = st.one_of(
    st.just(SENTINEL), st.just(f"Well, {SENTINEL}"), st.just(f'"{SENTINEL}'), st.just(f"{SENTINEL}\n,x"),
    st.text(max_size=12).map(lambda t: f"{t}{SENTINEL}{t}"),
)
times = st.one_of(
    st.floats(min_value=0, max_value=600, allow_nan=False).map(lambda x: f"{x:.3f}"),
    st.sampled_from(["inf", "-inf", "nan", "1e9", "1e308", "-1", "00:01:02.5", "1:02:03,25", "", " ", "99:99",
                     "0x10", "1_0"]),
    free_text,
)
roles = st.sampled_from(["therapist", "client", "other", "unknown", "", "THERAPIST", SENTINEL])
speakers = st.one_of(st.sampled_from(["T", "C", "Dr K", ""]), free_text)
header_cols = st.sampled_from([
    ["start", "end", "speaker", "text"], ["start", "end", "speaker", "text", "role"],
    ["speaker", "text", "start", "end"], ["start", "speaker", "text"], ["start", "end", "speaker", "text", "text"],
])


def _csv_bytes(header: list[str], rows: list[list[str]], extra: bytes) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow(r)
    return buf.getvalue().encode("utf-8", "surrogatepass") + extra


@st.composite
def transcript_csv(draw) -> bytes:
    header = draw(header_cols)
    rows = []
    for _ in range(draw(st.integers(0, 6))):
        cell = {"start": times, "end": times, "speaker": speakers, "text": free_text, "role": roles}
        row = [draw(cell[c]) for c in header]
        if draw(st.booleans()):  # an unquoted comma, a missing or an extra cell
            row = draw(st.sampled_from([row[:-1], row + [draw(free_text)], [",".join(row)]]))
        rows.append(row)
    raw = draw(st.booleans())
    if raw:  # hand-written lines, quoting left to chance
        lines = [",".join(header)] + [",".join(r) for r in rows]
        return ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass") + draw(
            st.sampled_from([b"", b"\xff\xfe", b"\x00", b'"unterminated']))
    return _csv_bytes(header, rows, draw(st.sampled_from([b"", b"\xe9", b"\x00"])))


@st.composite
def transcript_vtt(draw) -> bytes:
    parts = [draw(st.sampled_from(["WEBVTT", "WEBVTT - x", "NOT VTT", ""]))]
    for _ in range(draw(st.integers(0, 5))):
        start, end = draw(st.sampled_from(["00:00:01.000", "1.5", "00:99:00.000", "1.2.3", "00:00:00"])), \
            draw(st.sampled_from(["00:00:02.000", "999999999", "00:00:01", "9" * 30]))
        voice = draw(st.sampled_from(["<v T>", "<v.loud C>", "<v  >", "", f"<v {SENTINEL}>"]))
        parts.append(f"\n{start} --> {end}\n{voice}{draw(free_text)}</v>")
    return "\n".join(parts).encode("utf-8", "surrogatepass")


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**12), st.floats(allow_nan=True),
                         free_text, st.sampled_from(["1", "therapist", "client"]))


@st.composite
def session_json(draw) -> bytes:
    def turn():
        t = {"index": draw(st.one_of(st.integers(0, 5), json_scalars)), "speaker": draw(st.one_of(speakers, json_scalars)),
             "role": draw(st.one_of(roles, json_scalars)), "start": draw(st.one_of(st.floats(0, 100), json_scalars)),
             "end": draw(st.one_of(st.floats(0, 100), json_scalars)), "text": draw(st.one_of(free_text, json_scalars))}
        for k in draw(st.lists(st.sampled_from(sorted(t)), max_size=2)):
            t.pop(k, None)
        return t

    d = {"schema_version": draw(st.sampled_from(["1", 1, "2", None])), "session_id": draw(st.one_of(free_text, json_scalars)),
         "duration_s": draw(st.one_of(st.floats(0, 100), json_scalars)),
         "speakers": [{"id": draw(st.one_of(speakers, json_scalars)), "role": draw(st.one_of(roles, json_scalars)),
                       "talk_time_s": draw(json_scalars)} for _ in range(draw(st.integers(0, 3)))],
         "turns": [turn() for _ in range(draw(st.integers(0, 4)))]}
    if draw(st.booleans()):
        d[draw(st.sampled_from(["turns", "speakers", "events", "segments", "words"]))] = draw(json_scalars)
    text = json.dumps(d, allow_nan=True)
    return draw(st.sampled_from([text, text[: len(text) // 2], text.replace("[", "{")])).encode()


def _no_sentinel(message: str) -> None:
    assert SENTINEL not in message, message
    for part in SENTINEL.split():
        assert part not in message, message


def _bounded(fn):
    tracemalloc.start()
    try:
        return fn()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < MAX_PEAK_BYTES, f"peak {peak / 2**20:.0f} MiB"


@pytest.fixture(scope="module")
def tag_processor():
    from pipeline.session import TranscriptProcessor

    return TranscriptProcessor(load_config(overrides={"tagging": {"enabled": False}}))


def _tag_once(proc, path: Path) -> None:
    """The per-session unit of `rupture tag`: a record, or a SessionError explained by a UsageError."""
    from pipeline.session import SessionRequest

    try:
        rec = _bounded(lambda: proc(SessionRequest(path.stem, path), created="2026-01-01T00:00:00+00:00"))
    except SessionError as e:
        _no_sentinel(str(e))
        assert isinstance(e.__cause__, RuptureError), f"an internal crash, not a clean error: {e!r}"
        return
    assert rec.turns and all(0 <= t.start <= t.end <= 48 * 3600 for t in rec.turns)


@FUZZ
@given(data=transcript_csv())
def test_fuzz_transcript_csv(tmp_path_factory, tag_processor, data):
    p = tmp_path_factory.mktemp("csv") / "t.csv"
    p.write_bytes(data)
    _tag_once(tag_processor, p)


@FUZZ
@given(data=transcript_vtt())
def test_fuzz_transcript_vtt(tmp_path_factory, tag_processor, data):
    p = tmp_path_factory.mktemp("vtt") / "t.vtt"
    p.write_bytes(data)
    _tag_once(tag_processor, p)


@FUZZ
@given(data=session_json())
def test_fuzz_transcript_session_json(tmp_path_factory, tag_processor, data):
    p = tmp_path_factory.mktemp("json") / "session.json"
    p.write_bytes(data)
    _tag_once(tag_processor, p)


manifest_cells = st.one_of(st.sampled_from(["true", "false", "yes", "", "1", "2", "ch0", "a.wav", "../x.wav"]),
                           free_text)


@FUZZ
@given(header=st.lists(st.sampled_from(["audio", "session_id", "consent_recording", "consent_analysis",
                                        "num_speakers", "therapist", "Consent_Analysis", "site", SENTINEL]),
                       min_size=1, max_size=7),
       rows=st.lists(st.lists(manifest_cells, min_size=0, max_size=8), max_size=4),
       tail=st.sampled_from([b"", b"\xff", b"\x00", b'"']))
def test_fuzz_manifest(tmp_path_factory, header, rows, tail):
    from pipeline.inputs import read_manifest

    p = tmp_path_factory.mktemp("manifest") / "m.csv"
    p.write_bytes(_csv_bytes(header, rows, tail))
    try:
        jobs, refusals = _bounded(lambda: read_manifest(p))
    except UsageError as e:
        _no_sentinel(str(e))
        return
    for j in jobs:  # consent is never guessed: a job needs both consent cells true
        assert j.consent_source == "manifest"
    for r in refusals:
        _no_sentinel(r.reason)


config_values = st.one_of(json_scalars, st.lists(json_scalars, max_size=3),
                          st.dictionaries(st.sampled_from(["enabled", SENTINEL, "x"]), json_scalars, max_size=2))
config_keys = st.sampled_from(["tagging", "measures", "audio", "runner", "exports", "models", SENTINEL])
field_keys = st.sampled_from(["threshold", "enabled", "window_s", "window_step_s", "backend", "formats",
                              "audit_log", "sample_rate", "min_duration_s", "store", SENTINEL])


@FUZZ
@given(doc=st.dictionaries(config_keys, st.one_of(st.dictionaries(field_keys, config_values, max_size=3),
                                                  config_values), max_size=3),
       garbage=st.sampled_from(["", f"\n  bad: [{SENTINEL}", f"\n\t{SENTINEL}: x", "\n!!python/object:os.system x",
                                f"\n{SENTINEL}", "\n*alias"]))
def test_fuzz_config(tmp_path_factory, doc, garbage):
    p = tmp_path_factory.mktemp("config") / "c.yaml"
    p.write_text(yaml.safe_dump(doc, allow_unicode=True) + garbage)
    try:
        _bounded(lambda: load_config(p))
    except ConfigError as e:
        _no_sentinel(str(e))


@pytest.fixture(scope="module")
def eaf_session(tmp_path_factory):
    """A real session (text mode, tagger off) and the EAF rupture exported for it."""
    from pipeline.cli import main

    d = tmp_path_factory.mktemp("eafsession")
    (d / "t.csv").write_text("start,end,speaker,text,role\n0,2,T,How was your week?,therapist\n"
                             "2.5,5,C,Fine I guess.,client\n6,9,T,Can we look at that?,therapist\n")
    (d / "cfg.yaml").write_text("tagging:\n  enabled: false\n")
    assert main(["tag", str(d / "t.csv"), "--out", str(d / "out"), "--config", str(d / "cfg.yaml")]) == 0
    return d / "out" / "t"


@FUZZ
@given(annotations=st.lists(st.tuples(st.sampled_from(["rupture", "repair", "interruption", "T", "notes"]),
                                      st.integers(-5000, 20000), st.integers(-5000, 20000),
                                      st.one_of(free_text, st.sampled_from(["withdrawal.denial", "redirects",
                                                                             "successful", ""]))),
                            max_size=5),
       mangle=st.sampled_from(["none", "truncate", "entity", "urn", "bytes"]))
def test_fuzz_eaf_import(tmp_path_factory, eaf_session, annotations, mangle):
    from pympi import Elan

    from pipeline.exports import import_eaf
    from pipeline.serialize import read_session_json

    rec = read_session_json(eaf_session / "session.json")
    d = tmp_path_factory.mktemp("eaf")
    eaf = Elan.Eaf(str(eaf_session / "session.eaf"))
    for tier, a, b, value in annotations:
        if tier in eaf.tiers and not eaf.get_parameters_for_tier(tier).get("PARENT_REF"):
            try:
                eaf.add_annotation(tier, min(a, b), max(a, b) + 1, value)
            except ValueError:
                pass  # pympi refuses some times itself
    p = d / "coded.eaf"
    Elan.to_eaf(str(p), eaf)
    text = p.read_bytes()
    if mangle == "truncate":
        text = text[: len(text) // 2]
    elif mangle == "entity":
        text = text.replace(b"?>", b'?><!DOCTYPE x [<!ENTITY s "' + SENTINEL.encode() * 50 + b'">]>', 1)
    elif mangle == "urn":
        text = text.replace(b"urn:rupture:session:t", b"urn:rupture:session:" + SENTINEL.encode())
    elif mangle == "bytes":
        text = text + b"\xff\x00" + SENTINEL.encode()
    p.write_bytes(text)
    try:
        _bounded(lambda: import_eaf(p, rec))
    except UsageError as e:
        _no_sentinel(str(e))
