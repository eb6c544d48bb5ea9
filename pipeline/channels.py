"""Stereo channel path: exact diarization for recordings with one speaker per channel (telehealth).

    diarize_channels(audio, cfg) -> Diarization | None

Pure function (numpy only). Steps:
1. Frame levels: RMS in dBFS of `cfg.stereo_frame_s` windows every `cfg.stereo_hop_s`, per channel.
2. Speech activity per channel: a frame is speech when its level is above
   max(speech level - stereo_vad_relative_db, noise level + stereo_vad_noise_margin_db,
   stereo_vad_floor_dbfs), where a channel's speech level is its 95th-percentile frame level and its noise
   level its 5th-percentile one, and it is not the other channel's speech leaking in (more than
   stereo_crosstalk_db quieter than the other channel in that frame while the other channel is speech).
3. Smoothing: gaps shorter than stereo_min_silence_s are bridged (hangover), then speech runs shorter than
   stereo_min_speech_s are dropped.
4. Tracks: speakers "ch0" and "ch1"; the overlapping track is the union of both channels' segments; the
   exclusive track gives every speech frame to one channel: where both speak, the louder one, judged on
   the level difference averaged over the overlapped frames within stereo_overlap_smoothing_s (so that it
   does not flicker).

Transcription (`gate_to_speech`, `words_in_speech`): each channel is transcribed on its own, muted
outside its speaker's speech, and keeps only the words that lie mostly inside that speech. A close-talk
microphone also picks up the other speaker (crosstalk, typically 10-25 dB down), and Whisper transcribes
that faint speech as readily as the loud one.

Returns None when the path does not apply, so the caller falls back to pyannote on the mono mix: not
exactly two channels, no speech at all, or channels that are not separated. Separation is
min over the two channels of the median level advantage (dB) of that channel over the other in the speech
frames where it is the louder one; it must reach cfg.stereo_min_channel_separation_db. A mono file copied
to two channels gives 0 dB, a gain-scaled copy 0 dB too (one channel is never the louder), crosstalk at
-x dB gives about x dB, and a real one-speaker-per-channel recording tens of dB.
"""

from __future__ import annotations

import bisect
from typing import Sequence

import numpy as np

from pipeline.config import DiarizationConfig
from pipeline.records import Audio, Diarization, Segment, Word

SPEAKERS = ("ch0", "ch1")
_EPS = 1e-10


def frame_levels_db(samples: np.ndarray, sample_rate: int, frame_s: float, hop_s: float) -> np.ndarray:
    """RMS level in dBFS of every frame of a (channels, n) signal: (channels, num_frames). Frame i spans
    samples [i * hop, i * hop + frame); the last partial frame is zero-padded."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    frame = max(1, int(round(frame_s * sample_rate)))
    hop = max(1, int(round(hop_s * sample_rate)))
    n = x.shape[1]
    num = max(1, int(np.ceil(max(n - frame, 0) / hop)) + 1)
    pad = (num - 1) * hop + frame - n
    if pad > 0:
        x = np.pad(x, ((0, 0), (0, pad)))
    # sum of squares by cumulative sums (O(n), no frame matrix)
    c = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(x * x, axis=1)], axis=1)
    starts = np.arange(num) * hop
    power = (c[:, starts + frame] - c[:, starts]) / frame
    return 10.0 * np.log10(np.maximum(power, _EPS))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index pairs of the True runs of a boolean vector."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    d = np.diff(m.astype(np.int8))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def smooth_activity(active: np.ndarray, min_silence: int, min_speech: int) -> np.ndarray:
    """Bridge inactive gaps shorter than `min_silence` frames that lie between speech, then drop speech
    runs shorter than `min_speech` frames. Returns a new boolean vector."""
    out = np.asarray(active, dtype=bool).copy()
    if min_silence > 0:
        for s, e in _runs(~out):
            if s > 0 and e < len(out) and e - s < min_silence:
                out[s:e] = True
    if min_speech > 0:
        for s, e in _runs(out):
            if e - s < min_speech:
                out[s:e] = False
    return out


def _segments(mask: np.ndarray, speaker: str, hop_s: float, offset_s: float, duration: float) -> list[Segment]:
    out = []
    for s, e in _runs(mask):
        start = max(0.0, round(s * hop_s + offset_s, 3))
        end = min(duration, round(e * hop_s + offset_s, 3))
        if end > start:
            out.append(Segment(start, end, speaker))
    return out


def _padded(segments: Sequence[Segment], pad_s: float) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for s in sorted(segments, key=lambda s: s.start):
        lo, hi = max(0.0, s.start - pad_s), s.end + pad_s
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def gate_to_speech(samples: np.ndarray, sample_rate: int, segments: Sequence[Segment], pad_s: float) -> np.ndarray:
    """A copy of one channel's samples, zero outside `segments` (its speaker's speech) widened by `pad_s` on
    each side, so that the ASR does not hear the other speaker's crosstalk in this speaker's silences."""
    x = np.asarray(samples)
    out = np.zeros_like(x)
    for lo, hi in _padded(segments, pad_s):
        a, b = int(round(lo * sample_rate)), min(x.shape[-1], int(round(hi * sample_rate)))
        out[..., a:b] = x[..., a:b]
    return out


def words_in_speech(words: Sequence[Word], segments: Sequence[Segment], pad_s: float) -> list[Word]:
    """The words that lie at least half inside `segments` widened by `pad_s` (a crosstalk word the gate let
    through at the edge of the speaker's speech lies mostly outside it); a zero-length word by its time."""
    spans = _padded(segments, pad_s)
    starts = [lo for lo, _ in spans]
    kept = []
    for w in words:
        inside, hit = 0.0, False
        for j in range(max(0, bisect.bisect_right(starts, w.start) - 1), len(spans)):
            lo, hi = spans[j]
            if lo > max(w.start, w.end):
                break
            inside += max(0.0, min(hi, w.end) - max(lo, w.start))
            hit = hit or lo <= w.start <= hi
        if (inside >= 0.5 * (w.end - w.start)) if w.end > w.start else hit:
            kept.append(w)
    return kept


def channel_separation_db(levels: np.ndarray, speech: np.ndarray) -> float:
    """Separation of two channels in dB (see the module docstring): for each channel, the median of
    (its level - the other's) over its speech frames where it is strictly the louder; the smaller of the
    two; 0.0 when a channel is never the louder speech."""
    seps = []
    for c in range(2):
        diff = levels[c] - levels[1 - c]
        frames = speech[c] & (diff > 0)
        if not frames.any():
            return 0.0
        seps.append(float(np.median(diff[frames])))
    return min(seps)


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    if width <= 1:
        return x
    kernel = np.ones(width) / width
    return np.convolve(np.pad(x, (width // 2, width - 1 - width // 2), mode="edge"), kernel, mode="valid")


def diarize_channels(audio: Audio, cfg: DiarizationConfig) -> Diarization | None:
    """Diarize a two-channel recording with one speaker per channel, or None when the channels are not
    separated (see the module docstring)."""
    if audio.num_channels != 2:
        return None
    sr = audio.sample_rate
    hop_s, frame_s = cfg.stereo_hop_s, cfg.stereo_frame_s
    levels = frame_levels_db(audio.samples, sr, frame_s, hop_s)  # (2, F)

    raw = np.zeros_like(levels, dtype=bool)
    for c in range(2):
        speech_level = float(np.percentile(levels[c], 95))
        noise_level = float(np.percentile(levels[c], 5))
        threshold = max(
            speech_level - cfg.stereo_vad_relative_db,
            noise_level + cfg.stereo_vad_noise_margin_db,
            cfg.stereo_vad_floor_dbfs,
        )
        raw[c] = levels[c] > threshold

    # separation is measured before crosstalk suppression: duplicated channels give identical masks
    if not raw.any():
        return None
    if channel_separation_db(levels, raw) < cfg.stereo_min_channel_separation_db:
        return None

    active = raw.copy()
    for c in range(2):
        o = 1 - c
        leak = raw[o] & (levels[o] - levels[c] > cfg.stereo_crosstalk_db)
        active[c] &= ~leak
    min_silence = int(round(cfg.stereo_min_silence_s / hop_s))
    min_speech = int(round(cfg.stereo_min_speech_s / hop_s))
    for c in range(2):
        active[c] = smooth_activity(active[c], min_silence, min_speech)
    if not active.any():
        return None

    duration = audio.duration_s
    # frame i is centred at i * hop + frame / 2; it stands for the hop-long interval around its centre
    offset = frame_s / 2.0 - hop_s / 2.0
    overlapping: list[Segment] = []
    for c in range(2):
        overlapping += _segments(active[c], SPEAKERS[c], hop_s, offset, duration)

    both = active[0] & active[1]
    smooth = int(round(cfg.stereo_overlap_smoothing_s / hop_s))
    # level difference averaged over the nearby frames where both speak (not over one-sided frames)
    num = _moving_average((levels[0] - levels[1]) * both, smooth)
    den = _moving_average(both.astype(np.float64), smooth)
    louder0 = np.where(den > 0, num / np.maximum(den, 1e-12), levels[0] - levels[1]) >= 0.0
    owner0 = active[0] & (~both | louder0)
    owner1 = active[1] & ~owner0
    exclusive = _segments(owner0, SPEAKERS[0], hop_s, offset, duration) + _segments(
        owner1, SPEAKERS[1], hop_s, offset, duration
    )

    key = lambda s: (s.start, s.end, s.speaker)  # noqa: E731
    overlapping.sort(key=key)
    exclusive.sort(key=key)
    speakers = tuple(sp for sp in SPEAKERS if any(s.speaker == sp for s in overlapping))
    return Diarization(
        overlapping=tuple(overlapping), exclusive=tuple(exclusive), speakers=speakers, method="channels"
    )
