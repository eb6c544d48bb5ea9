"""Recording conditions for the degradation suite (issue 16): each condition is a named, seeded recipe that
turns a clean synthetic session (mono float audio + the speech spans of its truth) into the audio a clinic
might actually record. Driven by scripts/degradation_suite.py; usable on any mono clip with known speech.

    speech_spans(truth) -> ((start, end), ...)                 union of the truth utterances, seconds
    render(condition, audio, sr, spans, rng, babble=()) -> (audio, sr)
    CONDITIONS: the default set, in table order;  EXTRA_CONDITIONS: by name only;  condition(name) -> Condition

Steps (frozen dataclasses; a condition applies its steps in order):
- `Reverb(rt60_s, drr_db)`: convolution with a synthetic room impulse response: the direct path (gain 1, at
  lag 0, so the truth times stay exact) followed, from 2.5 ms on, by seeded Gaussian noise decaying 60 dB in
  `rt60_s`, scaled so that the direct path carries `drr_db` more energy than the tail (direct-to-
  reverberant ratio; negative: the microphone is beyond the critical distance). Small office: RT60 0.4 s,
  DRR +3 dB (a laptop about a metre away); larger room: RT60 0.9 s, DRR -3 dB (a room microphone on a shelf).
- `Noise(kind, snr_db)`: noise added at `snr_db`. SNR = active speech level over noise level: the mean
  square of the signal so far inside the truth speech spans over the mean square of the noise over the
  whole file. `stationary`: pink (1/f) noise, the spectrum of ventilation and fan hum; `brown`: 1/f^2 noise
  (flat below 20 Hz), the rumble of traffic or an air handler, most of its power below 200 Hz; `babble`: eight
  streams of other people's conversation (other synthetic sessions, given as `babble`, each at two seeded
  circular offsets, each stream at the same RMS), i.e. a waiting room or an open-plan office next door.
- `Telephone(low_hz, high_hz, sr, mulaw)`: a linear-phase FIR band-pass (zero delay), resampled to 8 kHz
  and, by default, G.711 mu-law 8-bit companding. The result is written at 8 kHz; the pipeline resamples.
- `Codec(codec, kbps)`: an encode/decode round trip through PyAV (ffmpeg's libopus in Ogg, its native AAC
  encoder in ADTS, libmp3lame) at `kbps` kbit/s and the clip's rate, realigned on the clean signal by
  cross-correlation (AAC in ADTS starts with 1024 priming samples) and cut to the clean length.
- `Clip(drive_db)`: the input stage overdriven by `drive_db` and hard-clipped at full scale.
After every step but `Clip`, a peak above 0.99 is scaled down (the whole file, so an SNR is kept).

A speaker 10 dB quieter than the other is not a transform of the mixed audio (in an overlap both voices
share the samples): `Condition.attenuate` names a source rendered with scripts/make_synthetic_sessions.py
`--attenuate client:10` (same scripts and truth, the client mixed 10 dB down); the suite renders it.

Pure functions of arrays and a numpy Generator; only `Codec` calls a library (PyAV, in memory).
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

Spans = tuple[tuple[float, float], ...]
PEAK_LIMIT = 0.99
# codec -> (container, ffmpeg encoder)
_CODECS = {"opus": ("ogg", "libopus"), "aac": ("adts", "aac"), "mp3": ("mp3", "libmp3lame")}


# ------------------------------------------------------------------------------------------------ steps


@dataclass(frozen=True)
class Reverb:
    rt60_s: float
    drr_db: float


@dataclass(frozen=True)
class Noise:
    kind: str  # "stationary" (pink) | "brown" | "babble"
    snr_db: float

    def __post_init__(self) -> None:
        if self.kind not in ("stationary", "brown", "babble"):
            raise ValueError(f"Noise.kind: stationary, brown or babble, not {self.kind!r}")


@dataclass(frozen=True)
class Telephone:
    low_hz: float = 300.0
    high_hz: float = 3400.0
    sr: int = 8000
    mulaw: bool = True


@dataclass(frozen=True)
class Codec:
    codec: str  # "opus" | "aac" | "mp3"
    kbps: int

    def __post_init__(self) -> None:
        if self.codec not in _CODECS:
            raise ValueError(f"Codec.codec: one of {sorted(_CODECS)}, not {self.codec!r}")


@dataclass(frozen=True)
class Clip:
    drive_db: float = 12.0


Step = Reverb | Noise | Telephone | Codec | Clip


@dataclass(frozen=True)
class Condition:
    """A named recording condition: `steps` applied in order to the session rendered with `attenuate`
    (None: both voices at the same level; "client:10": the client mixed 10 dB below the therapist)."""

    name: str
    description: str
    steps: tuple[Step, ...] = ()
    attenuate: str | None = None

    @property
    def needs_babble(self) -> bool:
        return any(isinstance(s, Noise) and s.kind == "babble" for s in self.steps)


OFFICE = Reverb(rt60_s=0.4, drr_db=3.0)
LARGE_ROOM = Reverb(rt60_s=0.9, drr_db=-3.0)

CONDITIONS: tuple[Condition, ...] = (
    Condition("clean", "as rendered: both voices at the same level, noise floor -78 dBFS"),
    Condition("office_reverb", "small office: RT60 0.4 s, DRR +3 dB", (OFFICE,)),
    Condition("large_room_reverb", "larger room: RT60 0.9 s, DRR -3 dB", (LARGE_ROOM,)),
    *(Condition(f"noise_{s}db", f"stationary pink noise at {s} dB SNR", (Noise("stationary", s),)) for s in (20, 10, 5)),
    *(Condition(f"babble_{s}db", f"babble (8 streams) at {s} dB SNR", (Noise("babble", s),)) for s in (20, 10, 5)),
    Condition("office_noise_10db", "office reverb, then stationary noise at 10 dB SNR",
              (OFFICE, Noise("stationary", 10))),
    Condition("office_babble_10db", "office reverb, then babble at 10 dB SNR", (OFFICE, Noise("babble", 10))),
    Condition("telephone", "300-3400 Hz, 8 kHz, mu-law", (Telephone(),)),
    Condition("opus_16k", "Opus 16 kbit/s", (Codec("opus", 16),)),
    Condition("aac_24k", "AAC 24 kbit/s", (Codec("aac", 24),)),
    Condition("mp3_32k", "MP3 32 kbit/s", (Codec("mp3", 32),)),
    Condition("quieter_client_10db", "the client 10 dB quieter (far from the microphone)", (), "client:10"),
    Condition("clipping", "input overdriven by 12 dB, hard-clipped", (Clip(12.0),)),
)


# Issue 17's hardest case, not in the default set: heavy reverberation and brown noise at 5 dB SNR, with
# both voices at one level and with the client 10 or 15 dB quieter (SNR of the whole mix's speech, so the
# quieter client's own SNR is lower still).
EXTRA_CONDITIONS: tuple[Condition, ...] = tuple(
    Condition(f"large_room_brown_5db{suffix}", f"larger room, then brown noise at 5 dB SNR{what}",
              (LARGE_ROOM, Noise("brown", 5)), att)
    for suffix, what, att in (("", "", None), ("_client10", ", the client 10 dB quieter", "client:10"),
                              ("_client15", ", the client 15 dB quieter", "client:15")))


def condition(name: str) -> Condition:
    for c in CONDITIONS + EXTRA_CONDITIONS:
        if c.name == name:
            return c
    raise KeyError(f"unknown condition {name!r}; known: {', '.join(c.name for c in CONDITIONS)}")


def condition_rng(seed: int, condition_name: str, session_id: str) -> np.random.Generator:
    """The generator of one (condition, session): the same audio on every run, different across both."""
    return np.random.default_rng([seed, zlib.crc32(condition_name.encode()), zlib.crc32(session_id.encode())])


# ------------------------------------------------------------------------------------------------ helpers


def speech_spans(truth: Mapping[str, Any]) -> Spans:
    """The union of the truth utterances (scripts/synth.py truth format), sorted, in seconds."""
    out: list[list[float]] = []
    for a, b in sorted((float(u["start"]), float(u["end"])) for u in truth["utterances"]):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        elif b > a:
            out.append([a, b])
    return tuple((a, b) for a, b in out)


def span_mask(n: int, sr: int, spans: Spans) -> np.ndarray:
    m = np.zeros(n, dtype=bool)
    for a, b in spans:
        m[max(0, int(round(a * sr))):min(n, int(round(b * sr)))] = True
    return m


def speech_power(x: np.ndarray, sr: int, spans: Spans) -> float:
    """Mean square of `x` inside the speech spans (the active speech level, linear)."""
    m = span_mask(x.size, sr, spans)
    if not m.any():
        raise ValueError("no speech inside the spans")
    return float(np.mean(np.square(x[m], dtype=np.float64)))


def power_db(p: float) -> float:
    return 10.0 * np.log10(max(p, 1e-20))


def fit_peak(x: np.ndarray, limit: float = PEAK_LIMIT) -> np.ndarray:
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    return x * (limit / peak) if peak > limit else x


# ------------------------------------------------------------------------------------------------ reverb


def room_impulse_response(rt60_s: float, drr_db: float, sr: int, rng: np.random.Generator,
                          predelay_s: float = 0.0025) -> np.ndarray:
    """Direct path 1.0 at lag 0, then an exponentially decaying noise tail (60 dB in `rt60_s`) holding
    `drr_db` less energy than the direct path."""
    if rt60_s <= 0:
        raise ValueError("rt60_s must be positive")
    n = int(round(rt60_s * sr))
    start = max(1, int(round(predelay_s * sr)))
    t = np.arange(start, n) / sr
    tail = rng.standard_normal(t.size) * 10.0 ** (-3.0 * t / rt60_s)
    tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / float(np.sum(tail**2)))
    h = np.zeros(n)
    h[0] = 1.0
    h[start:] = tail
    return h


def reverberate(x: np.ndarray, sr: int, step: Reverb, rng: np.random.Generator) -> np.ndarray:
    from scipy.signal import fftconvolve

    h = room_impulse_response(step.rt60_s, step.drr_db, sr, rng)
    return fftconvolve(x.astype(np.float64), h)[: x.size]


def schroeder_rt60(h: np.ndarray, sr: int, lo_db: float = -5.0, hi_db: float = -35.0) -> float:
    """RT60 of an impulse response from its Schroeder decay curve (a line fitted from `lo_db` to `hi_db`),
    for checking `room_impulse_response`."""
    e = np.cumsum(np.square(h[::-1]))[::-1]
    edc = 10 * np.log10(e / e[0])
    i = np.flatnonzero((edc <= lo_db) & (edc >= hi_db))
    slope = np.polyfit(i / sr, edc[i], 1)[0]
    return -60.0 / slope


# ------------------------------------------------------------------------------------------------ noise


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance 1/f noise (spectral shaping of white noise, flat below 20 Hz at 16 kHz)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    spec /= np.sqrt(np.maximum(f, spec.size / 400.0))
    y = np.fft.irfft(spec, n)
    return y / (float(np.std(y)) or 1.0)


def brown_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance 1/f^2 (brown) noise: white noise shaped like `pink_noise`, amplitude 1/f, flat below
    20 Hz at 16 kHz (no drift)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    spec /= np.maximum(f, spec.size / 400.0)
    y = np.fft.irfft(spec, n)
    return y / (float(np.std(y)) or 1.0)


def babble_noise(n: int, sources: Sequence[np.ndarray], rng: np.random.Generator, streams: int = 8) -> np.ndarray:
    """`streams` talkers: each a source (cycled) at a seeded circular offset, tiled to `n` samples and
    scaled to unit RMS; the sum scaled to unit RMS."""
    if not sources:
        raise ValueError("babble needs at least one source recording")
    y = np.zeros(n)
    for k in range(streams):
        src = np.asarray(sources[k % len(sources)], dtype=np.float64)
        if src.size == 0:
            raise ValueError("empty babble source")
        s = np.roll(np.tile(src, int(np.ceil(n / src.size)) + 1), -int(rng.integers(src.size)))[:n]
        y += s / (float(np.sqrt(np.mean(s**2))) or 1.0)
    return y / (float(np.sqrt(np.mean(y**2))) or 1.0)


def add_noise(x: np.ndarray, sr: int, noise: np.ndarray, snr_db: float, spans: Spans) -> np.ndarray:
    """x plus `noise` scaled so that the speech power of x inside `spans` over the noise's mean square is
    `snr_db`."""
    if noise.size != x.size:
        raise ValueError("noise and signal lengths differ")
    pn = float(np.mean(np.square(noise)))
    g = np.sqrt(speech_power(x, sr, spans) / (pn * 10.0 ** (snr_db / 10.0)))
    return x.astype(np.float64) + g * noise


def estimate_snr_db(y: np.ndarray, sr: int, spans: Spans, guard_s: float = 0.3) -> float:
    """SNR from a noisy recording alone, for stationary noise: noise power from the stretches at least
    `guard_s` away from any speech (reverberation tails excluded), speech power as the excess inside the
    spans."""
    speech = span_mask(y.size, sr, spans)
    wide = span_mask(y.size, sr, tuple((a - guard_s, b + guard_s) for a, b in spans))
    pn = float(np.mean(np.square(y[~wide], dtype=np.float64)))
    ps = float(np.mean(np.square(y[speech], dtype=np.float64))) - pn
    return power_db(ps) - power_db(pn)


# ------------------------------------------------------------------------------------------------ telephone


def _band_fir(sr: int, low_hz: float, high_hz: float, taps: int = 1025) -> np.ndarray:
    from scipy.signal import firwin

    return firwin(taps, [low_hz, high_hz], pass_zero=False, fs=sr, window=("kaiser", 8.0))


def mulaw(x: np.ndarray, mu: int = 255) -> np.ndarray:
    """G.711-style mu-law companding with 8-bit quantisation (compress, round to 256 levels, expand)."""
    c = np.sign(x) * np.log1p(mu * np.minimum(np.abs(x), 1.0)) / np.log1p(mu)
    q = np.round((c + 1.0) * 127.5) / 127.5 - 1.0
    return np.sign(q) * np.expm1(np.abs(q) * np.log1p(mu)) / mu


def telephone(x: np.ndarray, sr: int, step: Telephone) -> tuple[np.ndarray, int]:
    from math import gcd

    from scipy.signal import fftconvolve, resample_poly

    h = _band_fir(sr, step.low_hz, step.high_hz)
    d = (h.size - 1) // 2  # linear phase: cut the delay so the truth times still hold
    y = fftconvolve(x.astype(np.float64), h)[d:d + x.size]
    g = gcd(sr, step.sr)
    y = resample_poly(y, step.sr // g, sr // g)
    y = fit_peak(y)
    return (mulaw(y) if step.mulaw else y), step.sr


# ------------------------------------------------------------------------------------------------ codecs



def encode(x: np.ndarray, sr: int, step: Codec) -> bytes:
    """The clip encoded with `step` (mono, `sr`), as the container's bytes."""
    import av

    fmt, name = _CODECS[step.codec]
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        st = out.add_stream(name, rate=sr, layout="mono")
        st.bit_rate = int(step.kbps * 1000)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x, dtype=np.float32)[None, :], format="flt",
                                           layout="mono")
        frame.sample_rate = sr
        for pkt in st.encode(frame):
            out.mux(pkt)
        for pkt in st.encode(None):
            out.mux(pkt)
    return buf.getvalue()


def decode(data: bytes, sr: int) -> np.ndarray:
    import av

    parts: list[np.ndarray] = []
    with av.open(io.BytesIO(data)) as inp:
        rs = av.AudioResampler(format="flt", layout="mono", rate=sr)
        for frame in inp.decode(audio=0):
            parts += [f.to_ndarray().reshape(-1) for f in rs.resample(frame)]
        parts += [f.to_ndarray().reshape(-1) for f in rs.resample(None)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def best_lag(ref: np.ndarray, y: np.ndarray, max_lag: int) -> int:
    """The delay of `y` against `ref` in samples (0..max_lag), by cross-correlation."""
    from scipy.signal import fftconvolve

    n = min(ref.size, y.size - max_lag) if y.size > max_lag else 0
    if n <= 0:
        return 0
    c = fftconvolve(y[: n + max_lag].astype(np.float64), ref[:n][::-1].astype(np.float64), mode="valid")
    return int(np.argmax(c))


def codec_round_trip(x: np.ndarray, sr: int, step: Codec) -> tuple[np.ndarray, float]:
    """(decoded audio aligned on `x` and cut to its length, the encoded bit rate in kbit/s)."""
    data = encode(x, sr, step)
    y = decode(data, sr).astype(np.float64)
    lag = best_lag(x, y, max_lag=int(0.2 * sr))
    y = y[lag:lag + x.size]
    if y.size < x.size:
        y = np.concatenate([y, np.zeros(x.size - y.size)])
    return y, len(data) * 8 / 1000 / (x.size / sr)


# ------------------------------------------------------------------------------------------------ clipping


def clip(x: np.ndarray, step: Clip) -> np.ndarray:
    return np.clip(x.astype(np.float64) * 10.0 ** (step.drive_db / 20.0), -1.0, 1.0)


# ------------------------------------------------------------------------------------------------ render


def apply_step(step: Step, x: np.ndarray, sr: int, spans: Spans, rng: np.random.Generator,
               babble: Sequence[np.ndarray] = ()) -> tuple[np.ndarray, int]:
    if isinstance(step, Reverb):
        return fit_peak(reverberate(x, sr, step, rng)), sr
    if isinstance(step, Noise):
        noise = (pink_noise(x.size, rng) if step.kind == "stationary" else brown_noise(x.size, rng)
                 if step.kind == "brown" else babble_noise(x.size, babble, rng))
        return fit_peak(add_noise(x, sr, noise, step.snr_db, spans)), sr
    if isinstance(step, Telephone):
        return telephone(x, sr, step)
    if isinstance(step, Codec):
        return fit_peak(codec_round_trip(x, sr, step)[0]), sr
    if isinstance(step, Clip):
        return clip(x, step), sr
    raise TypeError(f"not a degradation step: {step!r}")


def render(cond: Condition, audio: np.ndarray, sr: int, spans: Spans, rng: np.random.Generator,
           babble: Sequence[np.ndarray] = ()) -> tuple[np.ndarray, int]:
    """`cond`'s steps applied in order to mono `audio` (the source `cond.attenuate` names); returns float32
    audio and its sample rate. Babble sources must be at `sr`."""
    if audio.ndim != 1:
        raise ValueError("render takes mono audio")
    if cond.needs_babble and not babble:
        raise ValueError(f"{cond.name}: babble needs source recordings")
    x, rate = np.asarray(audio, dtype=np.float64), sr
    for step in cond.steps:
        x, rate = apply_step(step, x, rate, spans, rng, babble)
    return np.clip(x, -1.0, 1.0).astype(np.float32), rate
