"""Speech recognition adapter: faster-whisper (CTranslate2) with word timestamps and VAD.

Loads once in __init__, transcribes many recordings in __call__. faster-whisper types never leave this
module: the result is a `Transcript` of `Word` records.

What is decoded: the caller's speech regions (the diarization's, `AsrConfig.speech_regions`), packed into
clips of at most 30 s, or where none are given Silero VAD's speech (Silero misses band-limited speech).

Hallucination guards (Whisper invents text in silence and repeats itself): only speech is decoded (the
regions or Silero VAD); no conditioning on previous text; segments with a high no-speech probability and a low
average log-probability are dropped; words inside long silences are skipped
(`hallucination_silence_threshold`).
"""

from __future__ import annotations

import pipeline.offline  # noqa: F401  (offline env before any ML import)

import logging
from typing import Callable, Sequence

import numpy as np

from models import store
from pipeline.config import AsrConfig, ModelsConfig
from pipeline.errors import ModelError
from pipeline.records import Audio, ModelInfo, Transcript, Word
from pipeline.timeline import Interval, windows

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

    def __call__(self, audio: Audio, progress: Callable[[float], None] | None = None,
                 regions: Sequence[Interval] | None = None) -> Transcript:
        """Transcribe the mono mix. `progress(seconds_done)` is called after each decoded segment. `regions`:
        where speech is (seconds; the diarization's segments), decoded as `cfg.speech_regions` says; None:
        Silero VAD alone (`cfg.vad_filter`)."""
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
        if cfg.vad_threshold != 0.5:  # each path keeps faster-whisper's other VAD defaults
            kwargs["vad_parameters"] = ({"threshold": cfg.vad_threshold, "min_silence_duration_ms": 160}
                                        if self._batched is not None else {"threshold": cfg.vad_threshold})
        mono = np.ascontiguousarray(audio.mono, dtype=np.float32)
        clips = None
        if regions is not None and cfg.speech_regions != "vad":
            speech = list(regions)
            if cfg.speech_regions == "union":
                speech += _silero_speech(mono, audio.sample_rate, cfg.vad_threshold)
            clips = speech_clips(speech, audio.duration_s, cfg.regions_pad_s, cfg.regions_max_gap_s)
            if not clips:
                return Transcript(words=(), language=language or "", language_probability=0.0)
        if clips is not None and self._batched is not None:
            segments, info = self._batched.transcribe(
                mono, batch_size=cfg.batch_size, clip_timestamps=[{"start": s, "end": e} for s, e in clips],
                **kwargs)
        elif clips is not None:
            segments, info = self._model.transcribe(
                mono, hallucination_silence_threshold=cfg.hallucination_silence_threshold,
                clip_timestamps=[t for clip in clips for t in clip], **kwargs)
        elif self._batched is not None:
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


# Whisper decodes 30 s windows; a clip a little shorter leaves room for the decoder's last timestamp.
MAX_CLIP_S = 29.5


def speech_clips(regions: Sequence[Interval], duration_s: float, pad_s: float, max_gap_s: float,
                 max_clip_s: float = MAX_CLIP_S) -> list[Interval]:
    """The clips Whisper decodes for speech `regions` (seconds): each region widened by `pad_s` each side and
    kept inside the recording, then packed into sorted, disjoint clips of at most `max_clip_s` that take in
    the gaps between regions up to `max_gap_s` (pipeline.timeline.windows)."""
    padded = [(max(0.0, s - pad_s), min(duration_s, e + pad_s)) for s, e in regions]
    return windows(padded, max_clip_s, max_gap_s)


def _silero_speech(mono: np.ndarray, sample_rate: int, threshold: float) -> list[Interval]:
    """Silero VAD's speech (seconds) with the options the batched faster-whisper path uses by default."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    opts = VadOptions(threshold=threshold, max_speech_duration_s=30, min_silence_duration_ms=160)
    return [(c["start"] / sample_rate, c["end"] / sample_rate)
            for c in get_speech_timestamps(mono, opts, sampling_rate=sample_rate)]
