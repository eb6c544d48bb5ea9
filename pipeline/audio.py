"""Audio intake: any common format and sample rate, mono or multichannel -> `Audio` at 16 kHz float32.

soundfile (libsndfile: wav, flac, ogg, ...) is tried first; PyAV (FFmpeg: mp3, m4a, mp4, webm, ...) second.
Unreadable, empty or silent input raises AudioError with a message that says what is wrong with the file
(never its content).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.store import sha256_file
from pipeline.config import AudioConfig
from pipeline.errors import AudioError
from pipeline.records import Audio


# Long recordings are decoded in blocks and resampled as a stream, so peak memory is the 16 kHz output
# (about 0.46 GB per channel for 2 hours), never the whole file at its own rate and channel count.
BLOCK_S = 30.0
# The stereo channel path needs both channels of a 2-channel file; more channels are mixed to mono.
MAX_KEPT_CHANNELS = 2
# Bounds checked before (and while) decoding, so that a header cannot make the pipeline allocate without
# limit (a 2 MB WAV claiming 10 Hz "lasted" 28 hours and ran out of memory once resampled to 16 kHz).
# Telephone speech is 8 kHz; below 4 kHz there is no speech band left. 8 hours (about 1.8 GB per channel at
# 16 kHz) is far beyond any therapy session.
MIN_SAMPLE_RATE = 4000
MAX_SAMPLE_RATE = 768_000
MAX_CHANNELS = 64
MAX_DURATION_S = 8 * 3600.0


class _Accumulator:
    """Consumes decoded blocks (channels, n) at the source rate: checks them, keeps the level statistics,
    mixes >2 channels to mono and resamples to the target rate as a stream."""

    def __init__(self, name: str, sr: int, channels: int, target_sr: int) -> None:
        import soxr

        if sr <= 0 or channels <= 0:
            raise AudioError(f"{name}: the file reports no sample rate or channels")
        if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
            raise AudioError(f"{name}: the file claims a sample rate of {sr} Hz, outside {MIN_SAMPLE_RATE}-"
                             f"{MAX_SAMPLE_RATE} Hz; the header is corrupt or this is not a speech recording")
        if channels > MAX_CHANNELS:
            raise AudioError(f"{name}: the file claims {channels} channels (at most {MAX_CHANNELS}); the header is "
                             "corrupt")
        self.name, self.sr, self.channels = name, sr, channels
        self.keep = channels if channels <= MAX_KEPT_CHANNELS else 1
        self.stream = None if sr == target_sr else soxr.ResampleStream(sr, target_sr, self.keep, dtype="float32",
                                                                       quality="HQ")
        self.out: list[np.ndarray] = []
        self.frames = 0
        self.sumsq = 0.0

    def add(self, block: np.ndarray, last: bool = False) -> None:
        block = np.asarray(block, dtype=np.float32)
        if block.size and not np.isfinite(block).all():
            raise AudioError(f"{self.name}: the audio holds invalid (NaN/inf) samples; the file is corrupt")
        self.frames += block.shape[1]
        if self.frames > MAX_DURATION_S * self.sr:
            raise AudioError(_too_long(self.name))
        self.sumsq += float(np.square(block, dtype=np.float64).sum())
        if self.channels > MAX_KEPT_CHANNELS:
            block = block.mean(axis=0, keepdims=True)
        if self.stream is None:
            if block.shape[1]:
                self.out.append(np.ascontiguousarray(block))
            return
        y = self.stream.resample_chunk(np.ascontiguousarray(block.T), last=last)
        if y.shape[0]:
            self.out.append(np.ascontiguousarray(y.T))

    def finish(self) -> np.ndarray:
        if self.stream is not None:
            self.add(np.zeros((self.channels, 0), dtype=np.float32), last=True)
        if not self.out:
            return np.zeros((self.keep, 0), dtype=np.float32)
        return np.concatenate(self.out, axis=1) if len(self.out) > 1 else self.out[0]

    @property
    def dbfs(self) -> float:
        n = self.frames * self.channels
        rms = np.sqrt(self.sumsq / n) if n else 0.0
        return float(20 * np.log10(max(rms, 1e-12)))


def _too_long(name: str) -> str:
    return (f"{name}: the recording is longer than {MAX_DURATION_S / 3600:.0f} hours; split it into sessions "
            "(or check that the file's header is not corrupt)")


def _read_soundfile(path: Path, target_sr: int) -> _Accumulator:
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:
        acc = _Accumulator(path.name, int(f.samplerate), int(f.channels), target_sr)
        if f.frames > MAX_DURATION_S * f.samplerate:  # what the header claims, before decoding anything
            raise AudioError(_too_long(path.name))
        for block in f.blocks(blocksize=max(1, int(BLOCK_S * f.samplerate)), dtype="float32", always_2d=True):
            acc.add(block.T)
    return acc


def _read_av(path: Path, target_sr: int) -> _Accumulator:
    import av

    with av.open(str(path)) as container:
        streams = container.streams.audio
        if not streams:
            raise AudioError(f"{path.name}: the file holds no audio stream")
        stream = streams[0]
        sr = int(stream.rate or stream.codec_context.sample_rate or 0)
        channels = int(stream.codec_context.channels or 1)
        acc = _Accumulator(path.name, sr, channels, target_sr)
        resampler = av.AudioResampler(format="fltp", layout=stream.layout.name if stream.layout else None, rate=sr)
        pending: list[np.ndarray] = []
        size = 0
        for frame in container.decode(stream):
            for f in resampler.resample(frame):
                x = f.to_ndarray()
                pending.append(x[:channels])
                size += x.shape[1]
            if size >= BLOCK_S * sr:
                acc.add(np.concatenate(pending, axis=1))
                pending, size = [], 0
        for f in resampler.resample(None):
            pending.append(f.to_ndarray()[:channels])
        if pending:
            acc.add(np.concatenate(pending, axis=1))
    return acc


def decode(path: Path, target_sr: int) -> _Accumulator:
    """Decode in blocks to float32 at `target_sr` (soundfile first, FFmpeg second)."""
    if not path.exists():
        raise AudioError(f"{path}: file not found")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    if not path.is_file():  # a FIFO, socket or device would block or never end
        raise AudioError(f"{path.name}: not a regular file (pipe, socket or device); copy the recording to a file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path.name}: the file is empty (0 bytes)")
    errors = []
    try:
        return _read_soundfile(path, target_sr)
    except AudioError:
        raise
    except MemoryError:
        raise
    except Exception as e:  # libsndfile cannot read it: try FFmpeg
        errors.append(f"soundfile: {type(e).__name__}")
    try:
        return _read_av(path, target_sr)
    except AudioError:
        raise
    except MemoryError:
        raise
    except Exception as e:
        errors.append(f"ffmpeg: {type(e).__name__}")
    raise AudioError(f"{path.name}: not a readable audio file ({'; '.join(errors)}); check that it is a complete, "
                     "uncorrupted recording")


def load_audio(path: Path, cfg: AudioConfig, sha256: str | None = None) -> Audio:
    """Read, check and resample a recording. Raises AudioError for unreadable, too short or silent input.
    `sha256`: the file's hash when the caller already has it (the runner hashes inputs for skip-if-done)."""
    path = Path(path)
    acc = decode(path, cfg.sample_rate)
    if acc.frames == 0:
        raise AudioError(f"{path.name}: the file decodes to no samples")
    duration = acc.frames / acc.sr
    if duration < cfg.min_duration_s:
        raise AudioError(f"{path.name}: recording is {duration:.2f} s long, shorter than the "
                         f"{cfg.min_duration_s} s minimum")
    if acc.dbfs < cfg.silence_dbfs:
        raise AudioError(f"{path.name}: recording is silent (level {acc.dbfs:.0f} dBFS, below "
                         f"{cfg.silence_dbfs:.0f}); check the microphone channel")
    samples = acc.finish()
    return Audio(samples=samples, sample_rate=cfg.sample_rate, source_sample_rate=acc.sr,
                 source_channels=acc.channels, sha256=sha256 or sha256_file(path))
