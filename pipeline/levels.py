"""Per-speaker speech level, noise floor and SNR from the diarization, and the per-speaker gain applied
before transcription (issue 17: the quieter voice).

    measure_levels(signals, sample_rate, diarization, cfg) -> Levels
    plan_gains(levels, cfg) -> {speaker: gain dB}
    apply_gains(mono, sample_rate, exclusive, gains, cfg) -> equalised copy of mono

Pure functions (numpy only). Definitions:
- Frame levels: RMS in dBFS of `cfg.frame_s` frames every `cfg.hop_s` (pipeline.channels.frame_levels_db).
- Own speech of a speaker: frames whose centre lies in their exclusive-track segments and in no other
  speaker's overlapping-track segment (overlapped speech would measure both voices).
- Speech level: the mean power (dB) of the speaker's own frames within `cfg.active_range_db` of the 95th
  percentile of those frames, i.e. their speech without the pauses between words. None when the speaker
  has less than `cfg.min_speech_s` of own speech.
- Noise floor: the 25th percentile of the frames where nobody speaks (outside every overlapping-track
  segment widened by 0.2 s); speech the diarization missed sits in the upper percentiles. With under a
  second of such frames (wall-to-wall talk), the 5th percentile of all frames. SNR = level - noise floor.
- Gain (mono mix only): the loudest measured speaker's level is the target. A speaker at least
  `cfg.min_gain_db` below it is raised to it, by at most `cfg.max_gain_db`, and by no more than keeps the
  raised noise floor `cfg.noise_margin_db` below the target level: where the background is loud, raising
  it makes Whisper hear words in it. Recordings whose speakers are within `cfg.min_gain_db` of each other
  are left exactly as they are.
- Applying: each frame takes the gain of the speaker talking in it on the overlapping track (segments
  widened by `cfg.pad_s`), 0 dB where nobody does; where two talk at once, the smaller of their gains
  (`cfg.overlap_gain` "min"): a loud speaker's backchannel inside the quiet speaker's turn is not raised
  above its own level. On the dev sessions raising by the exclusive track alone (which gives such an
  overlap to one speaker) made Whisper loop on one boosted turn; "max" raised the loud speaker's overlaps
  and lost more of the quiet speaker's words at 15 dB. The gain curve is smoothed over `cfg.ramp_s` and
  applied per sample. The result is used for transcription only: diarization, prosody and the reported
  levels use the recording as it is.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from pipeline.channels import frame_levels_db
from pipeline.config import LevelsConfig
from pipeline.records import Diarization, Levels, Segment, SpeakerLevel

NOISE_PERCENTILE = 25.0
NOISE_GUARD_S = 0.2
MIN_NOISE_S = 1.0


def frame_mask(segments: Sequence[Segment] | Sequence[tuple[float, float]], n_frames: int, hop_s: float,
               frame_s: float, pad_s: float = 0.0) -> np.ndarray:
    """Boolean per frame: the frame's centre lies in one of the spans (segments or (start, end) pairs),
    each widened by `pad_s`."""
    mask = np.zeros(n_frames, dtype=bool)
    centre0 = frame_s / 2.0
    for s in segments:
        start, end = (s.start, s.end) if isinstance(s, Segment) else s
        a = int(np.ceil((start - pad_s - centre0) / hop_s))
        b = int(np.floor((end + pad_s - centre0) / hop_s)) + 1
        mask[max(0, a):max(0, min(n_frames, b))] = True
    return mask


def _power_mean_db(levels_db: np.ndarray) -> float:
    return float(10.0 * np.log10(np.mean(10.0 ** (levels_db / 10.0))))


def speech_level_db(levels_db: np.ndarray, active_range_db: float) -> float:
    """Active speech level of a speaker's own frame levels (see the module docstring)."""
    top = float(np.percentile(levels_db, 95))
    return _power_mean_db(levels_db[levels_db >= top - active_range_db])


def noise_floor_db(levels_db: np.ndarray, speech: np.ndarray, hop_s: float) -> float | None:
    """Noise floor of one signal's frame levels given its speech frames (see the module docstring)."""
    if levels_db.size == 0:
        return None
    quiet = levels_db[~speech]
    if quiet.size * hop_s >= MIN_NOISE_S:
        return float(np.percentile(quiet, NOISE_PERCENTILE))
    return float(np.percentile(levels_db, 5))


def measure_levels(signals: Mapping[str, np.ndarray] | np.ndarray, sample_rate: int, diar: Diarization,
                   cfg: LevelsConfig) -> Levels:
    """Speech level, SNR and own-speech time of every speaker of `diar`. `signals`: the mono mix, or one
    signal per speaker (stereo channel path: each speaker on their own channel, noise measured there)."""
    per_speaker = isinstance(signals, Mapping)
    cache: dict[int, np.ndarray] = {}

    def levels_of(x: np.ndarray) -> np.ndarray:
        if id(x) not in cache:
            cache[id(x)] = frame_levels_db(x, sample_rate, cfg.frame_s, cfg.hop_s)[0]
        return cache[id(x)]

    mono = None if per_speaker else np.asarray(signals)
    anyone: dict[int, np.ndarray] = {}
    out: list[SpeakerLevel] = []
    noises: dict[str, float | None] = {}
    for spk in diar.speakers:
        x = signals[spk] if per_speaker else mono  # type: ignore[index]
        lv = levels_of(x)
        n = lv.size
        own = frame_mask([s for s in diar.exclusive if s.speaker == spk], n, cfg.hop_s, cfg.frame_s)
        own &= ~frame_mask([s for s in diar.overlapping if s.speaker != spk], n, cfg.hop_s, cfg.frame_s)
        if id(x) not in anyone:
            anyone[id(x)] = frame_mask(diar.overlapping, n, cfg.hop_s, cfg.frame_s, pad_s=NOISE_GUARD_S)
        noise = noise_floor_db(lv, anyone[id(x)], cfg.hop_s)
        noises[spk] = noise
        speech_s = float(own.sum()) * cfg.hop_s
        level = speech_level_db(lv[own], cfg.active_range_db) if speech_s >= cfg.min_speech_s else None
        snr = None if level is None or noise is None else level - noise
        out.append(SpeakerLevel(spk, round(speech_s, 3), _r(level), _r(snr)))
    known = [v for v in noises.values() if v is not None]
    noise_all = None if not known else (known[0] if not per_speaker else max(known))
    return Levels(noise_dbfs=_r(noise_all), speakers=tuple(out))


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 2)


def plan_gains(levels: Levels, cfg: LevelsConfig) -> dict[str, float]:
    """{speaker: gain dB} for the mono mix (see the module docstring); 0 for the loudest, for speakers
    within `min_gain_db` of it and for speakers too short to measure."""
    measured = [s for s in levels.speakers if s.level_dbfs is not None]
    gains = {s.speaker: 0.0 for s in levels.speakers}
    if len(measured) < 2 or not cfg.equalize:
        return gains
    target = max(s.level_dbfs for s in measured)  # type: ignore[type-var]
    for s in measured:
        deficit = target - s.level_dbfs  # type: ignore[operator]
        if deficit < cfg.min_gain_db:
            continue
        g = min(deficit, cfg.max_gain_db)
        if levels.noise_dbfs is not None:
            g = min(g, target - cfg.noise_margin_db - levels.noise_dbfs)
        gains[s.speaker] = round(max(0.0, g), 2)
    return gains


def with_gains(levels: Levels, gains: Mapping[str, float]) -> Levels:
    """The same levels with each speaker's `asr_gain_db` set."""
    return Levels(levels.noise_dbfs, tuple(SpeakerLevel(s.speaker, s.speech_s, s.level_dbfs, s.snr_db,
                                                        float(gains.get(s.speaker, 0.0))) for s in levels.speakers))


def gain_curve_db(n_samples: int, sample_rate: int, segments: Sequence[Segment], gains: Mapping[str, float],
                  cfg: LevelsConfig) -> np.ndarray:
    """Per-frame gain (dB) on the `cfg.hop_s` grid, smoothed over `cfg.ramp_s` (see the module docstring):
    where speakers of `segments` (the overlapping track, each widened by `cfg.pad_s`) talk, the smallest
    of their gains (`cfg.overlap_gain` "min") or the largest ("max"); 0 where nobody does."""
    n_frames = max(1, int(np.ceil(n_samples / (cfg.hop_s * sample_rate))) + 1)
    if not any(g > 0 for g in gains.values()):
        return np.zeros(n_frames)
    pick = np.minimum if cfg.overlap_gain == "min" else np.maximum
    curve = np.full(n_frames, np.nan)
    for spk in sorted({s.speaker for s in segments}):
        m = frame_mask([s for s in segments if s.speaker == spk], n_frames, cfg.hop_s, 0.0, pad_s=cfg.pad_s)
        g = float(gains.get(spk, 0.0))
        curve[m] = np.where(np.isnan(curve[m]), g, pick(curve[m], g))
    curve = np.nan_to_num(curve, nan=0.0)
    width = max(1, int(round(cfg.ramp_s / cfg.hop_s)))
    if width > 1 and curve.any():
        kernel = np.ones(width) / width
        curve = np.convolve(np.pad(curve, (width // 2, width - 1 - width // 2), mode="edge"), kernel, mode="valid")
    return curve


def apply_gains(mono: np.ndarray, sample_rate: int, segments: Sequence[Segment], gains: Mapping[str, float],
                cfg: LevelsConfig) -> np.ndarray:
    """A copy of `mono` with each speaker's speech (`segments`: the overlapping track) raised by their gain
    (`gain_curve_db`); `mono` itself (not a copy) when every gain is 0."""
    x = np.asarray(mono, dtype=np.float32)
    if not any(g > 0 for g in gains.values()):
        return x
    curve = gain_curve_db(x.size, sample_rate, segments, gains, cfg)
    t_frames = np.arange(curve.size) * cfg.hop_s
    t = np.arange(x.size) / sample_rate
    factor = 10.0 ** (np.interp(t, t_frames, curve) / 20.0)
    return (x * factor).astype(np.float32)
