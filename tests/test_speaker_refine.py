"""Second-pass speaker assignment (models/speaker_refine.py): pure functions on hand-made records, and
the Diarizer's refinement on a real two-voice flite clip."""

from __future__ import annotations

import numpy as np

from pipeline.records import Diarization, Segment
from models.speaker_refine import first_seconds, recluster, relabel, segment_spans


def diar(ov: list[tuple[float, float, str]], ex: list[tuple[float, float, str]] | None = None) -> Diarization:
    segs = tuple(Segment(*s) for s in ov)
    exs = tuple(Segment(*s) for s in (ex if ex is not None else ov))
    return Diarization(segs, exs, tuple(sorted({s.speaker for s in segs})), "pyannote")


def test_segment_spans_drop_other_speakers_overlap():
    d = diar([(0.0, 5.0, "S1"), (2.0, 2.5, "S2"), (4.8, 8.0, "S2")])
    spans = segment_spans(d)
    assert spans[0] == [(0.0, 2.0), (2.5, 4.8)]
    assert spans[1] == []  # entirely inside S1's speech
    assert spans[2] == [(5.0, 8.0)]


def test_recluster_fixes_a_mislabelled_segment_and_keeps_names():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=16), rng.normal(size=16)
    emb = np.stack([a + 0.05 * rng.normal(size=16) for _ in range(3)] + [b + 0.05 * rng.normal(size=16) for _ in range(3)])
    # the first pass put one of B's segments (index 3) under S1
    old = ["S1", "S1", "S1", "S1", "S2", "S2"]
    new = recluster(emb, [4.0] * 6, old)
    assert new == ["S1", "S1", "S1", "S2", "S2", "S2"]


def test_recluster_keeps_first_pass_for_a_lone_outlier_or_one_speaker():
    rng = np.random.default_rng(1)
    a, odd = rng.normal(size=16), rng.normal(size=16)
    emb = np.stack([a + 0.05 * rng.normal(size=16) for _ in range(5)] + [odd])
    old = ["S1", "S2", "S1", "S2", "S1", "S2"]
    # the only split is a 1.2 s odd segment: under min_cluster_s, keep the first pass
    assert recluster(emb, [4.0] * 5 + [1.2], old, min_cluster_s=3.0) is None
    assert recluster(emb, [4.0] * 6, ["S1"] * 6) is None


def test_relabel_merges_and_renames_by_first_appearance():
    d = diar([(0.0, 2.0, "S1"), (2.5, 3.5, "S2"), (3.2, 6.0, "S1")],
             [(0.0, 2.0, "S1"), (2.5, 3.2, "S2"), (3.2, 6.0, "S1")])
    out = relabel(d, {1: "S1"})
    assert [(s.start, s.end, s.speaker) for s in out.overlapping] == [(0.0, 2.0, "S1"), (2.5, 6.0, "S1")]
    assert [(s.start, s.end, s.speaker) for s in out.exclusive] == [(0.0, 2.0, "S1"), (2.5, 6.0, "S1")]
    assert out.speakers == ("S1",)
    swapped = relabel(d, {0: "S2", 1: "S1", 2: "S2"})
    assert [s.speaker for s in swapped.overlapping] == ["S1", "S2", "S1"]  # renamed by first appearance
    assert relabel(d, {}) is d


def test_recluster_splits_a_merged_speaker_when_the_count_is_known():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=16), rng.normal(size=16)
    emb = np.stack([a + 0.05 * rng.normal(size=16) for _ in range(4)] + [b + 0.05 * rng.normal(size=16) for _ in range(2)])
    old = ["S1"] * 6  # the first pass merged both voices
    assert recluster(emb, [4.0] * 6, old) is None  # one speaker and no count: nothing to do
    assert recluster(emb, [4.0] * 6, old, num_speakers=2) == ["S1"] * 4 + ["S2"] * 2


def test_first_seconds_cuts_the_clean_parts_at_the_limit():
    parts = [(0.0, 1.5), (2.0, 3.0), (4.0, 9.0)]
    assert first_seconds(parts, 0.0) == parts
    assert first_seconds(parts, 1.0) == [(0.0, 1.0)]
    assert first_seconds(parts, 2.0) == [(0.0, 1.5), (2.0, 2.5)]
    assert first_seconds(parts, 4.0) == [(0.0, 1.5), (2.0, 3.0), (4.0, 5.5)]
    assert first_seconds(parts, 100.0) == parts
