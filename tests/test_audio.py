
import numpy as np
import pytest
import soundfile as sf

from pipeline.audio import load_audio
from pipeline.config import AudioConfig
from pipeline.errors import AudioError

CFG = AudioConfig()


def _tone(sr, seconds=1.0, channels=1):
    t = np.arange(int(sr * seconds)) / sr
    x = 0.3 * np.sin(2 * np.pi * 220 * t).astype(np.float32)
    return np.stack([x * (0.5 + 0.1 * c) for c in range(channels)], axis=1)


@pytest.mark.parametrize("sr,channels", [(8000, 1), (16000, 2), (44100, 1), (48000, 6)])
def test_any_rate_and_channel_count_becomes_16k(tmp_path, sr, channels):
    p = tmp_path / f"x_{sr}_{channels}.flac"
    sf.write(p, _tone(sr, 1.0, channels), sr)
    a = load_audio(p, CFG)
    kept = channels if channels <= 2 else 1  # more than 2 channels are mixed to mono (bounded memory)
    assert a.sample_rate == 16000 and a.num_channels == kept and a.source_sample_rate == sr
    assert a.source_channels == channels
    assert abs(a.duration_s - 1.0) < 0.01 and a.samples.dtype == np.float32 and len(a.sha256) == 64


def test_compressed_formats_through_ffmpeg(tmp_path, stereo_clip):
    import av  # noqa: F401  (PyAV bundles FFmpeg)

    src, sr = sf.read(stereo_clip, dtype="float32")
    out = tmp_path / "clip.mp3"
    import av as _av

    with _av.open(str(out), "w") as c:
        st = c.add_stream("mp3", rate=sr, layout="stereo")
        frame = _av.AudioFrame.from_ndarray(np.ascontiguousarray(src.T), format="fltp", layout="stereo")
        frame.sample_rate = sr
        for p in st.encode(frame):
            c.mux(p)
        for p in st.encode(None):
            c.mux(p)
    a = load_audio(out, CFG)
    assert a.num_channels == 2 and abs(a.duration_s - len(src) / sr) < 0.2


def test_bad_inputs_give_clear_errors(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        load_audio(empty, CFG)
    fake = tmp_path / "notes.wav"
    fake.write_text("this is not audio at all\n" * 50)
    with pytest.raises(AudioError, match="not a readable audio file"):
        load_audio(fake, CFG)
    good = tmp_path / "good.wav"
    sf.write(good, _tone(16000, 3.0), 16000)
    trunc = tmp_path / "trunc.wav"
    trunc.write_bytes(good.read_bytes()[:30])
    with pytest.raises(AudioError):
        load_audio(trunc, CFG)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000 * 2, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="silent"):
        load_audio(silent, CFG)
    short = tmp_path / "short.wav"
    sf.write(short, _tone(16000, 0.1), 16000)
    with pytest.raises(AudioError, match="shorter"):
        load_audio(short, CFG)
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "missing.wav", CFG)
    import os

    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    with pytest.raises(AudioError, match="not a regular file"):
        load_audio(fifo, CFG)


def test_block_decoding_matches_whole_file_resampling(tmp_path):
    """A file longer than several decode blocks, resampled as a stream, equals resampling it in one go."""
    import librosa

    sr = 44100
    rng = np.random.default_rng(1)
    x = (0.1 * rng.standard_normal(int(sr * 70))).astype(np.float32)  # 70 s: three 30 s blocks
    p = tmp_path / "long.wav"
    sf.write(p, x, sr)
    a = load_audio(p, CFG)
    ref = librosa.resample(x, orig_sr=sr, target_sr=16000, res_type="soxr_hq")
    assert abs(a.samples.shape[1] - ref.shape[0]) <= 2
    n = min(a.samples.shape[1], ref.shape[0])
    assert np.max(np.abs(a.samples[0, 100:n - 100] - ref[100:n - 100])) < 1e-3
