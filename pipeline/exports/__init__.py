"""Review page and researcher exports, all generated from a SessionRecord (session.json), offline.

Public API (the runner and the CLI call these):

    write_exports(record, session_dir, audio_path, formats) -> tuple[Path, ...]
    write_index(out_root, sessions) -> Path                      batch index.html
    write_corpus_tables(out_root) -> tuple[Path, ...]             sessions/turns/events .parquet
    import_eaf(eaf_path, record) -> SessionRecord                 ELAN round trip (human-coded events)
    SessionSummary, summary_from_record                           rows of the batch index

Files written per session (names fixed; `formats` picks which):

    html      report.html        supervisor review page (self-contained, audio linked by relative path)
    eaf       session.eaf        ELAN 3.0: turn tier per speaker, rupture/repair/interruption code tiers
    rttm      session.rttm       overlapping diarization track
    vtt       session.vtt        WebVTT with <v Speaker> voices
    textgrid  session.TextGrid   Praat, one tier per speaker
    csv       turns.csv, events.csv
    txt       transcript.txt     "[hh:mm:ss] Speaker: text" paragraphs (NVivo, MAXQDA)

Every file is written atomically (temp file + rename) with mode 0o600. The rendering functions in
`_formats` and `_html` are pure; only the `write_*` functions touch the file system.

Errors: an unknown format is a ConfigError; an EAF that cannot be read is a UsageError (the user gave a
bad file); nothing here raises with transcript text in the message.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

from pipeline.errors import ConfigError
from pipeline.records import SessionRecord
from pipeline.serialize import atomic_write_text
from pipeline.exports._corpus import write_corpus_tables
from pipeline.exports._eaf_import import import_eaf
from pipeline.exports._formats import (
    eaf_text,
    events_csv_text,
    rttm_text,
    textgrid_text,
    transcript_text,
    turns_csv_text,
    vtt_text,
)
from pipeline.exports._html import SessionSummary, render_index, render_report, summary_from_record

__all__ = [
    "FORMATS",
    "FILE_NAMES",
    "SessionSummary",
    "import_eaf",
    "summary_from_record",
    "write_corpus_tables",
    "write_exports",
    "write_index",
]

FILE_NAMES: dict[str, tuple[str, ...]] = {
    "html": ("report.html",),
    "eaf": ("session.eaf",),
    "rttm": ("session.rttm",),
    "vtt": ("session.vtt",),
    "textgrid": ("session.TextGrid",),
    "csv": ("turns.csv", "events.csv"),
    "txt": ("transcript.txt",),
}
FORMATS: tuple[str, ...] = tuple(FILE_NAMES)


def check_formats(formats: Sequence[str]) -> None:
    unknown = [f for f in formats if f not in FILE_NAMES]
    if unknown:
        raise ConfigError(f"exports.formats: unknown format(s) {', '.join(map(repr, unknown))}; "
                          f"allowed: {', '.join(FORMATS)}")


def _relative_audio(audio_path: Path | None, session_dir: Path) -> str | None:
    if audio_path is None:
        return None
    try:
        return Path(os.path.relpath(Path(audio_path).resolve(), Path(session_dir).resolve())).as_posix()
    except ValueError:  # another drive on Windows: no relative path exists
        return None


def write_exports(record: SessionRecord, session_dir: Path, audio_path: Path | None,
                  formats: tuple[str, ...]) -> tuple[Path, ...]:
    """Write the requested exports of one session into `session_dir`; return the paths written, in the
    order of `formats`. The recording is linked by its path relative to `session_dir`, never embedded."""
    check_formats(formats)
    session_dir = Path(session_dir)
    rel = _relative_audio(audio_path, session_dir)
    media_url = Path(audio_path).resolve().as_uri() if audio_path is not None else None

    renderers: dict[str, Callable[[], str]] = {
        "report.html": lambda: render_report(record, rel),
        "session.eaf": lambda: eaf_text(record, media_url=media_url,
                                        relative_media_url=("./" + rel if rel and not rel.startswith(".") else rel)),
        "session.rttm": lambda: rttm_text(record),
        "session.vtt": lambda: vtt_text(record),
        "session.TextGrid": lambda: textgrid_text(record),
        "turns.csv": lambda: turns_csv_text(record),
        "events.csv": lambda: events_csv_text(record),
        "transcript.txt": lambda: transcript_text(record),
    }
    written: list[Path] = []
    seen: set[str] = set()
    for fmt in formats:
        for name in FILE_NAMES[fmt]:
            if name in seen:
                continue
            seen.add(name)
            path = session_dir / name
            atomic_write_text(path, renderers[name](), mode=0o600)
            written.append(path)
    return tuple(written)


def write_index(out_root: Path, sessions: Sequence[SessionSummary]) -> Path:
    """Write `out_root/index.html`: one row per session with its counts and failures, linking each report."""
    path = Path(out_root) / "index.html"
    atomic_write_text(path, render_index(sessions), mode=0o600)
    return path
