"""pipeline.timeline.windows: packing speech into the fixed-length clips a recogniser decodes."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.timeline import covered, total, union, windows


def test_windows_take_in_short_gaps_and_stop_at_the_length_or_a_long_gap():
    speech = [(0.0, 5.0), (6.0, 12.0), (13.0, 20.0), (40.0, 41.0), (41.5, 44.0)]
    assert windows(speech, max_len=30.0, max_gap=2.0) == [(0.0, 20.0), (40.0, 44.0)]
    # the third interval would make the first window 31 s long: it opens the next one
    assert windows([(0.0, 10.0), (11.0, 25.0), (26.0, 31.0)], max_len=30.0) == [(0.0, 25.0), (26.0, 31.0)]


def test_windows_cut_a_long_interval_into_equal_pieces_and_merge_overlaps_first():
    assert windows([(10.0, 70.0)], max_len=25.0) == [(10.0, 30.0), (30.0, 50.0), (50.0, 70.0)]
    assert windows([(0.0, 4.0), (3.0, 8.0), (8.0, 9.0)], max_len=30.0, max_gap=0.0) == [(0.0, 9.0)]
    assert windows([], max_len=30.0) == []
    with pytest.raises(ValueError):
        windows([(0.0, 1.0)], max_len=0.0)


intervals = st.lists(st.tuples(st.floats(0, 300, allow_nan=False), st.floats(0, 40, allow_nan=False))
                     .map(lambda t: (t[0], t[0] + t[1])), max_size=30)


@settings(max_examples=200, deadline=None)
@given(intervals, st.floats(1.0, 30.0), st.floats(0.0, 5.0))
def test_windows_cover_the_speech_once_within_the_length(speech, max_len, max_gap):
    out = windows(speech, max_len, max_gap)
    assert all(e - s <= max_len + 1e-6 and e > s for s, e in out)
    assert all(a[1] <= b[0] for a, b in zip(out, out[1:]))  # sorted, disjoint
    merged = union(speech)
    assert sum(covered(out, s, e) for s, e in merged) == pytest.approx(total(merged), abs=1e-6)
    for s, e in out:  # every window starts and ends in speech
        assert any(a <= s + 1e-9 and s < b for a, b in merged)
        assert any(a < e and e <= b + 1e-9 for a, b in merged)
