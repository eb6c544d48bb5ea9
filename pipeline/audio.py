"""Audio intake: any common format and sample rate, mono or multichannel -> `Audio` at 16 kHz float32.

soundfile (libsndfile: wav, flac, ogg, ...) is tried first; PyAV (FFmpeg: mp3, m4a, mp4, webm, ...) second.
Unreadable, empty or silent input raises AudioError with a message that says what is wrong with the file
(never its content).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from pipeline.config import AudioConfig
from pipeline.errors import AudioError
from pipeline.records import Audio


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_soundfile(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (n, channels)
    return data.T.copy(), int(sr)


def _read_av(path: Path) -> tuple[np.ndarray, int]:
    import av

    with av.open(str(path)) as container:
        streams = container.streams.audio
        if not streams:
            raise AudioError(f"{path.name}: the file holds no audio stream")
        stream = streams[0]
        sr = int(stream.rate or stream.codec_context.sample_rate or 0)
        channels = int(stream.codec_context.channels or 1)
        resampler = av.AudioResampler(format="fltp", layout=stream.layout.name if stream.layout else None, rate=sr)
        chunks = []
        for frame in container.decode(stream):
            for f in resampler.resample(frame):
                chunks.append(f.to_ndarray())
        for f in resampler.resample(None):
            chunks.append(f.to_ndarray())
    if not chunks or sr <= 0:
        raise AudioError(f"{path.name}: the audio stream decodes to no samples")
    data = np.concatenate(chunks, axis=1).astype(np.float32)
    return data[: max(channels, 1)], sr


def decode(path: Path) -> tuple[np.ndarray, int]:
    """Decode to (channels, n) float32 in [-1, 1] at the file's own rate."""
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
        return _read_soundfile(path)
    except AudioError:
        raise
    except Exception as e:  # libsndfile cannot read it: try FFmpeg
        errors.append(f"soundfile: {type(e).__name__}")
    try:
        return _read_av(path)
    except AudioError:
        raise
    except Exception as e:
        errors.append(f"ffmpeg: {type(e).__name__}")
    raise AudioError(f"{path.name}: not a readable audio file ({'; '.join(errors)}); check that it is a complete, "
                     "uncorrupted recording")


def resample(x: np.ndarray, sr: int, target: int) -> np.ndarray:
    if sr == target:
        return x.astype(np.float32, copy=False)
    import librosa

    return librosa.resample(x, orig_sr=sr, target_sr=target, res_type="soxr_hq", axis=-1).astype(np.float32)


def load_audio(path: Path, cfg: AudioConfig) -> Audio:
    """Read, check and resample a recording. Raises AudioError for unreadable, too short or silent input."""
    path = Path(path)
    data, sr = decode(path)
    if data.ndim != 2 or data.shape[1] == 0:
        raise AudioError(f"{path.name}: the file decodes to no samples")
    if not np.isfinite(data).all():
        raise AudioError(f"{path.name}: the audio holds invalid (NaN/inf) samples; the file is corrupt")
    duration = data.shape[1] / sr
    if duration < cfg.min_duration_s:
        raise AudioError(f"{path.name}: recording is {duration:.2f} s long, shorter than the "
                         f"{cfg.min_duration_s} s minimum")
    rms = float(np.sqrt(np.mean(np.square(data, dtype=np.float64))))
    dbfs = 20 * np.log10(max(rms, 1e-12))
    if dbfs < cfg.silence_dbfs:
        raise AudioError(f"{path.name}: recording is silent (level {dbfs:.0f} dBFS, below {cfg.silence_dbfs:.0f}); "
                         "check the microphone channel")
    samples = resample(data, sr, cfg.sample_rate)
    return Audio(samples=samples, sample_rate=cfg.sample_rate, source_sample_rate=sr,
                 source_channels=int(data.shape[0]), sha256=file_sha256(path))
