"""Transcription stage: the session's audio to timed words, on the mono mix or per channel (stereo and
telehealth tracks). The ASR model itself is the adapter `models.asr.Transcriber`, passed in."""

from __future__ import annotations

import dataclasses
from typing import Callable

from pipeline.channels import SPEAKERS as CHANNEL_SPEAKERS
from pipeline.channels import gate_to_speech, words_in_speech
from pipeline.config import Config
from pipeline.levels import apply_gains
from pipeline.records import Audio, Diarization, Levels, Transcript, Word


def transcribe(transcriber: Callable[..., Transcript], audio: Audio, diar: Diarization, channel_path: bool,
               levels: Levels | None, cfg: Config) -> Transcript:
    """Words with times for one session, from the ASR adapter (`models.asr.Transcriber`).

    Mono mix: Whisper decodes the diarization's speech regions (`asr.speech_regions`), with quieter
    speakers raised to the loudest one's level first (pipeline.levels; for the recogniser only). Stereo
    channel path: each channel holds one speaker and is transcribed on its own, muted outside its speaker's
    speech (crosstalk), and its words carry that speaker."""
    if not channel_path:
        gains = {s.speaker: s.asr_gain_db for s in levels.speakers} if levels is not None else {}
        speech = [(s.start, s.end) for s in diar.overlapping]  # what Whisper decodes (asr.speech_regions)
        if not any(g > 0 for g in gains.values()):
            return transcriber(audio, regions=speech)
        # quieter speakers raised to the loudest one's level, for the recogniser only (pipeline.levels)
        louder = apply_gains(audio.mono, audio.sample_rate, diar.overlapping, gains, cfg.levels)
        return transcriber(dataclasses.replace(audio, samples=louder[None, :], source_channels=1), regions=speech)
    words: list[Word] = []
    language, lang_p = "", 0.0
    pad = cfg.diarization.stereo_asr_pad_s
    for spk in diar.speakers:
        ch = CHANNEL_SPEAKERS.index(spk)
        own = [s for s in diar.overlapping if s.speaker == spk]
        one = Audio(samples=gate_to_speech(audio.samples[ch:ch + 1], audio.sample_rate, own, pad),
                    sample_rate=audio.sample_rate, source_sample_rate=audio.source_sample_rate, source_channels=1,
                    sha256=audio.sha256)
        t = transcriber(one)
        words += [Word(w.start, w.end, w.text, w.probability, spk) for w in words_in_speech(t.words, own, pad)]
        if t.language_probability > lang_p:
            language, lang_p = t.language, t.language_probability
    words.sort(key=lambda w: (w.start, w.end))
    return Transcript(words=tuple(words), language=language, language_probability=lang_p)
