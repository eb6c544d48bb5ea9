"""Real Whisper (base, int8, CPU) on real speech."""

import jiwer

from pipeline.audio import load_audio


def _norm(text: str) -> str:
    import re

    return re.sub(r"[^a-z' ]+", " ", text.lower()).strip()


def test_pyannote_sample_transcript_is_close_to_reference(transcriber, default_config, pyannote_sample):
    audio = load_audio(pyannote_sample["wav"], default_config.audio)
    tr = transcriber(audio)
    ref = " ".join(line.split(maxsplit=5)[5] for line in pyannote_sample["stm"].read_text().splitlines() if line.strip())
    hyp = " ".join(w.text for w in tr.words)
    wer = jiwer.wer(_norm(ref), _norm(hyp))
    assert wer < 0.35, wer
    assert tr.language == "en"
    assert all(0 <= w.start <= w.end <= audio.duration_s + 0.5 for w in tr.words)
    assert all(a.start <= b.start for a, b in zip(tr.words, tr.words[1:]))


def test_no_words_from_silence_with_noise(transcriber, default_config, tmp_path):
    """Whisper invents text in silence; the VAD and guards must keep low noise wordless."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    p = tmp_path / "noise.wav"
    sf.write(p, (rng.standard_normal(16000 * 8) * 0.003).astype("float32"), 16000)
    tr = transcriber(load_audio(p, default_config.audio))
    assert len(tr.words) <= 2, [w.text for w in tr.words]
