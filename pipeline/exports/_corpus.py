"""Corpus tables across all sessions of an output folder: sessions.parquet, turns.parquet, events.parquet.

Plain Parquet with fixed schemas (no pandas metadata needed), so pandas, polars, R arrow and DuckDB read
them alike. Human-corrected events (from `import_eaf`) carry coder = "human".

    import duckdb
    duckdb.sql("SELECT s.session_id, count(*) FILTER (WHERE e.type = 'rupture') AS ruptures "
               "FROM 'out/sessions.parquet' s LEFT JOIN 'out/events.parquet' e USING (session_id) "
               "GROUP BY 1 ORDER BY 1")
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

from pipeline.records import Metrics, SessionRecord
from pipeline.serialize import atomic_write, metrics_to_dict, read_session_json
from pipeline.exports._formats import TURN_PROSODY_COLUMNS, event_row, turn_prosody_values
from pipeline.exports._labels import model_names, speaker_names, speaker_roles
from pipeline.exports._summary import session_counts

log = logging.getLogger(__name__)

TABLE_FILES: tuple[str, ...] = ("sessions.parquet", "turns.parquet", "events.parquet")


def _schemas() -> dict[str, Any]:
    import pyarrow as pa

    return {
        "sessions": pa.schema([
            ("session_id", pa.string()), ("schema_version", pa.string()), ("duration_s", pa.float64()),
            ("n_speakers", pa.int32()), ("n_turns", pa.int32()), ("n_words", pa.int32()),
            ("therapist_talk_share", pa.float64()), ("ruptures", pa.int32()), ("ruptures_resolved", pa.int32()),
            ("ruptures_unresolved", pa.int32()), ("repairs", pa.int32()), ("interruptions", pa.int32()),
            ("interruptions_therapist_to_client", pa.int32()), ("interruptions_client_to_therapist", pa.int32()),
            ("backchannels", pa.int32()), ("overlaps", pa.int32()), ("long_pauses", pa.int32()),
            ("imbalances", pa.int32()), ("human_coded_events", pa.int32()),
            ("vocal_synchrony_r", pa.float64()), ("vocal_synchrony_pairs", pa.int32()), ("models", pa.string()),
            ("package_version", pa.string()), ("created", pa.string()), ("metrics_json", pa.string()),
            ("metadata_json", pa.string()),
        ]),
        "turns": pa.schema([
            ("session_id", pa.string()), ("index", pa.int32()), ("speaker", pa.string()),
            ("speaker_name", pa.string()), ("role", pa.string()), ("start", pa.float64()), ("end", pa.float64()),
            ("duration", pa.float64()), ("word_count", pa.int32()), ("text", pa.string()),
        ] + [(c, pa.string() if c == "prosody_note" else pa.float64()) for c in TURN_PROSODY_COLUMNS]),
        "events": pa.schema([
            ("session_id", pa.string()), ("event_id", pa.int32()), ("type", pa.string()), ("subtype", pa.string()),
            ("subtype_label", pa.string()), ("start", pa.float64()), ("end", pa.float64()),
            ("speaker", pa.string()), ("speaker_role", pa.string()), ("target_speaker", pa.string()),
            ("target_role", pa.string()), ("turn_index", pa.int32()), ("confidence", pa.float64()),
            ("resolved", pa.bool_()), ("repair_turn_index", pa.int32()), ("coder", pa.string()),
            ("evidence", pa.string()), ("details", pa.string()),
        ]),
    }


def _jsonable(m: Mapping[str, Any]) -> str:
    return json.dumps(dict(m), sort_keys=True, ensure_ascii=False, default=str)


def _synchrony(metrics: Metrics) -> dict[str, Any]:
    """Session vocal synchrony (metrics.prosody.vocal_synchrony: pooled lag-1 arousal r and its pair count);
    None without prosody."""
    sync = metrics.prosody.vocal_synchrony if metrics.prosody is not None else None
    if sync is None:
        return {"vocal_synchrony_r": None, "vocal_synchrony_pairs": None}
    return {"vocal_synchrony_r": float(sync.r) if sync.r is not None else None, "vocal_synchrony_pairs": sync.n_pairs}


def session_row(record: SessionRecord) -> dict[str, Any]:
    c = session_counts(record)
    prov = record.provenance
    directions = c["interruptions_by_direction"]
    return {
        "session_id": record.session_id, "schema_version": record.schema_version,
        "duration_s": float(record.duration_s), "n_speakers": len(record.speakers), "n_turns": c["turns"],
        "n_words": c["words"], "therapist_talk_share": c["therapist_talk_share"], "ruptures": c["ruptures"],
        "ruptures_resolved": c["ruptures_resolved"], "ruptures_unresolved": c["ruptures_unresolved"],
        "repairs": c["repairs"], "interruptions": c["interruptions"],
        "interruptions_therapist_to_client": directions.get("therapist→client", 0),
        "interruptions_client_to_therapist": directions.get("client→therapist", 0),
        "backchannels": c["backchannels"], "overlaps": c["overlaps"], "long_pauses": c["long_pauses"],
        "imbalances": c["imbalances"], "human_coded_events": c["human_coded_events"],
        **_synchrony(record.metrics),
        "models": "; ".join(model_names(prov.models)),
        "package_version": str(prov.package_version or "") or None,
        "created": str(prov.created or "") or None,
        "metrics_json": _jsonable(metrics_to_dict(record.metrics)),
        "metadata_json": _jsonable(record.metadata if isinstance(record.metadata, Mapping) else {}),
    }


def corpus_rows(records: Sequence[SessionRecord]) -> dict[str, list[dict[str, Any]]]:
    """Rows of the three tables (pure)."""
    sessions, turns, events = [], [], []
    for rec in records:
        sessions.append(session_row(rec))
        names = speaker_names(rec)
        prosody = turn_prosody_values(rec)
        for t in rec.turns:
            turns.append({"session_id": rec.session_id, "index": t.index, "speaker": t.speaker,
                          "speaker_name": names.get(t.speaker, t.speaker), "role": t.role,
                          "start": float(t.start), "end": float(t.end), "duration": float(t.end - t.start),
                          "word_count": t.word_count, "text": t.text,
                          **{c: prosody.get(t.index, {}).get(c) for c in TURN_PROSODY_COLUMNS}})
        roles = speaker_roles(rec)
        for i, e in enumerate(rec.events):
            row = event_row(rec.session_id, i, e, roles)
            row["details"] = row["details"] or None
            events.append(row)
    return {"sessions": sessions, "turns": turns, "events": events}


def _write_parquet(table: Any, path: Path) -> None:
    import pyarrow.parquet as pq

    atomic_write(path, lambda tmp: pq.write_table(table, str(tmp), compression="zstd"))


def write_corpus_tables(out_root: Path) -> tuple[Path, ...]:
    """Scan `out_root/*/session.json` and write sessions/turns/events .parquet into `out_root`.

    A session.json that cannot be read is skipped with a warning naming only its path."""
    import pyarrow as pa

    out_root = Path(out_root)
    records: list[SessionRecord] = []
    for p in sorted(out_root.glob("*/session.json")):
        try:
            records.append(read_session_json(p))
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("corpus tables: skipping unreadable %s (%s)", p, type(e).__name__)
    rows = corpus_rows(records)
    schemas = _schemas()
    paths = []
    for name, fname in zip(("sessions", "turns", "events"), TABLE_FILES):
        table = pa.Table.from_pylist(rows[name], schema=schemas[name])
        path = out_root / fname
        _write_parquet(table, path)
        paths.append(path)
    return tuple(paths)
