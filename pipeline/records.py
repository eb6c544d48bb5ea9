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


def absent_if_none() -> Any:
    """A record field whose key is left out of the JSON object when the value is None (pipeline.serialize);
    other None fields are written as null."""
    return field(default=None, metadata={"absent_if_none": True})


# ------------------------------------------------------------------------------------ event details
# An event's details are the keys of its session.json object beyond the CONTRACT.md ones: what the stage that
# made it measured (one record per kind of event), the prosodic evidence, keys this version does not know,
# and the human coding that `rupture import-eaf` appends. Written in that order (pipeline.serialize).


@dataclass(frozen=True)
class OverlapDetails:
    """interruption, backchannel and overlap events (pipeline.measures): `direction` is "<doer role>-><holder
    role>", `target_turn_index` the floor holder's turn (the interrupted turn). Backchannels carry
    `in_overlap` and `words`; overlaps and interruptions the overlap length, how long the holder went on
    after the onset, and then either how long the holder kept talking after the overlap (unsuccessful) or
    the interrupter after the holder stopped (successful)."""

    direction: str
    target_turn_index: int | None
    in_overlap: bool | None = absent_if_none()
    words: int | None = absent_if_none()
    overlap_s: float | None = absent_if_none()
    holder_remaining_s: float | None = absent_if_none()
    holder_kept_s: float | None = absent_if_none()
    interrupter_continued_s: float | None = absent_if_none()


@dataclass(frozen=True)
class PauseDetails:
    """long_pause events: the silence, the speakers either side and "<role before>-><role after>"."""

    pause_s: float
    speaker_before: str | None
    speaker_after: str | None
    direction: str


@dataclass(frozen=True)
class ImbalanceDetails:
    """talk_time_imbalance events: the window's therapist share and its speech seconds."""

    therapist_share: float
    speech_s: float


@dataclass(frozen=True)
class TaggerDetails:
    """rupture and repair events (pipeline.tagging): the model's family probability, the cue boost, the
    family decided and the subtype's probability."""

    p_model: float
    cue_boost: float
    family: str
    p_subtype: float


@dataclass(frozen=True)
class ProsodyDetails:
    """The `prosody` detail of a rupture or repair event: its turn's voice measures against the speaker's
    baseline (pipeline.prosody)."""

    arousal: float | None
    f0_z: float | None
    intensity_z: float | None
    speech_rate_change: float | None
    pause_z: float | None


@dataclass(frozen=True)
class HumanCoding:
    """An event read back from a coded ELAN file (pipeline.exports.import_eaf): who coded it ("human"), what
    they did (confirmed, relabelled, added), the tier, and for a relabelled event the model's subtype."""

    coder: str
    human_action: str
    eaf_tier: str
    model_subtype: str | None = absent_if_none()


MeasureDetails = OverlapDetails | PauseDetails | ImbalanceDetails | TaggerDetails


@dataclass(frozen=True)
class EventDetails:
    """The extra keys of an event (see above). A field that is None is not written. `other`: keys this
    version does not know, and known ones whose value it cannot read (a file from elsewhere), as read, in
    their order. `key_order`: the order the keys were read in when it is not the order written (a file from
    elsewhere), so that reading and writing it again changes nothing; empty for records made here."""

    measure: MeasureDetails | None = None
    prosody: ProsodyDetails | None = None
    prosody_evidence: str | None = None  # the line a reviewer reads (pipeline.prosody.prosody_evidence)
    other: tuple[tuple[str, Any], ...] = ()
    coding: HumanCoding | None = None
    key_order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @property
    def direction(self) -> str | None:
        """"<doer role>-><other role>" of an overlap-family or long_pause event."""
        m = self.measure
        return m.direction if isinstance(m, (OverlapDetails, PauseDetails)) else None

    @property
    def target_turn_index(self) -> int | None:
        """The interrupted (floor holder's) turn of an overlap-family event."""
        return self.measure.target_turn_index if isinstance(self.measure, OverlapDetails) else None

    @property
    def human_coded(self) -> bool:
        return self.coding is not None and self.coding.coder == "human"


@dataclass(frozen=True)
class Event:
    """A flagged moment (CONTRACT.md `events`). `details` (an `EventDetails`) are written as additional keys
    of the event object."""

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
    details: EventDetails = EventDetails()

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


# ------------------------------------------------------------------------------------------ provenance


@dataclass(frozen=True)
class TrackInput:
    """One participant's file of a session given as one file per participant (pipeline.tracks)."""

    path_name: str
    sha256: str
    channel: str  # "ch0", "ch1", ...
    offset_s: float  # where the track starts on the session timeline
    offset_source: str
    offset_peak_ratio: float | None
    sample_rate: int
    channels: int


@dataclass(frozen=True)
class FileInput:
    """A file named by its name and sha256 (the mix of a per-participant session)."""

    path_name: str
    sha256: str


@dataclass(frozen=True)
class InputInfo:
    """provenance.input: the file processed (its name, never its folder) and its sha256; for a recording its
    original rate and channel count; `kind` "transcript" for `rupture tag`; for one file per participant the
    tracks and the mix (`sha256` is then a digest of them all, pipeline.tracks). Every key is optional so that
    a file from elsewhere that records only some of them still gives its sha256 to the skip check and purge."""

    path_name: str | None = absent_if_none()
    sha256: str | None = absent_if_none()
    sample_rate: int | None = absent_if_none()
    channels: int | None = absent_if_none()
    kind: str | None = absent_if_none()
    tracks: tuple[TrackInput, ...] | None = absent_if_none()
    mix: FileInput | None = absent_if_none()


@dataclass(frozen=True)
class Consent:
    """provenance.consent: where consent comes from (manifest, operator_attestation, transcript), its date,
    and the operator's attestation when there is one."""

    source: str
    date: str | None
    attestation: str | None = absent_if_none()


@dataclass(frozen=True)
class Purged:
    """provenance.purged (pipeline.purge): what retention deleted, and when the transcripts went (in the
    order one purge of both writes them)."""

    transcripts: bool | None = absent_if_none()
    time: str | None = absent_if_none()
    audio: bool | None = absent_if_none()


@dataclass(frozen=True)
class Provenance:
    """What made a session record: session.json "provenance" (CONTRACT.md). The session writes the first
    group (pipeline.session), the runner the second with the outputs (pipeline.runner.write_outputs), purge
    `purged`. A field that is None is not written (a file that does not carry it). `other`: keys this version
    does not know, and known ones whose value it cannot read (a file from elsewhere, an older layout), as
    read; `key_order` as on `EventDetails` (pipeline.serialize: provenance_to_dict/_from_dict)."""

    models: Mapping[str, ModelInfo] | None = None  # {role: model}
    config: Mapping[str, Any] | None = None  # the run's resolved config as written (pipeline.config.to_dict)
    package_version: str | None = None
    created: str | None = None  # ISO 8601 time the record was made
    input: InputInfo | None = None
    diarization_method: str | None = None
    asr_language: str | None = None
    config_digest: str | None = None  # runner: the digest that decides skip-if-done
    stage_seconds: Mapping[str, float] | None = None  # hook event -> seconds (pipeline.session.StageTimer)
    consent: Consent | None = None
    attempt: str | None = None  # runner: the attempt id its audit lines carry
    outputs: tuple[str, ...] | None = None  # runner: the files written beside session.json (relative paths)
    purged: Purged | None = None  # purge: what was deleted and when
    other: Mapping[str, Any] = field(default_factory=dict)
    key_order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @property
    def input_sha256(self) -> str | None:
        return self.input.sha256 if self.input is not None else None


# --------------------------------------------------------------------------------------------- metrics
# session.json "metrics" (pipeline.measures, pipeline.tagging, pipeline.prosody). Rounded as written.


@dataclass(frozen=True)
class SpeakerTalk:
    role: str
    talk_s: float
    solo_s: float  # talk time with no other speaker active
    overlap_started_s: float  # overlapped time this speaker started
    share: float | None  # of all speakers' talk time


@dataclass(frozen=True)
class RoleTalk:
    talk_s: float
    overlap_started_s: float
    share: float | None


@dataclass(frozen=True)
class TalkBlock:
    """Talk time over [start, end] (the session, or one window)."""

    start: float
    end: float
    speech_s: float
    silence_s: float
    overlap_s: float
    therapist_share: float | None
    per_speaker: Mapping[str, SpeakerTalk]
    per_role: Mapping[str, RoleTalk]


@dataclass(frozen=True)
class TalkTime:
    session: TalkBlock
    window_s: float
    window_step_s: float
    windows: tuple[TalkBlock, ...]


@dataclass(frozen=True)
class Stats:
    count: int
    mean: float | None
    median: float | None


@dataclass(frozen=True)
class PauseMetrics:
    response_latency_s: Mapping[str, Stats]  # "<role before>-><role after>"
    within_turn_pause_share: Mapping[str, float | None]  # per speaker
    within_turn_pause_min_s: float
    long_pause_s: float
    source: str  # "words" | "turns"
    gap_count: int


@dataclass(frozen=True)
class TurnMetrics:
    count: int
    mean_s: float | None
    median_s: float | None
    mean_words: float | None
    median_words: float | None
    per_minute: float | None
    longest_monologue_s: Mapping[str, float]


@dataclass(frozen=True)
class MinimalResponseMetrics:
    count: int
    by_role: Mapping[str, int]
    follows_question_count: int
    latency_s: Stats


@dataclass(frozen=True)
class Moment:
    """One of the most likely ruptures, to review first."""

    turn_index: int | None
    start: float
    subtype: str | None
    confidence: float
    resolved: bool | None
    repair_turn_index: int | None


@dataclass(frozen=True)
class AllianceMetrics:
    """Rupture/repair counts (pipeline.tagging.rupture_metrics)."""

    ruptures: int
    withdrawal: int
    confrontation: int
    ruptures_by_subtype: Mapping[str, int]
    resolved: int
    unresolved: int
    share_resolved: float | None
    repairs: int
    repairs_by_subtype: Mapping[str, int]
    moments: tuple[Moment, ...]


@dataclass(frozen=True)
class Baseline:
    """One speaker's session baseline of one measure (pipeline.prosody)."""

    mean: float
    sd: float
    n: int


@dataclass(frozen=True)
class SynchronyPoint:
    t: float  # seconds: mean start of the window's follower turns
    r: float | None
    n: int


@dataclass(frozen=True)
class VocalSynchrony:
    """Lag-`lag_turns` arousal synchrony between therapist and client turns (pipeline.prosody)."""

    r: float | None
    n_pairs: int
    lag_turns: int
    client_follows_r: float | None
    client_follows_n: int
    therapist_follows_r: float | None
    therapist_follows_n: int
    window_pairs: int
    series: tuple[SynchronyPoint, ...]


@dataclass(frozen=True)
class ProsodyMetrics:
    """pipeline.prosody.prosody_metrics: the method, the turns measured, each speaker's baselines and the
    vocal synchrony (rounded as written)."""

    method: str
    turns_measured: int
    baselines: Mapping[str, Mapping[str, Baseline]]  # speaker -> measure -> baseline
    vocal_synchrony: VocalSynchrony


@dataclass(frozen=True)
class Metrics:
    """session.json "metrics". Every field may be None (not written): a transcript session has no prosody, a
    run without the tagger no alliance, a file from elsewhere what it has. `other` and `key_order` as on
    `Provenance`."""

    talk_time: TalkTime | None = None
    therapist_share: float | None = None
    event_counts: Mapping[str, int] | None = None  # type, type.subtype, type.direction, type.subtype.direction
    event_rates_per_hour: Mapping[str, float | None] | None = None
    overlap_events_by_speaker_pair: Mapping[str, Mapping[str, int]] | None = None  # "A->B" -> kind -> count
    pauses: PauseMetrics | None = None
    turns: TurnMetrics | None = None
    minimal_responses: MinimalResponseMetrics | None = None
    alliance: AllianceMetrics | None = None
    prosody: ProsodyMetrics | None = None
    other: Mapping[str, Any] = field(default_factory=dict)
    key_order: tuple[str, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class SessionRecord:
    """Everything written to session.json. `metadata` is a JSON-able mapping built once and never mutated
    (the manifest's extra columns); `metrics` a `Metrics`, `provenance` a `Provenance`."""

    session_id: str
    duration_s: float
    speakers: tuple[Speaker, ...]
    turns: tuple[Turn, ...]
    words: tuple[Word, ...] | None
    events: tuple[Event, ...]
    metrics: Metrics
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
