"""The one serializer of the typed records inside session.json (pipeline.serialize): provenance, metrics and
event details. Unit tests, no models: records written and read back are equal, files written back are the same
bytes (recorded demo sessions, an older layout, keys this version does not know, in their order), and a value
of the wrong type is kept as read instead of breaking the record."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config import MeasuresConfig
from pipeline.measures import measure_conversation
from pipeline.records import (AllianceMetrics, Consent, EventDetails, HumanCoding, ImbalanceDetails, InputInfo,
                              ModelInfo, Moment, OverlapDetails, PauseDetails, ProsodyDetails, Provenance, Purged,
                              Segment, TaggerDetails, Turn, Word)
from pipeline.serialize import (RecordFormatError, details_from_dict, details_to_dict, event_from_dict,
                                event_to_dict, from_json, metrics_from_dict, metrics_to_dict, provenance_from_dict,
                                provenance_to_dict, read_session_json, record_from_dict, record_to_dict,
                                write_session_json)

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _dump(d: object) -> str:
    return json.dumps(d, ensure_ascii=False, indent=1)


@pytest.mark.parametrize("name", ["demo_session.json", "session_small.json"])
def test_recorded_sessions_are_written_back_byte_identical(name: str, tmp_path: Path) -> None:
    """A recorded `rupture demo` session (and the hand-built fixture of an older metrics layout) read into
    typed records and written again: the same bytes."""
    src = FIXTURES / name
    rec = read_session_json(src)
    out = tmp_path / "session.json"
    write_session_json(rec, out)
    assert out.read_bytes() == src.read_bytes()
    assert record_from_dict(record_to_dict(rec)) == rec


def test_demo_session_reads_into_typed_fields() -> None:
    """The fields readers use are typed, not left in `other` (the demo snapshot predates `alliance` and
    `prosody`: its rupture counts sit at the top of metrics and stay there, in `other`)."""
    rec = read_session_json(FIXTURES / "demo_session.json")
    prov = rec.provenance
    assert isinstance(prov.input, InputInfo) and prov.input_sha256 == prov.input.sha256
    assert all(isinstance(m, ModelInfo) for m in (prov.models or {}).values()) and prov.models
    assert isinstance(prov.consent, Consent) and prov.outputs and all(isinstance(n, str) for n in prov.outputs)
    assert prov.other == {} and prov.key_order == ()
    m = rec.metrics
    assert m.talk_time is not None and m.pauses is not None and m.turns is not None
    assert m.therapist_share == m.talk_time.session.therapist_share
    assert "ruptures" in m.other and m.alliance is None and m.prosody is None
    kinds = {e.type: type(e.details.measure) for e in rec.events}
    assert kinds["interruption"] is OverlapDetails and kinds["long_pause"] is PauseDetails
    assert kinds["rupture"] is TaggerDetails
    assert all(e.details.other == () and e.details.key_order == () for e in rec.events)


def _measured():
    words = tuple(Word(0.4 * i, 0.4 * i + 0.3, w, 0.9, spk) for i, (spk, w) in enumerate(
        [("T", "How"), ("T", "was"), ("T", "your"), ("T", "week?"), ("C", "Fine."), ("T", "Tell"), ("T", "me"),
         ("T", "more"), ("C", "mm-hmm"), ("T", "about"), ("T", "it.")]))
    turns = (Turn(0, "T", "therapist", 0.0, 1.5, "How was your week?", 4), Turn(1, "C", "client", 1.6, 1.9, "Fine.", 1),
             Turn(2, "T", "therapist", 2.0, 4.3, "Tell me more mm-hmm about it.", 6))
    segs = (Segment(0.0, 1.5, "T"), Segment(1.6, 1.9, "C"), Segment(2.0, 4.3, "T"), Segment(3.1, 3.5, "C"),
            Segment(9.0, 12.0, "C"))
    return measure_conversation(turns, words, segs, {"T": "therapist", "C": "client"}, 14.0, MeasuresConfig())


def test_metrics_and_details_made_here_round_trip_fully_typed() -> None:
    m = _measured()
    metrics = replace(m.metrics, alliance=AllianceMetrics(1, 1, 0, {"withdrawal.denial": 1}, 0, 1, 0.0, 0, {},
                                                            (Moment(1, 1.6, "withdrawal.denial", 0.7, False, None),)))
    d = metrics_to_dict(metrics)
    assert list(d)[:3] == ["talk_time", "therapist_share", "event_counts"] and list(d)[-1] == "alliance"
    back = metrics_from_dict(json.loads(json.dumps(d)))
    assert back == metrics and back.other == {} and back.key_order == ()
    assert m.events, "the session above must give events"
    for e in m.events:
        again = event_from_dict(json.loads(json.dumps(event_to_dict(e))))
        assert again == e and again.details.other == () and again.details.key_order == ()


def test_absent_and_null_are_kept_apart() -> None:
    """target_turn_index None is written as null (the holder had no turn there); a backchannel field of an
    interruption is not written at all."""
    det = EventDetails(OverlapDetails(direction="client->therapist", target_turn_index=None, overlap_s=0.5))
    assert details_to_dict(det) == {"direction": "client->therapist", "target_turn_index": None, "overlap_s": 0.5}
    assert details_from_dict("interruption", details_to_dict(det)) == det
    prov = Provenance(consent=Consent(source="manifest", date=None), purged=Purged(audio=True))
    assert provenance_to_dict(prov) == {"consent": {"source": "manifest", "date": None}, "purged": {"audio": True}}
    assert provenance_from_dict(provenance_to_dict(prov)) == prov


def test_unknown_keys_are_kept_in_their_order() -> None:
    raw_metrics = {"talk_time_share": {"A": 0.5}, "therapist_share": 0.25, "zeta": 1, "alpha": [1, 2]}
    m = metrics_from_dict(raw_metrics)
    assert m.therapist_share == 0.25 and list(m.other) == ["talk_time_share", "zeta", "alpha"]
    assert json.dumps(metrics_to_dict(m)) == json.dumps(raw_metrics)
    # a new value set on a record read from elsewhere keeps the file's order and goes after it
    assert list(metrics_to_dict(replace(m, therapist_share=0.5))) == list(raw_metrics)

    raw_details = {"z_new": 1, "p_model": 0.9, "cue_boost": 0.0, "family": "withdrawal", "p_subtype": 0.8,
                   "a_new": "x", "coder": "human", "human_action": "confirmed", "eaf_tier": "rupture"}
    det = details_from_dict("rupture", raw_details)
    assert det.measure == TaggerDetails(0.9, 0.0, "withdrawal", 0.8)
    assert det.coding == HumanCoding("human", "confirmed", "rupture") and det.human_coded
    assert det.other == (("z_new", 1), ("a_new", "x"))
    assert list(details_to_dict(det)) == list(raw_details)

    raw_prov = {"zz": 1, "created": "2026-01-01T00:00:00+00:00", "aa": {"b": 2}}
    prov = provenance_from_dict(raw_prov)
    assert prov.created == raw_prov["created"] and list(prov.other) == ["zz", "aa"]
    assert list(provenance_to_dict(prov)) == list(raw_prov)


def test_wrong_types_are_kept_as_read_not_typed() -> None:
    m = metrics_from_dict({"therapist_share": "high", "pauses": {"count_over_3s": 1}, "event_counts": {"x": 1.5}})
    assert m.therapist_share is None and m.pauses is None and m.event_counts is None
    assert set(m.other) == {"therapist_share", "pauses", "event_counts"}
    det = details_from_dict("long_pause", {"pause_s": "long", "speaker_before": "A", "speaker_after": "B",
                                           "direction": "client->therapist", "prosody": {"arousal": 1}})
    assert det.measure is None and det.prosody is None and det.direction is None and len(det.other) == 5
    # an int stays an int, a bool is not a number
    ints = details_from_dict("talk_time_imbalance", {"therapist_share": 1, "speech_s": 30})
    assert ints.measure == ImbalanceDetails(1, 30) and json.dumps(details_to_dict(ints)) == \
        '{"therapist_share": 1, "speech_s": 30}'
    assert details_from_dict("talk_time_imbalance", {"therapist_share": True, "speech_s": 30}).measure is None
    prov = provenance_from_dict({"outputs": ["a", 3], "models": {"asr": {"name": "w"}}, "input": []})
    assert prov.outputs is None and prov.models is None and prov.input is None and prov.input_sha256 is None


def test_type_errors_name_the_key_never_the_value() -> None:
    with pytest.raises(RecordFormatError, match=r"provenance\.input\.sha256: expected str, found int"):
        from_json(InputInfo, {"sha256": 5}, "provenance.input")
    with pytest.raises(RecordFormatError) as e:
        from_json(ModelInfo, {"name": "secret words here", "version": "1"}, "provenance.models.asr")
    assert "missing 'sha256'" in str(e.value) and "secret" not in str(e.value)


_values = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(-2, 2, allow_nan=False),
                    st.text(max_size=5))
_keys = st.sampled_from(["direction", "target_turn_index", "in_overlap", "words", "overlap_s", "pause_s",
                         "speaker_before", "speaker_after", "p_model", "cue_boost", "family", "p_subtype",
                         "prosody", "prosody_evidence", "coder", "human_action", "eaf_tier", "model_subtype",
                         "therapist_share", "speech_s", "kind", "cues"])


@settings(max_examples=200, deadline=None)
@given(etype=st.sampled_from(["rupture", "repair", "interruption", "backchannel", "overlap", "long_pause",
                              "talk_time_imbalance"]),
       items=st.lists(st.tuples(_keys, st.one_of(_values, st.fixed_dictionaries(
           {"arousal": _values, "f0_z": _values, "intensity_z": _values, "speech_rate_change": _values,
            "pause_z": _values}))), max_size=10))
def test_any_details_are_written_back_unchanged(etype: str, items: list[tuple[str, object]]) -> None:
    raw = dict(items)
    det = details_from_dict(etype, raw)
    assert json.dumps(details_to_dict(det)) == json.dumps(raw)
    assert details_from_dict(etype, details_to_dict(det)) == det


@settings(max_examples=100, deadline=None)
@given(items=st.lists(st.tuples(st.sampled_from(["therapist_share", "pauses", "turns", "alliance", "prosody",
                                                 "other", "key_order", "x", "event_counts"]),
                                st.one_of(_values, st.dictionaries(st.text(max_size=3), _values, max_size=3))),
                      max_size=8))
def test_any_metrics_are_written_back_unchanged(items: list[tuple[str, object]]) -> None:
    raw = dict(items)
    m = metrics_from_dict(raw)
    assert json.dumps(metrics_to_dict(m)) == json.dumps(raw)
    assert metrics_from_dict(metrics_to_dict(m)) == m


def test_prosody_details_round_trip() -> None:
    det = EventDetails(TaggerDetails(0.8, 0.1, "withdrawal", 0.5), ProsodyDetails(-1.4, -0.9, -1.9, -0.35, None),
                       "client voice: ...")
    assert list(details_to_dict(det)) == ["p_model", "cue_boost", "family", "p_subtype", "prosody", "prosody_evidence"]
    assert details_from_dict("rupture", json.loads(json.dumps(details_to_dict(det)))) == det
