"""One session, start to finish: `SessionProcessor` (loads models once) and `process_session()` (composes the
stages). Nothing here knows about pools, Ray, file layout or the audit log: that is the runner's business.

Stages, each reported to `hook(step, artifact=None, completed=None, total=None)` (pyannote's hook shape):
  audio -> diarization (pyannote, or exact channels for stereo one-speaker-per-channel) -> levels (each
  speaker's speech level and SNR; on the mono mix, quieter speakers raised to the loudest one's level for
  transcription only) -> transcription -> attribution (every word one speaker, exclusive track) -> roles
  -> turns -> measures -> tagging -> prosody (per-turn voice measures, vocal synchrony; evidence only,
  after the tagger) -> quality (word coverage per speaker, warnings: whether the numbers can be trusted)
"""

from __future__ import annotations

import pipeline.offline  # noqa: F401

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

from pipeline import __version__
from pipeline.audio import load_audio
from pipeline.channels import SPEAKERS as CHANNEL_SPEAKERS
from pipeline.channels import diarize_channels
from pipeline.config import Config, to_dict
from pipeline.errors import RuptureError, SessionError
from pipeline.levels import measure_levels, plan_gains, with_gains
from pipeline.measures import measure_conversation, segments_from_turns, talk_time
from pipeline.prosody import analyse_prosody, prosody_metrics, with_prosody_evidence
from pipeline.quality import assess_quality
from pipeline.records import (Audio, Diarization, Event, Levels, ModelInfo, Provenance, Segment, SessionRecord,
                              Speaker, Turn, Word)
from pipeline.roles import assign_roles
from pipeline.tagging import rupture_metrics, tag_turns
from pipeline.tracks import TrackSet, load_tracks
from pipeline.transcription import transcribe
from pipeline.turns import attribute_words, build_turns, with_roles


class Hook(Protocol):
    def __call__(self, step: str, artifact: Any = None, *, completed: float | None = None,
                 total: float | None = None) -> None: ...


def _no_hook(step: str, artifact: Any = None, *, completed: float | None = None, total: float | None = None) -> None:
    return None


@dataclass
class StageTimer:
    """A hook that records wall time per step (the time between one step's report and the next)."""

    inner: Hook = _no_hook
    times: dict[str, float] = field(default_factory=dict)
    _last: float = field(default_factory=time.perf_counter)

    def __call__(self, step: str, artifact: Any = None, *, completed: float | None = None,
                 total: float | None = None) -> None:
        if completed is None:  # a finished step
            now = time.perf_counter()
            self.times[step] = self.times.get(step, 0.0) + now - self._last
            self._last = now
        self.inner(step, artifact, completed=completed, total=total)

    def start(self) -> None:
        self._last = time.perf_counter()


@dataclass(frozen=True)
class SessionRequest:
    session_id: str
    audio_path: Path
    num_speakers: int | None = None
    therapist: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    input_sha256: str | None = None  # the runner hashes each input once (skip check); None: hash it here
    tracks: TrackSet | None = None  # one file per participant (telehealth): aligned, one channel each


def analyse_conversation(session_id: str, duration_s: float, turns: tuple[Turn, ...], words: tuple[Word, ...] | None,
                         segments: tuple[Segment, ...], speakers: tuple[str, ...], roles: Mapping[str, str],
                         role_confidence: Mapping[str, float], role_source: str, classifier: Any, cfg: Config,
                         provenance: Provenance, metadata: Mapping[str, Any], hook: Hook = _no_hook
                         ) -> SessionRecord:
    """The stages that need no audio (shared by `rupture run` and `rupture tag`); `turns` carry their roles."""
    # words exist only when this session was transcribed here (`rupture tag` reads a transcript without them)
    measures = measure_conversation(turns, words or (), segments, roles, duration_s, cfg.measures,
                                    asr_words=words is not None)
    hook("measures", measures)
    events: tuple[Event, ...] = measures.events
    metrics: dict[str, Any] = dict(measures.metrics)
    if cfg.tagging.enabled and classifier is not None:
        predictions = classifier(turns)
        tagged = tag_turns(turns, measures.features, predictions, classifier.tagging_config())
        events = tuple(sorted(events + tagged, key=lambda e: (e.start, e.type)))
        metrics["alliance"] = rupture_metrics(tagged)  # rupture/repair counts, resolved/unresolved
        hook("tagging", tagged)
    tt = talk_time(segments)
    spk_records = tuple(
        Speaker(id=s, role=roles.get(s, "unknown"), talk_time_s=float(tt.get(s, 0.0)),
                role_confidence=float(role_confidence.get(s, 0.0)), role_source=role_source)
        for s in speakers
    )
    return SessionRecord(session_id=session_id, duration_s=duration_s, speakers=spk_records, turns=turns,
                         words=words, events=events, metrics=metrics, provenance=provenance, metadata=metadata,
                         segments=segments)


def model_provenance(infos: Mapping[str, ModelInfo]) -> dict[str, dict[str, str]]:
    """{role: {name, version, sha256}} for provenance and the audit log."""
    return {k: {"name": m.name, "version": m.version, "sha256": m.sha256} for k, m in infos.items()}


def _tagger_infos(classifier: Any) -> dict[str, ModelInfo]:
    if classifier is None:
        return {}
    return {("text_encoder", "tagger_head", "tagger_extra")[min(i, 2)]: m
            for i, m in enumerate(classifier.model_infos)}


class SessionProcessor:
    """Loads every model once; call it once per session. The same object serves a local loop, a process
    pool worker or a Ray actor (setup in __init__, work in __call__)."""

    def __init__(self, cfg: Config, hook: Hook = _no_hook) -> None:
        from models.asr import Transcriber
        from models.diarizer import Diarizer

        self.cfg = cfg
        self.transcriber = Transcriber(cfg.asr, cfg.models)
        hook("load_asr")
        self.diarizer = Diarizer(cfg.diarization, cfg.models)
        hook("load_diarization")
        self.classifier = None
        if cfg.tagging.enabled:
            from models.tagger import MarkerClassifier

            self.classifier = MarkerClassifier(cfg.tagging, cfg.models)
            hook("load_tagger")
        if cfg.prosody.enabled:
            from pipeline.prosody import warm_up

            warm_up(cfg.prosody, cfg.audio.sample_rate)  # librosa's compiled kernels load here, not in session 1
            hook("load_prosody")

    @property
    def model_infos(self) -> dict[str, ModelInfo]:
        out = {"asr": self.transcriber.model_infos[0]}
        for i, m in enumerate(self.diarizer.model_infos):
            out[("segmentation", "embedding", "diarization_extra")[min(i, 2)]] = m
        return {**out, **_tagger_infos(self.classifier)}

    def __call__(self, req: SessionRequest, hook: Hook = _no_hook, created: str = "") -> SessionRecord:
        return process_session(req, self, hook=hook, created=created)


def _stage(name: str):
    """Wrap a stage so that any unexpected failure is a SessionError naming the stage."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*a: Any, **k: Any) -> Any:
            try:
                return fn(*a, **k)
            except SessionError:
                raise
            except RuptureError as e:
                raise SessionError(str(e), stage=name) from e
            except MemoryError as e:
                raise SessionError("out of memory", stage=name) from e
            except Exception as e:
                detail = f": {_safe_message(e)}" if name in _NO_TEXT_STAGES else ""
                raise SessionError(f"{type(e).__name__} in stage {name}{detail}", stage=name) from e
        return run

    return deco


# Stages that run before any transcript text exists: a library's message there may help and cannot quote
# what was said. From transcription on (and for every transcript read by `rupture tag`), only the error's
# type is reported: a message such as `could not convert string to float: '<a client's words>'` would
# otherwise reach audit.jsonl, failure.json, index.html and stderr.
_NO_TEXT_STAGES = frozenset({"audio", "diarization", "levels"})


def _safe_message(e: Exception) -> str:
    """Library error messages can quote data; keep them short and single-line."""
    msg = str(e).splitlines()[0] if str(e) else ""
    return msg[:200]


def process_session(req: SessionRequest, proc: SessionProcessor, hook: Hook = _no_hook, created: str = "") -> SessionRecord:
    cfg = proc.cfg
    aligned = _stage("audio")(load_tracks)(req.tracks, cfg.audio, req.input_sha256) if req.tracks else None
    audio: Audio = aligned.audio if aligned else _stage("audio")(load_audio)(req.audio_path, cfg.audio,
                                                                             sha256=req.input_sha256)
    hook("audio", audio)

    diar: Diarization | None = None
    channel_path = False
    if cfg.diarization.stereo_channel_path and audio.num_channels == 2:
        diar = _stage("diarization")(diarize_channels)(audio, cfg.diarization)
        channel_path = diar is not None
    if diar is None:
        diar = _stage("diarization")(proc.diarizer)(
            audio, num_speakers=req.num_speakers or cfg.diarization.num_speakers,
            min_speakers=cfg.diarization.min_speakers, max_speakers=cfg.diarization.max_speakers)
    hook("diarization", diar)
    if not diar.overlapping:
        raise SessionError("no speech found in the recording", stage="diarization")

    levels = _stage("levels")(_levels)(audio, diar, channel_path, cfg)
    hook("levels", levels)

    transcript = _stage("transcription")(transcribe)(proc.transcriber, audio, diar, channel_path, levels, cfg)
    hook("transcription", transcript)

    if channel_path:
        words = transcript.words  # already carry their channel's speaker
    else:
        words = _stage("attribution")(attribute_words)(transcript.words, diar.exclusive)
    provisional = build_turns(words, {})
    # Manifest `therapist`: a speaker label, or a channel "ch0"/"ch1" (the channel path names speakers so).
    assignment = _stage("roles")(assign_roles)(provisional, diar.speakers, cfg.roles, therapist_hint=req.therapist)
    turns = with_roles(provisional, assignment.roles)
    hook("turns", turns)

    provenance = Provenance(
        models=model_provenance(proc.model_infos), config=to_dict(cfg), package_version=__version__,
        created=created,
        input=aligned.provenance if aligned else {"path_name": req.audio_path.name, "sha256": audio.sha256,
                                                  "sample_rate": audio.source_sample_rate,
                                                  "channels": audio.source_channels},
        diarization_method=diar.method, asr_language=transcript.language)
    role_source = "channel" if channel_path and assignment.source == "manifest" else assignment.source
    rec = _stage("analysis")(analyse_conversation)(
        req.session_id, audio.duration_s, turns, words, diar.overlapping, diar.speakers, assignment.roles,
        assignment.confidence, role_source, proc.classifier, cfg, provenance, dict(req.metadata), hook)
    if cfg.prosody.enabled:
        rec = _stage("prosody")(add_prosody)(rec, audio, diar, channel_path, cfg)
        hook("prosody", rec.prosody)
    quality = _stage("quality")(assess_quality)(levels, diar, words, assignment.roles, cfg.quality)
    hook("quality", quality)
    return dataclasses.replace(rec, quality=quality)


def _speaker_signals(audio: Audio, diar: Diarization, channel_path: bool) -> Any:
    """The mono mix, or on the stereo channel path each speaker's own channel."""
    if channel_path:
        return {spk: audio.samples[CHANNEL_SPEAKERS.index(spk)] for spk in diar.speakers}
    return audio.mono


def _levels(audio: Audio, diar: Diarization, channel_path: bool, cfg: Config) -> Levels:
    """Each speaker's level and SNR, with the gain their speech gets before transcription (mono mix only:
    the channel path transcribes each channel on its own)."""
    levels = measure_levels(_speaker_signals(audio, diar, channel_path), audio.sample_rate, diar, cfg.levels)
    return levels if channel_path else with_gains(levels, plan_gains(levels, cfg.levels))


def add_prosody(rec: SessionRecord, audio: Audio, diar: Diarization, channel_path: bool, cfg: Config) -> SessionRecord:
    """Per-turn voice measures, `metrics.prosody` (baselines, vocal synchrony) and the prosodic evidence of
    rupture/repair events. On the mono mix: each speaker's exclusive-track time minus the others' speech.
    On the stereo channel path: each speaker's own channel wherever its speech activity says they talk,
    overlaps included (the other voice is on the other channel; that is what the channel path is for)."""
    if channel_path:
        own_track, others = diar.overlapping, ()
    else:
        own_track, others = diar.exclusive, diar.overlapping
    signals = _speaker_signals(audio, diar, channel_path)
    res = analyse_prosody(signals, audio.sample_rate, rec.turns, rec.words or (), own_track, others, cfg.prosody)
    return dataclasses.replace(rec, prosody=res.turns, metrics={**rec.metrics, "prosody": prosody_metrics(res, cfg.prosody)},
                               events=with_prosody_evidence(rec.events, res.turns, rec.turns))


class TranscriptProcessor:
    """Text-only mode (`rupture tag`): an existing transcript in, the same analysis out (no `words`).
    Loads only the tagger. Same shape as SessionProcessor so the runner treats both alike."""

    has_audio = False

    def __init__(self, cfg: Config, hook: Hook = _no_hook) -> None:
        self.cfg = cfg
        self.classifier = None
        if cfg.tagging.enabled:
            from models.tagger import MarkerClassifier

            self.classifier = MarkerClassifier(cfg.tagging, cfg.models)
            hook("load_tagger")

    @property
    def model_infos(self) -> dict[str, ModelInfo]:
        return _tagger_infos(self.classifier)

    def __call__(self, req: SessionRequest, hook: Hook = _no_hook, created: str = "") -> SessionRecord:
        from models.store import sha256_file
        from pipeline.transcript_io import read_transcript

        parsed = _stage("transcript")(read_transcript)(req.audio_path)
        hook("transcript", parsed)
        speakers = tuple(dict.fromkeys(t.speaker for t in parsed.turns))
        hint = req.therapist or next((s for s, r in parsed.roles.items() if r == "therapist"), None)
        if parsed.roles and all(s in parsed.roles for s in speakers):
            roles, conf, source = dict(parsed.roles), {s: 1.0 for s in speakers}, "transcript"
        else:
            a = assign_roles(parsed.turns, speakers, self.cfg.roles, therapist_hint=hint)
            roles, conf, source = dict(a.roles), dict(a.confidence), a.source
        provenance = Provenance(
            models=model_provenance(self.model_infos), config=to_dict(self.cfg), package_version=__version__,
            created=created,
            input={"path_name": req.audio_path.name, "sha256": req.input_sha256 or sha256_file(req.audio_path),
                   "kind": "transcript"},
            diarization_method="transcript")
        segments = segments_from_turns(parsed.turns)
        turns = with_roles(parsed.turns, roles)
        return _stage("analysis")(analyse_conversation)(
            req.session_id, parsed.duration_s, turns, None, segments, speakers, roles, conf, source,
            self.classifier, self.cfg, provenance, dict(req.metadata), hook)
