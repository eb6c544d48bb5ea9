"""One session, start to finish: `SessionProcessor` (loads models once) and `process_session()` (composes the
stages). Nothing here knows about pools, Ray, file layout or the audit log: that is the runner's business.

The stages are listed once, in order, in `AUDIO_STAGES` (`rupture run`) and `TRANSCRIPT_STAGES` (`rupture
tag`): each `Stage` names the stage a failure reports, its function, and the event reported to
`hook(step, artifact=None, completed=None, total=None)` (pyannote's hook shape) when it is done, which is also
the key of its time in provenance.stage_seconds. `run_stages` drives them:
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
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, cast

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
from pipeline.records import (Audio, Diarization, Event, InputInfo, Levels, ModelInfo, Provenance, Segment,
                              SessionRecord, Speaker, Transcript, Turn, Word)
from pipeline.roles import assign_roles
from pipeline.tagging import rupture_metrics, tag_turns
from pipeline.tracks import AlignedTracks, TrackSet, load_tracks
from pipeline.transcription import transcribe
from pipeline.turns import attribute_words, build_turns, with_roles

if TYPE_CHECKING:  # types only: these load lazily at run time
    import numpy as np

    from models.tagger import MarkerClassifier
    from pipeline.measures import Measures
    from pipeline.roles import RoleAssignment
    from pipeline.transcript_io import ParsedTranscript


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


class Processor(Protocol):
    """What the runner (pipeline.runner) needs from a session processor: `SessionProcessor` (`rupture run`)
    and `TranscriptProcessor` (`rupture tag`) both are one. Built once per worker with the run's Config
    (`processor_factory(cfg)`), then called once per session."""

    has_audio: bool  # the input is a recording (the runner hands it to the exports); False: a transcript

    @property
    def model_infos(self) -> Mapping[str, ModelInfo]:
        """{role: model} for provenance and the audit log."""
        ...

    def __call__(self, req: SessionRequest, hook: Hook = ..., created: str = "") -> SessionRecord: ...


def _tagger_infos(classifier: MarkerClassifier | None) -> dict[str, ModelInfo]:
    if classifier is None:
        return {}
    return {("text_encoder", "tagger_head", "tagger_extra")[min(i, 2)]: m
            for i, m in enumerate(classifier.model_infos)}


class SessionProcessor:
    """Loads every model once; call it once per session. The same object serves a local loop, a process
    pool worker or a Ray actor (setup in __init__, work in __call__). A `Processor`."""

    has_audio: bool = True

    def __init__(self, cfg: Config, hook: Hook = _no_hook) -> None:
        from models.asr import Transcriber
        from models.diarizer import Diarizer

        self.cfg = cfg
        self.transcriber = Transcriber(cfg.asr, cfg.models)
        hook("load_asr")
        self.diarizer = Diarizer(cfg.diarization, cfg.models)
        hook("load_diarization")
        self.classifier: MarkerClassifier | None = None
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
    return run_stages(AUDIO_STAGES, _Run(req, proc, proc.cfg, created), hook).record


# ------------------------------------------------------------------------------------------------ the stages

@dataclass
class _Run:
    """One session while its stages run: each stage reads what earlier ones made and fills its own field."""

    req: SessionRequest
    proc: SessionProcessor | TranscriptProcessor
    cfg: Config
    created: str
    aligned: AlignedTracks | None = None  # the aligned tracks of a telehealth session
    audio: Audio | None = None
    channel_diar: Diarization | None = None  # the exact channel path's diarization, when it applies
    diar: Diarization | None = None
    levels: Levels | None = None
    transcript: Transcript | None = None
    words: tuple[Word, ...] | None = None
    turns: tuple[Turn, ...] = ()  # without roles until the roles stage gives them theirs
    assignment: RoleAssignment | None = None
    parsed: ParsedTranscript | None = None  # `rupture tag`: the transcript read
    conversation: Conversation | None = None
    measures: Measures | None = None
    tagged: tuple[Event, ...] = ()
    record: SessionRecord | None = None

    @property
    def channel_path(self) -> bool:
        return self.channel_diar is not None


@dataclass(frozen=True)
class Conversation:
    """What the stages that need no audio read (`rupture run` and `rupture tag` alike)."""

    duration_s: float
    turns: tuple[Turn, ...]  # with their roles
    words: tuple[Word, ...] | None  # None: a transcript read by `rupture tag`, not transcribed here
    segments: tuple[Segment, ...]
    speakers: tuple[str, ...]
    roles: Mapping[str, str]
    role_confidence: Mapping[str, float]
    role_source: str
    provenance: Provenance


def _always(r: _Run) -> bool:
    return True


def _same(artifact: Any) -> Any:
    return artifact


@dataclass(frozen=True)
class Stage:
    """One step of a session. `run(r)` makes `r.<output>` (None: it only checks); a failure is a SessionError
    naming `name`. When the step is done the hook gets `event` with `report(output)`, and `event` is also the
    key of its time in provenance.stage_seconds (StageTimer: the time since the previous event, so a step
    without an event counts towards the next one that has one). `when(r)` false: the step is skipped."""

    name: str
    run: Callable[[_Run], Any]
    output: str | None
    event: str | None = None
    report: Callable[[Any], Any] = _same
    when: Callable[[_Run], bool] = _always


def run_stages(stages: tuple[Stage, ...], r: _Run, hook: Hook = _no_hook) -> _Run:
    for st in stages:
        if not st.when(r):
            continue
        out = _stage(st.name)(st.run)(r)
        if st.output is not None:
            setattr(r, st.output, out)
        if st.event is not None:
            hook(st.event, st.report(out))
    return r


def _load_audio(r: _Run) -> Audio:
    if r.aligned is not None:
        return r.aligned.audio
    return load_audio(r.req.audio_path, r.cfg.audio, sha256=r.req.input_sha256)


def _audio_models(r: _Run) -> SessionProcessor:
    """The processor of an AUDIO_STAGES run: process_session takes only a SessionProcessor."""
    return cast(SessionProcessor, r.proc)


def _diarize(r: _Run) -> Diarization:
    if r.channel_diar is not None:
        return r.channel_diar
    dc = r.cfg.diarization
    assert r.audio is not None  # the audio stage made it
    return _audio_models(r).diarizer(r.audio, num_speakers=r.req.num_speakers or dc.num_speakers,
                                     min_speakers=dc.min_speakers, max_speakers=dc.max_speakers)


def _require_speech(r: _Run) -> None:
    if not r.diar.overlapping:
        raise SessionError("no speech found in the recording", stage="diarization")


def _speaker_signals(audio: Audio, diar: Diarization, channel_path: bool) -> dict[str, np.ndarray] | np.ndarray:
    """The mono mix, or on the stereo channel path each speaker's own channel."""
    if channel_path:
        return {spk: audio.samples[CHANNEL_SPEAKERS.index(spk)] for spk in diar.speakers}
    return audio.mono


def _levels(r: _Run) -> Levels:
    """Each speaker's level and SNR, with the gain their speech gets before transcription (mono mix only:
    the channel path transcribes each channel on its own)."""
    levels = measure_levels(_speaker_signals(r.audio, r.diar, r.channel_path), r.audio.sample_rate, r.diar,
                            r.cfg.levels)
    return levels if r.channel_path else with_gains(levels, plan_gains(levels, r.cfg.levels))


def _attribute(r: _Run) -> tuple[Word, ...]:
    assert r.transcript is not None  # the transcription stage made it
    if r.channel_path:
        return r.transcript.words  # already carry their channel's speaker
    return attribute_words(r.transcript.words, r.diar.exclusive)


def _assign_roles(r: _Run) -> RoleAssignment:
    # Manifest `therapist`: a speaker label, or a channel "ch0"/"ch1" (the channel path names speakers so).
    return assign_roles(r.turns, r.diar.speakers, r.cfg.roles, therapist_hint=r.req.therapist)


def _audio_conversation(r: _Run) -> Conversation:
    audio, diar, a = r.audio, r.diar, r.assignment
    assert a is not None and r.transcript is not None  # the roles and transcription stages made them
    provenance = Provenance(
        models=dict(r.proc.model_infos), config=to_dict(r.cfg), package_version=__version__, created=r.created,
        input=r.aligned.provenance if r.aligned else InputInfo(path_name=r.req.audio_path.name, sha256=audio.sha256,
                                                               sample_rate=audio.source_sample_rate,
                                                               channels=audio.source_channels),
        diarization_method=diar.method, asr_language=r.transcript.language)
    role_source = "channel" if r.channel_path and a.source == "manifest" else a.source
    return Conversation(audio.duration_s, r.turns, r.words, diar.overlapping, diar.speakers, a.roles,
                        a.confidence, role_source, provenance)


def _read_transcript(r: _Run) -> ParsedTranscript:
    from pipeline.transcript_io import read_transcript

    return read_transcript(r.req.audio_path)


def _transcript_conversation(r: _Run) -> Conversation:
    from models.store import sha256_file

    parsed, cfg = r.parsed, r.cfg
    assert parsed is not None  # the transcript stage read it
    speakers = tuple(dict.fromkeys(t.speaker for t in parsed.turns))
    hint = r.req.therapist or next((s for s, role in parsed.roles.items() if role == "therapist"), None)
    if parsed.roles and all(s in parsed.roles for s in speakers):
        roles, conf, source = dict(parsed.roles), {s: 1.0 for s in speakers}, "transcript"
    else:
        a = assign_roles(parsed.turns, speakers, cfg.roles, therapist_hint=hint)
        roles, conf, source = dict(a.roles), dict(a.confidence), a.source
    provenance = Provenance(
        models=dict(r.proc.model_infos), config=to_dict(cfg), package_version=__version__, created=r.created,
        input=InputInfo(path_name=r.req.audio_path.name,
                        sha256=r.req.input_sha256 or sha256_file(r.req.audio_path), kind="transcript"),
        diarization_method="transcript")
    return Conversation(parsed.duration_s, with_roles(parsed.turns, roles), None, segments_from_turns(parsed.turns),
                        speakers, roles, conf, source, provenance)


def _measures(r: _Run) -> Measures:
    c = r.conversation
    # words exist only when this session was transcribed here (`rupture tag` reads a transcript without them)
    return measure_conversation(c.turns, c.words or (), c.segments, c.roles, c.duration_s, r.cfg.measures,
                                asr_words=c.words is not None)


def _tags(r: _Run) -> tuple[Event, ...]:
    classifier = r.proc.classifier
    assert classifier is not None and r.measures is not None  # the stage runs only when _tagging_on
    predictions = classifier(r.conversation.turns)
    return tag_turns(r.conversation.turns, r.measures.features, predictions, classifier.tagging_config())


def _tagging_on(r: _Run) -> bool:
    return r.cfg.tagging.enabled and r.proc.classifier is not None


def _record(r: _Run) -> SessionRecord:
    c = r.conversation
    assert r.measures is not None  # the measures stage made them
    events: tuple[Event, ...] = r.measures.events
    metrics = r.measures.metrics
    if _tagging_on(r):
        events = tuple(sorted(events + r.tagged, key=lambda e: (e.start, e.type)))
        # rupture/repair counts, resolved/unresolved
        metrics = dataclasses.replace(metrics, alliance=rupture_metrics(r.tagged))
    tt = talk_time(c.segments)
    spk_records = tuple(
        Speaker(id=s, role=c.roles.get(s, "unknown"), talk_time_s=float(tt.get(s, 0.0)),
                role_confidence=float(c.role_confidence.get(s, 0.0)), role_source=c.role_source)
        for s in c.speakers
    )
    return SessionRecord(session_id=r.req.session_id, duration_s=c.duration_s, speakers=spk_records, turns=c.turns,
                         words=c.words, events=events, metrics=metrics, provenance=c.provenance,
                         metadata=dict(r.req.metadata), segments=c.segments)


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
    return dataclasses.replace(rec, prosody=res.turns,
                               metrics=dataclasses.replace(rec.metrics, prosody=prosody_metrics(res, cfg.prosody)),
                               events=with_prosody_evidence(rec.events, res.turns, rec.turns))


def _quality(r: _Run) -> SessionRecord:
    quality = assess_quality(r.levels, r.diar, r.words, r.assignment.roles, r.cfg.quality)
    return dataclasses.replace(r.record, quality=quality)


# The stages that need no audio, shared by both lists: measures, tagging, the record.
ANALYSIS_STAGES: tuple[Stage, ...] = (
    Stage("analysis", _measures, "measures", "measures"),
    Stage("analysis", _tags, "tagged", "tagging", when=_tagging_on),
    Stage("analysis", _record, "record"),
)

# `rupture run`: one recording (or aligned tracks) to a SessionRecord. Stage names are those failures report
# (SessionError.stage); events are what the hook hears and the keys of provenance.stage_seconds.
AUDIO_STAGES: tuple[Stage, ...] = (
    Stage("audio", lambda r: load_tracks(r.req.tracks, r.cfg.audio, r.req.input_sha256), "aligned",
          when=lambda r: r.req.tracks is not None),
    Stage("audio", _load_audio, "audio", "audio"),
    Stage("diarization", lambda r: diarize_channels(r.audio, r.cfg.diarization), "channel_diar",
          when=lambda r: r.cfg.diarization.stereo_channel_path and r.audio.num_channels == 2),
    Stage("diarization", _diarize, "diar", "diarization"),
    Stage("diarization", _require_speech, None),
    Stage("levels", _levels, "levels", "levels"),
    Stage("transcription", lambda r: transcribe(_audio_models(r).transcriber, r.audio, r.diar, r.channel_path,
                                                r.levels, r.cfg), "transcript", "transcription"),
    Stage("attribution", _attribute, "words"),
    Stage("turns", lambda r: build_turns(r.words, {}), "turns"),
    Stage("roles", _assign_roles, "assignment"),
    Stage("roles", lambda r: with_roles(r.turns, r.assignment.roles), "turns", "turns"),
    Stage("analysis", _audio_conversation, "conversation"),
    *ANALYSIS_STAGES,
    Stage("prosody", lambda r: add_prosody(r.record, r.audio, r.diar, r.channel_path, r.cfg), "record", "prosody",
          report=lambda rec: rec.prosody, when=lambda r: r.cfg.prosody.enabled),
    Stage("quality", _quality, "record", "quality", report=lambda rec: rec.quality),
)

# `rupture tag`: an existing transcript to a SessionRecord without words, prosody or quality.
TRANSCRIPT_STAGES: tuple[Stage, ...] = (
    Stage("transcript", _read_transcript, "parsed", "transcript"),
    Stage("transcript", _transcript_conversation, "conversation"),
    *ANALYSIS_STAGES,
)


class TranscriptProcessor:
    """Text-only mode (`rupture tag`): an existing transcript in, the same analysis out (no `words`).
    Loads only the tagger. A `Processor`, like SessionProcessor, so the runner treats both alike."""

    has_audio: bool = False

    def __init__(self, cfg: Config, hook: Hook = _no_hook) -> None:
        self.cfg = cfg
        self.classifier: MarkerClassifier | None = None
        if cfg.tagging.enabled:
            from models.tagger import MarkerClassifier

            self.classifier = MarkerClassifier(cfg.tagging, cfg.models)
            hook("load_tagger")

    @property
    def model_infos(self) -> dict[str, ModelInfo]:
        return _tagger_infos(self.classifier)

    def __call__(self, req: SessionRequest, hook: Hook = _no_hook, created: str = "") -> SessionRecord:
        return run_stages(TRANSCRIPT_STAGES, _Run(req, self, self.cfg, created), hook).record
