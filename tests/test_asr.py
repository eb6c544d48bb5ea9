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


def test_channel_path_keeps_crosstalk_off_the_other_channel(transcriber, default_config, flite_synth):
    """Two close-talk microphones each pick up the other speaker 20 dB down, and Whisper transcribes that
    faint speech too. Each channel's words must be its own speaker's only (before the crosstalk gate every
    word appeared on both channels)."""
    import numpy as np

    from pipeline.channels import diarize_channels
    from pipeline.records import Audio
    from pipeline.transcription import transcribe

    synth = flite_synth
    cast = (synth.Part("T", "therapist", "slt"), synth.Part("C", "client", "rms"))
    script = synth.Script("xt", cast, (
        synth.Line("T", "What did you notice when you tried the breathing exercise this week?"),
        synth.Line("C", "My shoulders dropped and I felt much less tense in the evenings.", gap=0.8),
        synth.Line("T", "That sounds like a real change for you.", gap=0.8),
    ))
    rendered = synth.render_script(script, seed=4, channel_of={"T": 0, "C": 1}, crosstalk_db=-20.0)
    audio = Audio(np.ascontiguousarray(rendered.audio.T), 16000, 16000, 2, "0" * 64)
    diar = diarize_channels(audio, default_config.diarization)
    assert diar is not None
    words = transcribe(transcriber, audio, diar, True, None, default_config).words
    said = {"ch0": set(), "ch1": set()}
    for u in rendered.truth.utterances:
        said["ch0" if u.speaker == "T" else "ch1"] |= set(_norm(u.text).split())
    for ch in ("ch0", "ch1"):
        heard = [_norm(w.text) for w in words if w.speaker == ch]
        assert len(heard) >= 8, (ch, heard)
        foreign = [w for w in heard if w and w not in said[ch]]
        assert len(foreign) <= 1, (ch, foreign)  # one misheard word at most, no crosstalk sentences


def test_speech_clips_pad_regions_inside_the_recording_and_pack_them():
    """No model: the clips Whisper decodes for diarized speech (asr.speech_regions)."""
    from models.asr import speech_clips

    regions = [(0.1, 3.0), (3.5, 9.0), (20.0, 26.0), (27.0, 29.9)]
    assert speech_clips(regions, duration_s=30.0, pad_s=0.2, max_gap_s=2.0) == [(0.0, 9.2), (19.8, 30.0)]
    # overlapping speakers' segments are one stretch of speech; a 70 s monologue becomes three clips
    assert speech_clips([(1.0, 4.0), (2.0, 5.0)], 10.0, 0.0, 2.0) == [(1.0, 5.0)]
    assert len(speech_clips([(0.0, 70.0)], 70.0, 0.2, 2.0)) == 3
    assert speech_clips([], 10.0, 0.2, 2.0) == []


def test_transcribing_given_speech_regions_keeps_words_inside_them(transcriber, default_config, pyannote_sample):
    """The mono path hands Whisper the diarization's speech (asr.speech_regions "diarization", the default):
    on real speech with the reference's speech as regions the transcript is as good as Silero's, and
    no word lies outside the padded regions."""
    audio = load_audio(pyannote_sample["wav"], default_config.audio)
    rows = [line.split(maxsplit=5) for line in pyannote_sample["stm"].read_text().splitlines() if line.strip()]
    regions = [(float(r[3]), float(r[4])) for r in rows]
    assert transcriber.cfg.speech_regions == "diarization"
    tr = transcriber(audio, regions=regions)
    wer = jiwer.wer(_norm(" ".join(r[5] for r in rows)), _norm(" ".join(w.text for w in tr.words)))
    assert wer < 0.35, wer
    pad = transcriber.cfg.regions_pad_s + 0.1
    assert tr.words and all(any(s - pad <= w.start and w.end <= e + pad for s, e in regions) for w in tr.words)
    # speech outside the regions is not decoded: the first half's regions give the first half's words only
    first = [(s, e) for s, e in regions if e < audio.duration_s / 2]
    half = transcriber(audio, regions=first)
    assert half.words and max(w.end for w in half.words) <= first[-1][1] + pad
