"""Speech recognition adapter: faster-whisper (CTranslate2) with word timestamps and VAD.

Loads once in __init__, transcribes many recordings in __call__. faster-whisper types never leave this
module: the result is a `Transcript` of `Word` records.

Hallucination guards (Whisper invents text in silence and repeats itself): Silero VAD removes non-speech
before decoding; no conditioning on previous text; segments with a high no-speech probability and a low
average log-probability are dropped; words inside long silences are skipped
(`hallucination_silence_threshold`).
"""

from __future__ import annotations

import pipeline.offline  # noqa: F401  (offline env before any ML import)

import logging
from typing import Callable

import numpy as np

from models import store
from pipeline.config import AsrConfig, ModelsConfig
from pipeline.errors import ModelError
from pipeline.records import Audio, ModelInfo, Transcript, Word

log = logging.getLogger(__name__)


class Transcriber:
    def __init__(self, cfg: AsrConfig, models_cfg: ModelsConfig) -> None:
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        resolved = store.resolve(models_cfg.asr, models_cfg.store)
        self.cfg = cfg
        self.model_infos: tuple[ModelInfo, ...] = (resolved.info,)
        try:
            self._model = WhisperModel(
                str(resolved.path), device=cfg.device, compute_type=cfg.compute_type,
                cpu_threads=cfg.cpu_threads, num_workers=1, local_files_only=True,
            )
        except Exception as e:
            raise ModelError(f"cannot load the Whisper model at {resolved.path}: {e}") from e
        self._batched = BatchedInferencePipeline(self._model) if cfg.batch_size > 1 else None
        self._english_only = not self._model.model.is_multilingual

    def __call__(self, audio: Audio, progress: Callable[[float], None] | None = None) -> Transcript:
        """Transcribe the mono mix. `progress(seconds_done)` is called after each decoded segment."""
        cfg = self.cfg
        language = cfg.language
        if self._english_only:
            language = "en"
        kwargs = dict(
            language=language, beam_size=cfg.beam_size, word_timestamps=True, vad_filter=cfg.vad_filter,
            condition_on_previous_text=cfg.condition_on_previous_text,
            no_speech_threshold=cfg.no_speech_threshold, log_prob_threshold=cfg.log_prob_threshold,
            compression_ratio_threshold=cfg.compression_ratio_threshold,
        )
        mono = np.ascontiguousarray(audio.mono, dtype=np.float32)
        if self._batched is not None:
            segments, info = self._batched.transcribe(mono, batch_size=cfg.batch_size, **kwargs)
        else:
            segments, info = self._model.transcribe(
                mono, hallucination_silence_threshold=cfg.hallucination_silence_threshold, **kwargs
            )
        words: list[Word] = []
        for seg in segments:
            if seg.no_speech_prob > cfg.no_speech_threshold and seg.avg_logprob < cfg.log_prob_threshold:
                continue
            for w in seg.words or ():
                text = w.word.strip()
                if not text:
                    continue
                start, end = float(w.start), float(max(w.end, w.start))
                words.append(Word(start=start, end=end, text=text, probability=float(w.probability)))
            if progress is not None:
                progress(float(seg.end))
        words.sort(key=lambda w: (w.start, w.end))
        return Transcript(words=tuple(words), language=info.language,
                          language_probability=float(info.language_probability))
