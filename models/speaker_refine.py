"""Second-pass speaker assignment over whole diarization segments (pure: no models, no I/O).

pyannote clusters speaker embeddings of 10 s chunks, one per chunk-local speaker. When two voices are alike
(on synthetic sessions: two male flite voices), the segmentation model can give both the same local
speaker inside a chunk, so a short question between two long answers inherits the answerer's label, and
no clustering of chunk embeddings can undo it. An embedding of one whole segment (a stretch of one
speaker's speech between pauses, without the other voice) separates such voices far better (CAM++ on
oracle utterances of two male flite voices: cosine 0.81 within a voice, 0.19 between).

This module re-clusters the diarization's segments on such embeddings:

1. `segment_spans`: for each segment of the overlapping track, the parts where no other speaker is
   active (only those are embedded: an overlap mixes two voices).
2. The caller embeds the segments whose clean part lasts at least `min_s` (models/diarizer.py does this
   with CAM++, from at most the first `refine_max_segment_s` of that clean part: `first_seconds`).
3. `recluster`: average-linkage agglomerative clustering (cosine) of those embeddings into as many
   clusters as the first pass found speakers (or the known number of speakers, when the caller has it);
   each new cluster is named after the first-pass speaker it
   shares the most speech with (optimal one-to-one mapping), so labels stay stable where nothing changes.
   The result is discarded (first pass kept) when a cluster holds less than `min_cluster_s` of speech:
   a lone odd segment must not become a "speaker".
4. `relabel`: segments get their new label (segments too short to embed keep theirs); a speaker's
   segments that now touch or overlap are merged; speakers are renamed S1, S2, ... by first appearance.
"""

from __future__ import annotations

import bisect
from typing import Mapping, Sequence

import numpy as np

from pipeline.records import Diarization, Segment

Span = tuple[float, float]


def _subtract(lo: float, hi: float, others: Sequence[Span]) -> list[Span]:
    """[lo, hi] minus the union of `others` (sorted by start)."""
    out: list[Span] = []
    cur = lo
    for s, e in others:
        if e <= cur or s >= hi:
            continue
        if s > cur:
            out.append((cur, s))
        cur = max(cur, e)
        if cur >= hi:
            break
    if cur < hi:
        out.append((cur, hi))
    return out


def segment_spans(diar: Diarization, min_piece_s: float = 0.1) -> list[list[Span]]:
    """For each segment of `diar.overlapping` (same order), its parts where no other speaker is active,
    each at least `min_piece_s` long."""
    segs = diar.overlapping
    by_start = sorted(range(len(segs)), key=lambda i: segs[i].start)
    starts = [segs[i].start for i in by_start]
    longest = max((s.duration for s in segs), default=0.0)
    out: list[list[Span]] = []
    for seg in segs:
        # candidates start before seg.end and no earlier than seg.start - longest (else they end before it)
        lo = bisect.bisect_left(starts, seg.start - longest)
        hi = bisect.bisect_left(starts, seg.end)
        others = sorted((segs[i].start, segs[i].end) for i in by_start[lo:hi]
                        if segs[i].speaker != seg.speaker and segs[i].end > seg.start)
        out.append([(s, e) for s, e in _subtract(seg.start, seg.end, others) if e - s >= min_piece_s])
    return out


def first_seconds(parts: Sequence[Span], limit: float) -> list[Span]:
    """The first `limit` seconds of `parts` (sorted spans), cut inside the span that reaches the limit; all
    of them when `limit` <= 0."""
    if limit <= 0:
        return list(parts)
    out: list[Span] = []
    left = limit
    for s, e in parts:
        if left <= 0:
            break
        out.append((s, min(e, s + left)))
        left -= out[-1][1] - s
    return out


def _assign_names(new: np.ndarray, old: Sequence[str], weights: np.ndarray) -> dict[int, str]:
    """Name each new cluster after the old speaker it shares the most weight with (one-to-one); clusters
    left over (more clusters than old speakers) get fresh names "S<n>" not used by the old ones."""
    from scipy.optimize import linear_sum_assignment

    old_names = sorted(set(old))
    clusters = sorted(set(int(c) for c in new))
    m = np.zeros((len(clusters), len(old_names)))
    for c, o, w in zip(new, old, weights):
        m[clusters.index(int(c)), old_names.index(o)] += w
    rows, cols = linear_sum_assignment(-m)
    names = {clusters[r]: old_names[c] for r, c in zip(rows, cols)}
    fresh = (f"S{i}" for i in range(1, 10_000) if f"S{i}" not in old_names)
    for c in clusters:
        if c not in names:
            names[c] = next(fresh)
    return names


def recluster(embeddings: np.ndarray, weights: Sequence[float], old_labels: Sequence[str],
              min_cluster_s: float = 3.0, num_speakers: int | None = None) -> list[str] | None:
    """New labels for embedded segments (rows of `embeddings`, speech seconds `weights`, first-pass
    labels `old_labels`), or None to keep the first pass (fewer than two speakers or segments, or a
    cluster with under `min_cluster_s` of speech). The number of clusters is the first pass's number of
    speakers, or `num_speakers` when that is given (a known count: the first pass can merge two alike
    voices into one speaker). Deterministic."""
    from scipy.cluster.hierarchy import fcluster, linkage

    k = num_speakers if num_speakers is not None else len(set(old_labels))
    n = len(old_labels)
    if k < 2 or n <= k or embeddings.shape[0] != n:
        return None
    x = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if not np.all(np.isfinite(x)) or np.any(norms <= 0):
        return None
    x = x / norms
    tree = linkage(x, method="average", metric="cosine")
    new = fcluster(tree, t=k, criterion="maxclust")
    w = np.asarray(weights, dtype=np.float64)
    for c in set(int(v) for v in new):
        if float(w[new == c].sum()) < min_cluster_s:
            return None
    names = _assign_names(new, old_labels, w)
    return [names[int(c)] for c in new]


def _merge(segments: Sequence[Segment]) -> list[Segment]:
    """Union of each speaker's segments (touching or overlapping ones merged), sorted by start."""
    out: list[Segment] = []
    for spk in sorted(set(s.speaker for s in segments)):
        cur: list[float] | None = None
        for s in sorted((s for s in segments if s.speaker == spk), key=lambda s: (s.start, s.end)):
            if cur is not None and s.start <= cur[1]:
                cur[1] = max(cur[1], s.end)
            else:
                if cur is not None:
                    out.append(Segment(cur[0], cur[1], spk))
                cur = [s.start, s.end]
        if cur is not None:
            out.append(Segment(cur[0], cur[1], spk))
    return sorted(out, key=lambda s: (s.start, s.end, s.speaker))


def relabel(diar: Diarization, new_labels: Mapping[int, str]) -> Diarization:
    """`diar` with overlapping segment i relabelled `new_labels[i]` (others keep theirs). An exclusive
    segment follows the overlapping segment of its speaker that contains its midpoint. Speakers are
    renamed S1, S2, ... in order of first appearance in the overlapping track."""
    if not new_labels:
        return diar
    ov = [Segment(s.start, s.end, new_labels.get(i, s.speaker)) for i, s in enumerate(diar.overlapping)]
    ex: list[Segment] = []
    for s in diar.exclusive:
        mid = 0.5 * (s.start + s.end)
        label = s.speaker
        for i, o in enumerate(diar.overlapping):
            if o.speaker == s.speaker and o.start <= mid <= o.end:
                label = new_labels.get(i, o.speaker)
                break
        ex.append(Segment(s.start, s.end, label))
    ov_m, ex_m = _merge(ov), _merge(ex)
    names: dict[str, str] = {}
    for s in ov_m + ex_m:
        if s.speaker not in names:
            names[s.speaker] = f"S{len(names) + 1}"
    return Diarization(
        overlapping=tuple(Segment(s.start, s.end, names[s.speaker]) for s in ov_m),
        exclusive=tuple(Segment(s.start, s.end, names[s.speaker]) for s in ex_m),
        speakers=tuple(names.values()),
        method=diar.method,
    )
