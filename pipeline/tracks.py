"""Telehealth sessions given as one file per participant ("tracks"): put them on one timeline, one channel
per participant, so that the session takes the exact per-speaker path used for stereo recordings
(pipeline.channels): every word is transcribed from its speaker's own file and carries that speaker.

    TrackSet(tracks, offsets_s, mix)                 what a manifest row names (pipeline.inputs)
    estimate_offset(reference, signal, sr)           -> OffsetEstimate       pure (numpy/scipy/soxr)
    resolve_offsets(mono_tracks, sr, given, mix)     -> tuple[OffsetEstimate]  pure
    place_tracks(mono_tracks, offsets_s, sr)         -> (channels, n) array  pure
    load_tracks(trackset, cfg, sha256)               -> AlignedTracks (an `Audio` + provenance)   I/O
    tracks_sha256(trackset)                          -> the session's input digest                I/O

Where each track starts on the session timeline, in order of precedence:
1. `manifest`: the row's `track_offsets_s` (the platform's recording start times), taken as given.
2. `mix`: the platform's mixed recording of the same call (the row's `audio`): each track is found in it by
   cross-correlation, so the offsets are the tracks' starts on the mix's timeline.
3. `metadata`: every track is a Broadcast WAV whose `bext` chunk holds its start (OriginationDate and
   TimeReference, the sample count since midnight): exact where the recorders shared one clock. Below the
   mix because participants' devices each keep their own clock; all-zero references (a writer's default)
   count as absent. Other containers (m4a, webm) carry no start time reliable to the 20 ms this needs.
4. `crosstalk`: no mix, no metadata: each track is cross-correlated with the first one. This works only where each
   microphone picks up the other participant faintly (speakers, an open room); platforms that cancel the
   echo leave nothing in common, and the session fails with a message asking for (1) or (2). Clean
   synthetic tracks without leakage cannot be aligned so either.

Cross-correlation: GCC-PHAT (cross-spectrum whitened to unit magnitude, which sharpens the peak and makes it
insensitive to each microphone's colouring and the codec's level), first on the whole signals resampled to
COARSE_SR (1 ms steps; an hour is 3.6 M points, one FFT), then refined at the full rate around the coarse
peak on the track's loudest windows. The peak's height over the next highest peak
(`peak_ratio`) says whether the two signals share anything; below MIN_PEAK_RATIO the offset is not trusted.

Timeline: t = 0 is the reference's start (the manifest's session start, the mix's start, the earliest
start time in the files, or the first track's start), moved earlier to the earliest track's start when a track starts before it. Each track is
placed at its offset and zero-padded to the longest end.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.config import AudioConfig
from pipeline.errors import AudioError
from pipeline.records import Audio, FileInput, InputInfo, TrackInput

# The per-speaker path (pipeline.channels) handles two channels: one therapist, one client.
MAX_TRACKS = 2
COARSE_SR = 1000
REFINE_WINDOW_S = 8.0
REFINE_WINDOWS = 4
REFINE_MARGIN_S = 0.004
# How far the correlation peak stands above the highest one more than PEAK_EXCLUSION_S away from it (their
# ratio). Unrelated flite dialogues give 1.0-1.1; a track against its mix 35-50; crosstalk at -30 dB 5-11,
# at -40 dB 1.8-3.9 (30 s to 2 min of speech).
MIN_PEAK_RATIO = 1.5
PEAK_EXCLUSION_S = 0.02
OFFSET_SOURCES = ("manifest", "mix", "metadata", "crosstalk")


@dataclass(frozen=True)
class TrackSet:
    """A session recorded as one file per participant. `tracks[i]` becomes channel `ch{i}`."""

    tracks: tuple[Path, ...]
    offsets_s: tuple[float, ...] | None = None  # from the manifest, one per track; None: estimate them
    mix: Path | None = None  # the platform's mixed recording, used only to align the tracks

    def __post_init__(self) -> None:
        if not 2 <= len(self.tracks) <= MAX_TRACKS:
            raise ValueError(f"a track set holds 2 to {MAX_TRACKS} tracks, got {len(self.tracks)}")
        if self.offsets_s is not None and len(self.offsets_s) != len(self.tracks):
            raise ValueError("one offset per track")

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file the session reads: the tracks, then the mix."""
        return self.tracks + ((self.mix,) if self.mix is not None else ())


@dataclass(frozen=True)
class OffsetEstimate:
    """Where a track starts on the reference's timeline (seconds; negative: before the reference)."""

    offset_s: float
    source: str  # one of OFFSET_SOURCES
    peak_ratio: float | None = None  # how clearly the correlation peak stands out; None when given


@dataclass(frozen=True)
class AlignedTracks:
    audio: Audio  # one channel per track, on the session timeline
    offsets: tuple[OffsetEstimate, ...]  # per track, on the session timeline (after the shift)
    provenance: InputInfo  # session.json provenance.input


# ------------------------------------------------------------------------------------ pure: alignment


def _resample(x: np.ndarray, sr: int, to_sr: int) -> np.ndarray:
    import soxr

    x = np.ascontiguousarray(x, dtype=np.float32)
    return x if sr == to_sr else np.asarray(soxr.resample(x, sr, to_sr, quality="HQ"), dtype=np.float32)


def _gcc_phat(reference: np.ndarray, signal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whitened cross-correlation of every lag: (lags, values). Lag k: signal[n] lines up with
    reference[n + k], i.e. the signal starts k samples into the reference (negative: before it)."""
    from scipy import fft as sfft

    n_r, n_s = reference.size, signal.size
    n = sfft.next_fast_len(n_r + n_s - 1, real=True)
    spec = sfft.rfft(reference, n) * np.conj(sfft.rfft(signal, n))
    mag = np.abs(spec)
    spec /= mag + 1e-6 * (float(mag.max()) or 1.0)
    c = sfft.irfft(spec, n)
    lags = np.concatenate([np.arange(-(n_s - 1), 0), np.arange(n_r)])
    values = np.concatenate([c[n - (n_s - 1):], c[:n_r]])
    return lags, values


def _peak_ratio(values: np.ndarray, i: int, exclusion: int) -> float:
    """values[i] (the maximum) over the highest value more than `exclusion` indices away from it."""
    rest = np.concatenate([values[:max(0, i - exclusion)], values[i + exclusion + 1:]])
    if rest.size == 0:
        return float("inf")
    second = float(rest.max())
    return float(values[i]) / second if second > 0 else float("inf")


def _loudest_windows(x: np.ndarray, win: int, count: int) -> list[int]:
    """Start indices of up to `count` non-overlapping windows of `win` samples with the most energy."""
    if x.size <= win:
        return [0]
    n = x.size // win
    energy = np.square(x[: n * win].astype(np.float64)).reshape(n, win).sum(axis=1)
    return sorted(int(i) * win for i in np.argsort(energy)[::-1][:count] if energy[i] > 0) or [0]


def estimate_offset(reference: np.ndarray, signal: np.ndarray, sample_rate: int, *,
                    coarse_sr: int = COARSE_SR) -> tuple[float, float]:
    """Where `signal` starts on `reference`'s timeline, in seconds, and how clearly: the coarse correlation
    peak over the next highest one (see MIN_PEAK_RATIO). Both 1-D at `sample_rate`."""
    reference = np.asarray(reference, dtype=np.float32)
    signal = np.asarray(signal, dtype=np.float32)
    if reference.size == 0 or signal.size == 0:
        return 0.0, 0.0
    # coarse: the whole signals at coarse_sr
    r, s = _resample(reference, sample_rate, coarse_sr), _resample(signal, sample_rate, coarse_sr)
    lags, values = _gcc_phat(r, s)
    i = int(np.argmax(values))
    ratio = _peak_ratio(values, i, int(round(PEAK_EXCLUSION_S * coarse_sr)))
    coarse = int(round(lags[i] * sample_rate / coarse_sr))
    # refine at the full rate: the track's loudest windows against the reference around the coarse lag
    margin = max(1, int(round((REFINE_MARGIN_S + 1.0 / coarse_sr) * sample_rate)))
    win = int(REFINE_WINDOW_S * sample_rate)
    total = np.zeros(2 * margin + 1)
    used = 0
    for a in _loudest_windows(signal, win, REFINE_WINDOWS):
        seg = signal[a:a + win]
        lo = a + coarse - margin  # reference index that lines up with seg[0] at lag coarse - margin
        hi = a + coarse + margin + seg.size
        if lo < 0 or hi > reference.size:
            continue
        lg, v = _gcc_phat(reference[lo:hi], seg)
        keep = (lg >= 0) & (lg <= 2 * margin)
        total[lg[keep]] += v[keep]
        used += 1
    fine = coarse + int(np.argmax(total)) - margin if used else coarse
    return fine / sample_rate, ratio


def resolve_offsets(tracks: Sequence[np.ndarray], sample_rate: int, given: Sequence[float] | None = None,
                    mix: np.ndarray | None = None, names: Sequence[str] | None = None,
                    stamped: Sequence[float] | None = None) -> tuple[OffsetEstimate, ...]:
    """Each track's start on the session timeline (see the module docstring: `given` by the manifest, then
    found in the `mix`, then the files' `stamped` start times, then crosstalk; then shifted so that no track
    starts before 0). Raises AudioError when an offset cannot be measured (nothing in common)."""
    names = list(names) if names is not None else [f"track {i + 1}" for i in range(len(tracks))]
    if given is not None:
        raw = [OffsetEstimate(float(o), "manifest") for o in given]
    elif mix is None and stamped is not None:
        raw = [OffsetEstimate(float(o) - min(stamped), "metadata") for o in stamped]
    elif mix is not None:
        raw = []
        for t, name in zip(tracks, names):
            off, ratio = estimate_offset(mix, t, sample_rate)
            if ratio < MIN_PEAK_RATIO:
                raise AudioError(f"{name}: not found in the mixed recording (cross-correlation peak only {ratio:.2f} "
                                 f"times the next one, below {MIN_PEAK_RATIO:g}); check that the audio column names the mix of this call, or "
                                 "give track_offsets_s in the manifest")
            raw.append(OffsetEstimate(off, "mix", round(ratio, 2)))
    else:
        raw = [OffsetEstimate(0.0, "crosstalk", None)]
        for t, name in zip(tracks[1:], names[1:]):
            off, ratio = estimate_offset(tracks[0], t, sample_rate)
            if ratio < MIN_PEAK_RATIO:
                raise AudioError(f"{name} and {names[0]} share no audible sound (no crosstalk between the "
                                 f"microphones: cross-correlation peak only {ratio:.2f} times the next one, below "
                                 f"{MIN_PEAK_RATIO:g}), so "
                                 "their offset cannot be measured; give track_offsets_s in the manifest (the platform's "
                                 "recording start times) or the platform's mixed recording in the audio column")
            raw.append(OffsetEstimate(off, "crosstalk", round(ratio, 2)))
    shift = min(0.0, min(o.offset_s for o in raw))
    return tuple(OffsetEstimate(round(o.offset_s - shift, 6), o.source, o.peak_ratio) for o in raw)


def place_tracks(tracks: Sequence[np.ndarray], offsets_s: Sequence[float], sample_rate: int) -> np.ndarray:
    """One channel per track, each starting at its offset (>= 0), zero-padded to the latest end:
    (channels, n) float32."""
    starts = [int(round(o * sample_rate)) for o in offsets_s]
    if any(s < 0 for s in starts):
        raise ValueError("offsets must be >= 0 (resolve_offsets shifts them)")
    n = max(s + t.size for s, t in zip(starts, tracks))
    out = np.zeros((len(tracks), n), dtype=np.float32)
    for ch, (s, t) in enumerate(zip(starts, tracks)):
        out[ch, s:s + t.size] = t
    return out


# ------------------------------------------------------------------------------------------------ I/O


def tracks_sha256(trackset: TrackSet) -> str | None:
    """The session's input digest: every file's sha256 (tracks in order, then the mix) and the manifest's
    offsets. None when a file cannot be hashed (the session then fails in its audio stage, which says why)."""
    shas = [_file_sha256(p) for p in trackset.files]
    if any(s is None for s in shas):
        return None
    return _combined(shas[:len(trackset.tracks)], shas[len(trackset.tracks):], trackset.offsets_s)


def bwf_start_s(path: Path) -> float | None:
    """A Broadcast WAV's start time from its `bext` chunk: days since 2000-01-01 (OriginationDate) times
    86400 plus TimeReference / sample rate, in seconds. None for anything else: not a RIFF/WAVE file, no
    `bext` or `fmt ` chunk, an unreadable date, a zero TimeReference (most writers' default). Reads only the
    chunk headers, never the audio."""
    import datetime
    import struct

    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            rate = ref = date = None
            for _ in range(64):  # a WAV has a handful of chunks; a hostile one does not make this loop forever
                ck = f.read(8)
                if len(ck) < 8:
                    break
                cid, size = ck[:4], struct.unpack("<I", ck[4:])[0]
                if cid == b"fmt " and size >= 8:
                    rate = struct.unpack("<I", f.read(8)[4:8])[0]
                    f.seek(size - 8 + (size & 1), 1)
                elif cid == b"bext" and size >= 346:
                    body = f.read(346)
                    date = body[320:330].decode("ascii", "replace")
                    lo, hi = struct.unpack("<II", body[338:346])
                    ref = lo | hi << 32
                    f.seek(size - 346 + (size & 1), 1)
                else:
                    f.seek(size + (size & 1), 1)
                if rate is not None and ref is not None:
                    break
    except (OSError, struct.error):
        return None
    if not rate or not ref or date is None:
        return None
    try:
        day = datetime.date(int(date[0:4]), int(date[5:7]), int(date[8:10]))
    except ValueError:
        return None
    return (day - datetime.date(2000, 1, 1)).days * 86400.0 + ref / rate


def _file_sha256(path: Path) -> str | None:
    """sha256 of a regular file; None for anything else (a FIFO would block) or an unreadable one."""
    import os
    import stat

    from models.store import sha256_file

    try:
        return sha256_file(path) if stat.S_ISREG(os.stat(path).st_mode) else None
    except OSError:
        return None


def _combined(track_shas: Sequence[str | None], mix_sha: Sequence[str | None],
              offsets: Sequence[float] | None) -> str:
    doc = {"tracks": list(track_shas), "mix": mix_sha[0] if mix_sha else None,
           "offsets_s": list(offsets) if offsets is not None else None}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def load_tracks(trackset: TrackSet, cfg: AudioConfig, sha256: str | None = None) -> AlignedTracks:
    """Load every track (and the mix), align them and build one `Audio` with one channel per track.
    Raises AudioError naming the file for any track that cannot be used."""
    from pipeline.audio import load_audio

    loaded = [load_audio(p, cfg) for p in trackset.tracks]
    mix = load_audio(trackset.mix, cfg) if trackset.mix is not None else None
    names = [p.name for p in trackset.tracks]
    monos = [a.mono for a in loaded]
    stamped = [bwf_start_s(p) for p in trackset.tracks]
    offsets = resolve_offsets(monos, cfg.sample_rate, trackset.offsets_s,
                              mix.mono if mix is not None and trackset.offsets_s is None else None, names,
                              stamped=None if any(s is None for s in stamped) else [float(s or 0) for s in stamped])
    samples = place_tracks(monos, [o.offset_s for o in offsets], cfg.sample_rate)
    digest = sha256 or _combined([a.sha256 for a in loaded], [mix.sha256] if mix is not None else [],
                                 trackset.offsets_s)
    audio = Audio(samples=samples, sample_rate=cfg.sample_rate,
                  source_sample_rate=min(a.source_sample_rate for a in loaded), source_channels=len(loaded),
                  sha256=digest)
    prov = InputInfo(
        path_name=trackset.tracks[0].name, sha256=digest, sample_rate=audio.source_sample_rate, channels=len(loaded),
        tracks=tuple(TrackInput(path_name=p.name, sha256=a.sha256, channel=f"ch{i}", offset_s=o.offset_s,
                                offset_source=o.source, offset_peak_ratio=o.peak_ratio,
                                sample_rate=a.source_sample_rate, channels=a.source_channels)
                     for i, (p, a, o) in enumerate(zip(trackset.tracks, loaded, offsets))),
        mix=FileInput(path_name=trackset.mix.name, sha256=mix.sha256)
        if mix is not None and trackset.mix is not None else None)
    return AlignedTracks(audio=audio, offsets=offsets, provenance=prov)
