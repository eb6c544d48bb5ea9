"""Typed records that cross stage boundaries.

Every record is a frozen dataclass; sequences inside are tuples; times are float seconds from the start
of the recording. Library types (faster-whisper segments, pyannote annotations, HF outputs) are converted
inside the model adapters and never appear here.

Flow:  Audio -> Transcript (words) + Diarization (segments) -> Turns + Speakers -> Measures -> Events
       -> SessionRecord (serialised as session.json, see ../shared/CONTRACT.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

import numpy as np

SCHEMA_VERSION = "1"

Role = Literal["therapist", "client", "other", "unknown"]
ROLES: tuple[str, ...] = ("therapist", "client", "other", "unknown")

EVENT_TYPES: tuple[str, ...] = (
    "rupture",
    "repair",
    "interruption",
    "backchannel",
    "overlap",
    "long_pause",
    "talk_time_imbalance",
)

WITHDRAWAL_SUBTYPES: tuple[str, ...] = (
    "withdrawal.denial",
    "withdrawal.minimal_response",
    "withdrawal.abstract_communication",
    "withdrawal.avoidant_storytelling",
    "withdrawal.topic_shift",
    "withdrawal.deferential_appeasing",
    "withdrawal.content_affect_split",
    "withdrawal.self_criticism_hopelessness",
)
CONFRONTATION_SUBTYPES: tuple[str, ...] = (
    "confrontation.complaint_about_therapist",
    "confrontation.complaint_about_activities",
    "confrontation.complaint_about_parameters",
    "confrontation.complaint_about_progress",
    "confrontation.rejects_intervention",
    "confrontation.defends_self",
    "confrontation.efforts_to_control",
)
RUPTURE_SUBTYPES: tuple[str, ...] = WITHDRAWAL_SUBTYPES + CONFRONTATION_SUBTYPES
REPAIR_SUBTYPES: tuple[str, ...] = (
    "clarifies_misunderstanding",
    "changes_tasks_goals",
    "provides_rationale",
    "invites_discussion",
    "acknowledges_contribution",
    "discloses_internal_experience",
    "links_to_pattern",
    "validates_defensive_posture",
    "redirects",
)
INTERRUPTION_SUBTYPES: tuple[str, ...] = ("successful", "unsuccessful")

# The tagger's label set and its per-turn prediction record (models.tagger makes them, pipeline.tagging
# decides on them).
LABELS: tuple[str, ...] = ("none",) + WITHDRAWAL_SUBTYPES + CONFRONTATION_SUBTYPES + REPAIR_SUBTYPES
FAMILIES: tuple[str, ...] = ("withdrawal", "confrontation", "repair", "none")


def family_of(label: str) -> str:
    if label == "none":
        return "none"
    if label in REPAIR_SUBTYPES:
        return "repair"
    return label.split(".", 1)[0]


def role_allows(role: str, label: str) -> bool:
    """Rupture subtypes on client turns, repairs on therapist turns, none on any; all when role unknown."""
    fam = family_of(label)
    if fam == "none":
        return True
    if role == "client":
        return fam in ("withdrawal", "confrontation")
    if role == "therapist":
        return fam == "repair"
    if role == "other":
        return False
    return True  # unknown


def role_mask(role: str, labels: Sequence[str] = LABELS) -> np.ndarray:
    return np.array([role_allows(role, lab) for lab in labels], dtype=bool)


@dataclass(frozen=True)
class MarkerPrediction:
    """Calibrated label probabilities for one turn (they sum to 1 over the labels the role allows)."""

    turn_index: int
    probs: tuple[tuple[str, float], ...]
    # the model's raw scores (log-odds) of "rupture" and "repair" for this turn, when it gives them: the
    # session-context stage (`in_context`) works on these
    rupture_logit: float | None = None
    repair_logit: float | None = None

    def prob(self, label: str) -> float:
        return dict(self.probs).get(label, 0.0)

    def family_probs(self) -> dict[str, float]:
        out = {f: 0.0 for f in FAMILIES}
        for lab, p in self.probs:
            out[family_of(lab)] += p
        return out

    def best_subtype(self, family: str) -> tuple[str, float]:
        """Most likely subtype of a family, and its share of the family's mass."""
        items = [(lab, p) for lab, p in self.probs if family_of(lab) == family]
        lab, p = max(items, key=lambda x: x[1])
        total = sum(q for _, q in items)
        return lab, (p / total if total > 0 else 0.0)


@dataclass(frozen=True)
class Audio:
    """Decoded audio, resampled to `sample_rate`.

    `samples` has shape (channels, n) and dtype float32; `mono` is the channel mean. Files with more than
    two channels are mixed to one at decode time (pipeline.audio); the original file's channel count and
    rate are kept for provenance. Two channels stay separate for the stereo (one speaker per channel) path.
    """

    samples: np.ndarray
    sample_rate: int
    source_sample_rate: int
    source_channels: int
    sha256: str

    @property
    def duration_s(self) -> float:
        return float(self.samples.shape[1]) / float(self.sample_rate)

    @property
    def num_channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def mono(self) -> np.ndarray:
        if self.samples.shape[0] == 1:
            return self.samples[0]
        return self.samples.mean(axis=0).astype(np.float32)


@dataclass(frozen=True)
class Word:
    """One recognised word. `speaker` is None until attribution (pipeline.turns.attribute_words)."""

    start: float
    end: float
    text: str
    probability: float
    speaker: str | None = None


@dataclass(frozen=True)
class Transcript:
    words: tuple[Word, ...]
    language: str
    language_probability: float = 1.0


@dataclass(frozen=True)
class Segment:
    """A stretch of time in which one speaker talks (a diarization segment)."""

    start: float
    end: float
    speaker: str

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Diarization:
    """Who spoke when.

    `overlapping` may hold simultaneous segments of different speakers (use it for overlaps and
    interruptions); `exclusive` has at most one speaker at any time (use it to give each word a speaker).
    `method` is "pyannote" or "channels" (stereo, one speaker per channel) or "transcript" (text mode).
    """

    overlapping: tuple[Segment, ...]
    exclusive: tuple[Segment, ...]
    speakers: tuple[str, ...]
    method: str


@dataclass(frozen=True)
class Turn:
    """A maximal run of one speaker's words. `role` is that speaker's role."""

    index: int
    speaker: str
    role: str
    start: float
    end: float
    text: str
    word_count: int


@dataclass(frozen=True)
class Speaker:
    id: str
    role: str
    talk_time_s: float
    role_confidence: float
    role_source: str  # "manifest" | "channel" | "inferred" | "transcript"


@dataclass(frozen=True)
class Event:
    """A flagged moment (CONTRACT.md `events`). `details` holds extra, JSON-able key/value pairs
    (cue values, probabilities) that are written as additional keys of the event object."""

    type: str
    subtype: str | None
    start: float
    end: float
    speaker: str | None
    target_speaker: str | None
    turn_index: int | None
    confidence: float
    evidence: str
    resolved: bool | None = None
    repair_turn_index: int | None = None
    details: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {self.type!r}")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence {self.confidence} outside [0, 1]")
        if self.end < self.start:
            raise ValueError(f"event ends ({self.end}) before it starts ({self.start})")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    sha256: str


@dataclass(frozen=True)
class Provenance:
    """What made a session record: session.json "provenance" (CONTRACT.md). The session writes the first
    group (pipeline.session), the runner the second with the outputs (pipeline.runner.write_outputs), purge
    `purged`. A field a file does not carry is None and is not written; keys this version does not know are
    kept in `other`, in their order, after the known ones (pipeline.serialize: provenance_to_dict/_from_dict).
    Values are as read from JSON: readers of files from elsewhere check their types."""

    models: Any = None  # {role: {name, version, sha256}}
    config: Any = None  # the run's config (pipeline.config.to_dict)
    package_version: Any = None
    created: Any = None  # ISO 8601 time the record was made
    input: Any = None  # {path_name, sha256, sample_rate, channels} | one file per participant | transcript
    diarization_method: Any = None
    asr_language: Any = None
    config_digest: Any = None  # runner: the digest that decides skip-if-done
    stage_seconds: Any = None
    consent: Any = None
    attempt: Any = None  # runner: the attempt id its audit lines carry
    outputs: Any = None  # runner: the files written beside session.json (relative paths)
    purged: Any = None  # purge: what was deleted and when
    other: Mapping[str, Any] = field(default_factory=dict)

    @property
    def input_sha256(self) -> str | None:
        sha = self.input.get("sha256") if isinstance(self.input, Mapping) else None
        return sha if isinstance(sha, str) else None


PROVENANCE_FIELDS: tuple[str, ...] = ("models", "config", "package_version", "created", "input",
                                      "diarization_method", "asr_language", "config_digest", "stage_seconds",
                                      "consent", "attempt", "outputs", "purged")


@dataclass(frozen=True)
class SessionRecord:
    """Everything written to session.json. `metrics` and `metadata` are JSON-able mappings built once and
    never mutated; `provenance` is a `Provenance`."""

    session_id: str
    duration_s: float
    speakers: tuple[Speaker, ...]
    turns: tuple[Turn, ...]
    words: tuple[Word, ...] | None
    events: tuple[Event, ...]
    metrics: Mapping[str, Any]
    provenance: Provenance
    metadata: Mapping[str, Any] = field(default_factory=dict)
    segments: tuple[Segment, ...] = ()  # overlapping diarization track, for RTTM and overlap displays
    prosody: tuple[TurnProsody, ...] = ()  # per-turn voice measures (audio mode; pipeline.prosody)
    quality: Quality | None = None  # recording quality and trust (audio mode; pipeline.quality)
    schema_version: str = SCHEMA_VERSION


@dataclass(frozen=True)
class TurnFeatures:
    """Conversational cues of one turn, computed by pipeline.measures and used by the tagger.

    latency_s: start of this turn minus the end of the previous turn by another speaker (negative when it
    began in overlap; None for the first turn or when the previous turn is by the same speaker).
    """

    turn_index: int
    word_count: int
    latency_s: float | None
    follows_question: bool  # the previous other-speaker turn is a question or an invitation
    minimal_response: bool  # few words after a question/invitation
    interrupts_previous: bool  # this turn started as an interruption of the previous speaker
    was_interrupted: bool  # another speaker interrupted this turn
    overlap_s: float = 0.0  # time this turn overlaps other speakers' speech


@dataclass(frozen=True)
class TurnProsody:
    """Voice measures of one turn (pipeline.prosody), on its speaker's own speech only: frames where the
    exclusive diarization track gives the time to that speaker and no other speaker talks (overlaps
    excluded). A value is None when it cannot be measured; `note` then says why ("" when all are present).

    f0_*: pyin F0 over voiced frames: the turn's typical F0 (interquartile mean, a median that is not stuck
    on pyin's pitch grid) in Hz and in semitones re 100 Hz, and the 10th-90th percentile range (semitones);
    intensity_db: RMS level (dBFS) of the turn's active frames; speech_rate_wps: words per second of turn
    time; articulation_rate_wps: words per second with the within-turn pauses taken out; pause_proportion:
    share of the turn's time in pauses between its words. `*_z`: z-score against the same speaker's
    session baseline (mean and SD over that speaker's measured turns); arousal: mean of f0_z and
    intensity_z; speech_rate_change: speech rate relative to the speaker's mean (-0.35 = 35% slower).
    """

    turn_index: int
    speaker: str
    own_speech_s: float
    voiced_s: float
    f0_hz: float | None = None
    f0_st: float | None = None
    f0_range_st: float | None = None
    intensity_db: float | None = None
    speech_rate_wps: float | None = None
    articulation_rate_wps: float | None = None
    pause_proportion: float | None = None
    f0_z: float | None = None
    intensity_z: float | None = None
    speech_rate_z: float | None = None
    articulation_rate_z: float | None = None
    pause_z: float | None = None
    arousal: float | None = None
    speech_rate_change: float | None = None
    note: str = ""


@dataclass(frozen=True)
class SpeakerLevel:
    """How loud one speaker's own speech is (pipeline.levels), measured before transcription.

    speech_s: the speaker's own speech (exclusive-track time where no other speaker talks); level_dbfs:
    its active speech level (mean power of its frames within `levels.active_range_db` of its loud frames);
    snr_db: level_dbfs minus the recording's noise floor; asr_gain_db: the gain this speaker's speech got
    before transcription (0 when none). level_dbfs and snr_db are None when there is too little speech."""

    speaker: str
    speech_s: float
    level_dbfs: float | None
    snr_db: float | None
    asr_gain_db: float = 0.0


@dataclass(frozen=True)
class Levels:
    """Per-speaker speech levels and the noise floor (dBFS, None when no stretch without speech exists)."""

    noise_dbfs: float | None
    speakers: tuple[SpeakerLevel, ...]

    def of(self, speaker: str) -> SpeakerLevel | None:
        return next((s for s in self.speakers if s.speaker == speaker), None)


@dataclass(frozen=True)
class QualityWarning:
    """Why a session's numbers should not be trusted as they are. `code` is machine-readable
    (low_word_coverage, low_snr; later checks add their own); `message` is the plain sentence shown to
    the reviewer; `speaker` when the warning is about one speaker."""

    code: str
    message: str
    speaker: str | None = None


@dataclass(frozen=True)
class SpeakerQuality:
    """One speaker's row of the quality block: level, SNR, the gain given before ASR, word coverage (the
    share of their diarized own speech that lies within a recognised word) and word confidence."""

    speaker: str
    role: str
    speech_s: float
    level_dbfs: float | None
    level_re_loudest_db: float | None  # 0 for the loudest speaker, negative for quieter ones
    snr_db: float | None
    asr_gain_db: float
    word_coverage: float | None
    # mean recogniser probability (Whisper's per-word probability) of the words given to this speaker; None
    # without words
    word_confidence: float | None = None


@dataclass(frozen=True)
class Quality:
    """Recording quality and whether the session's numbers can be trusted (pipeline.quality).
    `trustworthy` is False exactly when there is a warning."""

    noise_floor_dbfs: float | None
    speakers: tuple[SpeakerQuality, ...]
    warnings: tuple[QualityWarning, ...] = ()

    @property
    def trustworthy(self) -> bool:
        return not self.warnings
