from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.errors import UsageError
from pipeline.inputs import collect_jobs, read_manifest, safe_session_id


def _wav(path: Path) -> Path:
    sf.write(path, np.zeros(1600, dtype=np.float32), 16000)
    return path


def test_plain_paths_need_consent_attestation(tmp_path):
    a = _wav(tmp_path / "a.wav")
    jobs, refusals = collect_jobs([str(a)], consent_on_file=False)
    assert jobs == [] and len(refusals) == 1 and "--consent-on-file" in refusals[0].reason
    jobs, refusals = collect_jobs([str(a)], consent_on_file=True)
    assert [j.session_id for j in jobs] == ["a"] and refusals == []
    assert jobs[0].consent_source == "operator_attestation"


def test_folder_is_searched_for_audio(tmp_path):
    (tmp_path / "sub").mkdir()
    _wav(tmp_path / "sub" / "x.wav")
    _wav(tmp_path / "y.flac")
    (tmp_path / "notes.txt").write_text("not audio")
    jobs, _ = collect_jobs([str(tmp_path)], consent_on_file=True)
    assert sorted(j.session_id for j in jobs) == ["x", "y"]


def test_empty_folder_and_missing_path_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="no audio"):
        collect_jobs([str(tmp_path)], True)
    with pytest.raises(UsageError, match="not found"):
        collect_jobs([str(tmp_path / "nope.wav")], True)


def test_manifest_consent_gate_metadata_and_relative_paths(tmp_path):
    _wav(tmp_path / "s1.wav")
    _wav(tmp_path / "s2.wav")
    m = tmp_path / "m.csv"
    m.write_text(
        "audio,session_id,consent_recording,consent_analysis,consent_date,num_speakers,therapist,site\n"
        "s1.wav,one,true,true,2026-01-02,2,ch0,clinicA\n"
        "s2.wav,two,true,false,2026-01-02,,,clinicB\n"
    )
    jobs, refusals = read_manifest(m)
    assert [j.session_id for j in jobs] == ["one"]
    j = jobs[0]
    assert j.audio_path == (tmp_path / "s1.wav").resolve()
    assert j.num_speakers == 2 and j.therapist == "ch0" and j.metadata == {"site": "clinicA"}
    assert [r.session_id for r in refusals] == ["two"] and "consent_analysis" in refusals[0].reason


def test_manifest_missing_columns_and_bad_values(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text("audio,session_id\nx.wav,x\n")
    with pytest.raises(UsageError, match="consent_recording"):
        read_manifest(m)
    m.write_text("audio,consent_recording,consent_analysis,num_speakers\nx.wav,maybe,true,\n")
    with pytest.raises(UsageError, match="true or false"):
        read_manifest(m)
    m.write_text("audio,consent_recording,consent_analysis,num_speakers\nx.wav,true,true,two\n")
    with pytest.raises(UsageError, match="integer"):
        read_manifest(m)


def test_duplicate_session_ids_are_refused_not_overwritten(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _wav(tmp_path / "a" / "same.wav")
    _wav(tmp_path / "b" / "same.wav")
    jobs, refusals = collect_jobs([str(tmp_path)], True)
    assert len(jobs) == 1 and len(refusals) == 1 and "duplicate" in refusals[0].reason


@pytest.mark.parametrize("raw,expected", [("a b", "a_b"), ("../../etc/passwd", "etc_passwd"), ("séance 1", "séance_1"),
                                          ("", "session")])
def test_safe_session_id(raw, expected):
    assert safe_session_id(raw) == expected
