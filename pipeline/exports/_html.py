"""The supervisor review page (report.html) and the batch index page (index.html), rendered to strings.

Self-contained and offline: CSS and JS from pipeline/report/ are inlined, the timeline is inline SVG,
there is no URL to any host; a Content-Security-Policy (default-src 'none', script and style allowed by
sha256 hash only) keeps the browser from fetching anything but the linked audio. The audio is referenced
by a relative path and never embedded. Every piece of transcript text is HTML-escaped; the data block
for the script is JSON with '<', '>' and '&' escaped, so no text can close the <script> element.

Rendering is a pure function of the record (plus the static assets read from the package).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import quote

from pipeline.records import Event, SessionRecord, Turn
from pipeline.serialize import metrics_to_dict
from pipeline.tagging import trim
from pipeline.exports._labels import (
    FLAG_TYPES,
    hms,
    model_names,
    speaker_names,
    speaker_roles,
    subtype_label,
    type_label,
)
from pipeline.exports._summary import is_human_coded, session_counts

# Timeline geometry (SVG user units).
_X0 = 96.0
_W = 894.0
_VIEW_W = 1000.0

STATUSES: tuple[str, ...] = ("ok", "failed", "refused", "skipped")


def _asset(name: str) -> str:
    return resources.files("pipeline").joinpath("report", name).read_text(encoding="utf-8")


def _sha256_b64(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def _fill(template: str, values: Mapping[str, str]) -> str:
    """Single-pass substitution of {{NAME}} markers (so text that happens to contain a marker is safe)."""
    return re.sub(r"\{\{([A-Z_]+)\}\}", lambda m: values[m.group(1)], template)


def _json_for_script(obj: Any) -> str:
    s = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (s.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _t(x: float) -> str:
    return f"{float(x):.3f}"


def _clock(seconds: float) -> str:
    """Short clock for buttons: m:ss or h:mm:ss."""
    s = int(max(0.0, seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100.0 * x:.0f}%"


def _csp(js: str, css: str, media: bool) -> str:
    media_src = "media-src 'self' file: blob:" if media else "media-src 'none'"
    return ("default-src 'none'; "
            f"script-src 'sha256-{_sha256_b64(js)}'; style-src 'sha256-{_sha256_b64(css)}'; "
            f"{media_src}; img-src 'none'; connect-src 'none'; font-src 'none'; "
            "base-uri 'none'; form-action 'none'")


# --------------------------------------------------------------------------------------------------- header

def _header(record: SessionRecord, names: Mapping[str, str]) -> str:
    c = session_counts(record)
    directions = c["interruptions_by_direction"]
    inter = ", ".join(f"{_e(k)} {v}" for k, v in directions.items()) if directions else "0"
    facts = [
        ("Duration", hms(record.duration_s, 0)),
        ("Speakers", ", ".join(f"{names.get(s.id, s.id)} ({s.id})" if names.get(s.id, s.id) != s.id else s.id
                               for s in record.speakers) or "none"),
        ("Ruptures", f"{c['ruptures']} ({c['ruptures_resolved']} resolved, {c['ruptures_unresolved']} unresolved)"),
        ("Repairs", str(c["repairs"])),
        ("Therapist talk share", _pct(c["therapist_talk_share"])),
    ]
    parts = [f'<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>' for k, v in facts]
    parts.insert(4, f'<div><dt>Interruptions</dt><dd id="interruptions">{inter}</dd></div>')
    if c["human_coded_events"]:
        parts.append(f'<div><dt>Human-coded events</dt><dd>{c["human_coded_events"]}</dd></div>')
    sync = _synchrony(record)
    if sync is not None:
        parts.append(f'<div title="Pearson r of therapist and client arousal over adjacent turns (lag 1)">'
                     f'<dt>Vocal synchrony</dt><dd>r = {sync[0]:+.2f} ({sync[1]} turn pairs)</dd></div>')
    if record.quality is not None:
        n = len(record.quality.warnings)
        parts.append(f'<div><dt>Recording</dt><dd>{"check: " + str(n) + " warning" + "s" * (n > 1) if n else "ok"}'
                     '</dd></div>')
    models = model_names(record.provenance.models)
    models_html = (f'<div class="models">Models: {_e(", ".join(models))}</div>' if models
                   else '<div class="models">Models: not recorded</div>')
    return (f'<h1>Session {_e(record.session_id)}</h1>\n<dl class="facts" id="facts">{"".join(parts)}</dl>\n'
            + _quality_warning(record) + models_html)


def _quality_warning(record: SessionRecord) -> str:
    """The plain warning of an untrustworthy recording (pipeline.quality), or "" when there is none."""
    q = record.quality
    if q is None or q.trustworthy:
        return ""
    items = "".join(f'<li data-code="{_e(w.code)}">{_e(w.message)}</li>' for w in q.warnings)
    return (f'<div class="quality-warning" id="quality-warning" role="alert"><strong>Do not trust these numbers '
            f'as they are:</strong><ul>{items}</ul></div>\n')


def _quality_table(record: SessionRecord, names: Mapping[str, str]) -> str:
    """Per-speaker level, SNR, gain before transcription, word coverage and word confidence (pipeline.quality)."""
    q = record.quality
    if q is None:
        return ""

    def num(x: float | None, fmt: str) -> str:
        return "" if x is None else format(x, fmt)

    rows = "".join(
        f'<tr><th>{_e(names.get(s.speaker, s.speaker))}</th><td class="num">{s.speech_s:.0f} s</td>'
        f'<td class="num">{num(s.level_dbfs, ".1f")}</td><td class="num">{num(s.level_re_loudest_db, "+.1f")}</td>'
        f'<td class="num">{num(s.snr_db, ".0f")}</td><td class="num">{num(s.asr_gain_db, "+.1f")}</td>'
        f'<td class="num">{_pct(s.word_coverage)}</td><td class="num">{num(s.word_confidence, ".2f")}</td></tr>'
        for s in q.speakers)
    noise = "not measured" if q.noise_floor_dbfs is None else f"{q.noise_floor_dbfs:.0f} dBFS"
    return (f'<h3>Recording quality</h3><p class="hint">Background noise {_e(noise)}. Word coverage: the share of '
            'a speaker\'s own speech that got words; word confidence: the recogniser\'s mean probability for '
            'those words.</p>'
            '<table class="measures quality" id="quality"><thead><tr><th>speaker</th><th>own speech</th>'
            '<th>level (dBFS)</th><th>vs loudest (dB)</th><th>SNR (dB)</th><th>gain before ASR (dB)</th>'
            f'<th>word coverage</th><th>word confidence</th></tr></thead><tbody>{rows}</tbody></table>')


def _synchrony(record: SessionRecord) -> tuple[float, int] | None:
    """(r, pairs) of metrics.prosody.vocal_synchrony, or None when absent or undefined."""
    sync = record.metrics.prosody.vocal_synchrony if record.metrics.prosody is not None else None
    if sync is None or sync.r is None:
        return None
    return float(sync.r), sync.n_pairs


def _synchrony_series(record: SessionRecord) -> list[tuple[float, float | None]]:
    """(t, r) points of metrics.prosody.vocal_synchrony.series; [] when absent."""
    sync = record.metrics.prosody.vocal_synchrony if record.metrics.prosody is not None else None
    return [(float(pt.t), max(-1.0, min(1.0, float(pt.r))) if pt.r is not None else None)
            for pt in (sync.series if sync is not None else ()) if pt.t is not None]


def _audio(audio_href: str | None) -> str:
    if audio_href:
        return f'<audio id="audio" controls preload="metadata" src="{_e(audio_href)}"></audio>'
    return ('<audio id="audio" controls preload="none"></audio>'
            '<div class="noaudio">No recording linked to this page; times are still shown.</div>')


# ------------------------------------------------------------------------------------------------- timeline

def _x(t: float, dur: float) -> float:
    return _X0 + (min(max(t, 0.0), dur) / dur) * _W if dur > 0 else _X0


def _overlaps(spans: Sequence[tuple[float, float, str]]) -> list[tuple[float, float]]:
    """Stretches where two or more different speakers talk at once (sweep over span boundaries)."""
    points: list[tuple[float, int, str]] = []
    for s, e, spk in spans:
        if e > s:
            points.append((s, 1, spk))
            points.append((e, -1, spk))
    points.sort(key=lambda p: (p[0], p[1]))
    active: dict[str, int] = {}
    out: list[tuple[float, float]] = []
    start: float | None = None
    for t, d, spk in points:
        active[spk] = active.get(spk, 0) + d
        if active[spk] <= 0:
            del active[spk]
        n = len(active)
        if n >= 2 and start is None:
            start = t
        elif n < 2 and start is not None:
            if t > start:
                out.append((start, t))
            start = None
    return out


def talk_share_series(record: SessionRecord, therapist_ids: Iterable[str]) -> list[tuple[float, float | None]]:
    """(window centre, therapist share of talk in a window around it); None where nobody talks."""
    dur = record.duration_s
    if dur <= 0:
        return []
    step = max(10.0, dur / 100.0)
    half = max(30.0, dur / 40.0)
    ther = set(therapist_ids)
    spans = [(t.start, t.end, t.speaker in ther) for t in record.turns]
    out: list[tuple[float, float | None]] = []
    n = int(math.floor(dur / step)) + 1
    for k in range(n):
        c = min(dur, k * step)
        lo, hi = c - half, c + half
        tot = th = 0.0
        for s, e, is_t in spans:
            ov = min(e, hi) - max(s, lo)
            if ov > 0:
                tot += ov
                if is_t:
                    th += ov
        out.append((c, th / tot if tot > 0 else None))
    return out


def _ticks(dur: float) -> list[float]:
    for step in (5, 10, 15, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600):
        if dur / step <= 12:
            break
    return [k * step for k in range(int(dur // step) + 1)]


def _timeline(record: SessionRecord, names: Mapping[str, str], roles: Mapping[str, str]) -> str:
    dur = max(record.duration_s, max((t.end for t in record.turns), default=0.0), 0.001)
    spans = [(s.start, s.end, s.speaker) for s in record.segments] or \
            [(t.start, t.end, t.speaker) for t in record.turns]
    speakers = [s.id for s in record.speakers] + sorted({sp for _, _, sp in spans} - {s.id for s in record.speakers})
    out: list[str] = []
    y = 4.0
    # time axis
    axis_y = y + 10
    tick_xs: list[float] = []
    for tk in _ticks(dur):
        x = _x(tk, dur)
        tick_xs.append(x)
        if x <= _X0 + _W - 30:  # no label that would be cut off at the right edge
            out.append(f'<text x="{x + 2:.1f}" y="{axis_y:.0f}">{_clock(tk)}</text>')
    y = axis_y + 6
    lane_h = 16.0

    def lane(label: str, ypos: float, h: float) -> None:
        out.append(f'<rect class="lane-bg seekable" x="{_X0:.1f}" y="{ypos:.1f}" width="{_W:.1f}" '
                   f'height="{h:.1f}"/>')
        out.append(f'<text x="4" y="{ypos + h - 4:.1f}">{_e(label)}</text>')

    for spk in speakers:
        role = roles.get(spk, "unknown")
        role_cls = role if role in ("therapist", "client", "other") else "unknown"
        lane(names.get(spk, spk), y, lane_h)
        for s, e, sp in spans:
            if sp != spk or e <= s:
                continue
            x1, x2 = _x(s, dur), _x(e, dur)
            out.append(f'<rect class="seg-{role_cls} seekable" data-start="{_t(s)}" x="{x1:.1f}" y="{y + 2:.1f}" '
                       f'width="{max(0.4, x2 - x1):.1f}" height="{lane_h - 4:.1f}"/>')
        y += lane_h + 4
    y += 2
    # overlaps and long pauses
    lane("overlaps", y, 11.0)
    for s, e in _overlaps(spans):
        x1, x2 = _x(s, dur), _x(e, dur)
        out.append(f'<rect class="ovl seekable" data-start="{_t(s)}" x="{x1:.1f}" y="{y + 1:.1f}" '
                   f'width="{max(0.8, x2 - x1):.1f}" height="9"/>')
    y += 15
    lane("pauses", y, 11.0)
    for ev in record.events:
        if ev.type == "long_pause":
            x1, x2 = _x(ev.start, dur), _x(ev.end, dur)
            out.append(f'<rect class="pause seekable" data-start="{_t(ev.start)}" x="{x1:.1f}" y="{y + 1:.1f}" '
                       f'width="{max(0.8, x2 - x1):.1f}" height="9"><title>pause {ev.end - ev.start:.1f} s</title></rect>')
    y += 15
    # flags
    flag_h = 18.0
    lane("flags", y, flag_h)
    for ev in sorted((e for e in record.events if e.type in FLAG_TYPES), key=lambda e: (e.type != "talk_time_imbalance", e.start)):
        x1, x2 = _x(ev.start, dur), _x(ev.end, dur)
        wide = ev.type == "talk_time_imbalance"
        w = max(0.8, x2 - x1) if wide else 3.0
        xs = x1 if wide else x1 - 1.5
        ys, hs = (y + flag_h - 5, 4.0) if wide else (y + 1, flag_h - 2)
        label = f"{type_label(ev.type)}: {subtype_label(ev.subtype)}" if ev.subtype else type_label(ev.type)
        out.append(f'<rect class="mark mark-{ev.type}" data-type="{ev.type}" data-conf="{ev.confidence:.3f}" '
                   f'data-start="{_t(ev.start)}" x="{xs:.1f}" y="{ys:.1f}" width="{w:.1f}" height="{hs:.0f}">'
                   f'<title>{_e(label)} ({ev.confidence:.2f}) at {_clock(ev.start)}</title></rect>')
    y += flag_h + 3
    # therapist talk share over time
    share_h = 40.0
    ther = [s for s in speakers if roles.get(s) == "therapist"]
    lane("therapist share", y, share_h)
    out.append(f'<line class="half" x1="{_X0:.1f}" x2="{_X0 + _W:.1f}" y1="{y + share_h / 2:.1f}" y2="{y + share_h / 2:.1f}"/>')
    if ther:
        path: list[str] = []
        pen_up = True
        for c, v in talk_share_series(record, ther):
            if v is None:
                pen_up = True
                continue
            px, py = _x(c, dur), y + share_h - 2 - v * (share_h - 4)
            path.append(f'{"M" if pen_up else "L"}{px:.1f} {py:.1f}')
            pen_up = False
        if path:
            out.append(f'<path class="share" d="{" ".join(path)}"><title>therapist share of talk time</title></path>')
    y += share_h + 4
    if any(p.arousal is not None for p in record.prosody):
        y = _arousal_lane(record, names, roles, out, lane, y, dur)
    series = _synchrony_series(record)
    if series:
        h = 30.0
        lane("synchrony (r)", y, h)
        mid = y + h / 2
        out.append(f'<line class="half" x1="{_X0:.1f}" x2="{_X0 + _W:.1f}" y1="{mid:.1f}" y2="{mid:.1f}"/>')
        path: list[str] = []
        pen_up = True
        for t, r in series:
            if r is None:
                pen_up = True
                continue
            path.append(f'{"M" if pen_up else "L"}{_x(t, dur):.1f} {mid - r * (h / 2 - 2):.1f}')
            pen_up = False
        if path:
            out.append(f'<path class="sync" d="{" ".join(path)}"><title>vocal synchrony: r of therapist and client '
                       f'arousal over a sliding window of adjacent turn pairs</title></path>')
        y += h + 4
    height = y
    out.append(f'<line id="playhead" class="playhead" x1="{_X0:.1f}" x2="{_X0:.1f}" y1="{axis_y + 3:.0f}" y2="{height:.0f}"/>')
    ticks = [f'<line class="tick" x1="{x:.1f}" x2="{x:.1f}" y1="{axis_y + 3:.0f}" y2="{height:.0f}"/>'
             for x in tick_xs]
    body = "\n".join(ticks + out)
    return (f'<svg class="timeline" viewBox="0 0 {_VIEW_W:.0f} {height:.0f}" role="img" '
            f'aria-label="timeline of speakers, overlaps, pauses, flags and therapist talk share'
            f'{", vocal arousal" if any(p.arousal is not None for p in record.prosody) else ""}">\n{body}\n</svg>')


AROUSAL_CLIP_SD = 2.5  # the arousal lane spans -2.5..+2.5 SD; larger values are drawn at its edge


def _arousal_lane(record: SessionRecord, names: Mapping[str, str], roles: Mapping[str, str], out: list[str],
                  lane: Any, y: float, dur: float) -> float:
    """One line per speaker through their turns' arousal (z, own baseline) at each turn's middle, with a
    dashed zero line; a dot per turn plays from that turn. Returns the y below the lane."""
    h = 44.0
    lane("arousal (SD)", y, h)
    mid = y + h / 2
    out.append(f'<line class="half" x1="{_X0:.1f}" x2="{_X0 + _W:.1f}" y1="{mid:.1f}" y2="{mid:.1f}"/>')
    turns = {t.index: t for t in record.turns}
    by_speaker: dict[str, list[tuple[float, float, float, float]]] = {}
    for p in record.prosody:
        t = turns.get(p.turn_index)
        if t is None or p.arousal is None:
            continue
        z = max(-AROUSAL_CLIP_SD, min(AROUSAL_CLIP_SD, p.arousal))
        by_speaker.setdefault(p.speaker, []).append(
            (_x(0.5 * (t.start + t.end), dur), mid - z / AROUSAL_CLIP_SD * (h / 2 - 3), t.start, p.arousal))
    for spk, pts in by_speaker.items():
        role = roles.get(spk, "unknown")
        cls = role if role in ("therapist", "client", "other") else "unknown"
        d = " ".join(f'{"M" if i == 0 else "L"}{px:.1f} {py:.1f}' for i, (px, py, _, _) in enumerate(pts))
        label = _e(names.get(spk, spk))
        out.append(f'<path class="ar ar-{cls}" d="{d}"><title>{label} arousal</title></path>')
        for px, py, start, a in pts:
            out.append(f'<circle class="ar-dot ar-{cls} seekable" data-start="{_t(start)}" cx="{px:.1f}" cy="{py:.1f}" '
                       f'r="2.2"><title>{label} arousal {a:+.1f} SD at {_clock(start)}</title></circle>')
    return y + h + 4


def _legend(record: SessionRecord) -> str:
    items = [("therapist", "therapist"), ("client", "client"), ("overlap", "overlap"), ("long_pause", "long pause"),
             ("rupture", "rupture"), ("repair", "repair"), ("interruption", "interruption"),
             ("talk_time_imbalance", "talk-time imbalance")]
    arousal = ("<span>arousal: each speaker's pitch and loudness per turn against their own session average "
               "(SD; 0 = their usual)</span>" if any(p.arousal is not None for p in record.prosody) else "")
    return ('<div class="legend">' + "".join(f'<span><span class="sw sw-{k}"></span>{_e(v)}</span>' for k, v in items)
            + arousal + "<span>click anywhere on the timeline to play from there</span></div>")


# -------------------------------------------------------------------------------------------------- flags

def _filters(record: SessionRecord) -> str:
    present = [t for t in FLAG_TYPES if any(e.type == t for e in record.events)] or ["rupture", "repair"]
    boxes = "".join(
        f'<label><input type="checkbox" name="ftype" value="{t}" checked> {_e(type_label(t))} '
        f'({sum(1 for e in record.events if e.type == t)})</label>' for t in present)
    return (f'<div class="filters" id="filters">{boxes}'
            '<label>min. confidence <input type="range" id="minconf" min="0" max="1" step="0.05" value="0"> '
            '<output id="minconf-val">0.00</output></label>'
            '<span class="hint">keys: j / n next flag, k / p previous, Enter plays</span></div>')


def _turn_line(t: Turn, names: Mapping[str, str], focus: bool) -> str:
    cls = ' class="focus"' if focus else ""
    return (f'<p{cls} data-start="{_t(t.start)}"><button class="t" type="button" data-start="{_t(t.start)}">'
            f'{_clock(t.start)}</button> <b>{_e(names.get(t.speaker, t.speaker))}:</b> {_e(t.text)}</p>')


def _flag(i: int, ev: Event, by_index: Mapping[int, Turn], order: Sequence[int], names: Mapping[str, str],
          repaired_by: Mapping[int, Event]) -> str:
    sub = subtype_label(ev.subtype)
    head = [f'<button class="t" type="button" data-start="{_t(ev.start)}">{_clock(ev.start)}</button>',
            f'<span class="kind">{_e(type_label(ev.type)[:1].upper() + type_label(ev.type)[1:])}</span>']
    if sub:
        head.append(f'<span class="sub">{_e(sub)}</span>')
    head.append(f'<span class="conf">confidence {ev.confidence:.2f}</span>')
    if ev.type == "rupture":
        if ev.resolved:
            head.append('<span class="status resolved">resolved</span>')
            if ev.repair_turn_index is not None and ev.repair_turn_index in by_index:
                rt = by_index[ev.repair_turn_index].start
                head.append(f'<button class="t jump" type="button" data-start="{_t(rt)}">repair at {_clock(rt)}</button>')
        else:
            head.append('<span class="status unresolved">unresolved</span>')
    if ev.type == "repair" and ev.turn_index is not None and ev.turn_index in repaired_by:
        r = repaired_by[ev.turn_index]
        head.append(f'<span class="status resolved">repairs</span><button class="t jump" type="button" '
                    f'data-start="{_t(r.start)}">rupture at {_clock(r.start)}</button>')
    if ev.speaker:
        who = names.get(ev.speaker, ev.speaker)
        if ev.target_speaker:
            who += " → " + names.get(ev.target_speaker, ev.target_speaker)
        head.append(f'<span class="who">{_e(who)}</span>')
    if is_human_coded(ev):
        head.append('<span class="human">human-coded</span>')
    body = [f'<div class="head">{"".join(head)}</div>']
    if ev.evidence:
        body.append(f'<p class="evidence">{_e(ev.evidence)}</p>')
    voice = ev.details.prosody_evidence
    if isinstance(voice, str) and voice:
        body.append(f'<p class="voice">{_e(voice)}</p>')
    if ev.turn_index is not None and ev.turn_index in by_index:
        pos = order.index(ev.turn_index) if ev.turn_index in order else -1
        if pos >= 0:
            ctx = [by_index[order[j]] for j in range(max(0, pos - 2), min(len(order), pos + 2))]
            lines = "".join(_turn_line(t, names, t.index == ev.turn_index) for t in ctx)
            body.append(f'<details><summary>surrounding turns</summary>{lines}</details>')
    return (f'<li class="flag t-{ev.type}" id="flag-{i}" tabindex="0" data-type="{ev.type}" '
            f'data-conf="{ev.confidence:.3f}" data-start="{_t(ev.start)}">{"".join(body)}</li>')


def _flags(record: SessionRecord, names: Mapping[str, str]) -> tuple[str, int, list[dict[str, Any]]]:
    by_index = {t.index: t for t in record.turns}
    order = [t.index for t in record.turns]
    repaired_by = {e.repair_turn_index: e for e in record.events
                   if e.type == "rupture" and e.resolved and e.repair_turn_index is not None}
    flags = sorted((e for e in record.events if e.type in FLAG_TYPES), key=lambda e: (e.start, e.type))
    items = [_flag(i, e, by_index, order, names, repaired_by) for i, e in enumerate(flags)]
    data = [{"type": e.type, "subtype": e.subtype, "start": round(e.start, 3), "end": round(e.end, 3),
             "confidence": round(e.confidence, 4), "turn_index": e.turn_index} for e in flags]
    if not items:
        return '<ol class="flags" id="flags"></ol><p class="empty">No flagged moments.</p>', 0, data
    return '<ol class="flags" id="flags">\n' + "\n".join(items) + "\n</ol>", len(items), data


MOMENTS = 5  # ruptures listed first on the review page


def _moments(record: SessionRecord, names: Mapping[str, str]) -> str:
    """The few most likely ruptures, most likely first, each with the repair that followed (or none): where a
    reviewer starts. Each links to its entry in the flagged moments and plays from its start."""
    flags = sorted((e for e in record.events if e.type in FLAG_TYPES), key=lambda e: (e.start, e.type))
    flag_no = {id(e): i for i, e in enumerate(flags)}
    by_index = {t.index: t for t in record.turns}
    repairs = {e.turn_index: e for e in record.events if e.type == "repair"}
    ruptures = sorted((e for e in record.events if e.type == "rupture"), key=lambda e: (-e.confidence, e.start))
    items = []
    for ev in ruptures[:MOMENTS]:
        turn = by_index.get(ev.turn_index) if ev.turn_index is not None else None
        quote_ = f' <q>{_e(trim(turn.text, 120))}</q>' if turn is not None else ""
        rep = repairs.get(ev.repair_turn_index) if ev.resolved else None
        after = (f'repaired at <button class="t" type="button" data-start="{_t(rep.start)}">{_clock(rep.start)}</button>'
                 f' ({_e(subtype_label(rep.subtype))})' if rep is not None else "not repaired")
        who = _e(names.get(ev.speaker, ev.speaker or "?"))
        items.append(f'<li><button class="t" type="button" data-start="{_t(ev.start)}">{_clock(ev.start)}</button> '
                     f'<a href="#flag-{flag_no.get(id(ev), 0)}">{_e(subtype_label(ev.subtype))}</a> '
                     f'<span class="conf">{ev.confidence:.0%}</span> {who}:{quote_}; {after}</li>')
    if not items:
        return '<p class="empty">No rupture flagged.</p>'
    return '<ol class="moments" id="moments">\n' + "\n".join(items) + "\n</ol>"


def _transcript(record: SessionRecord, names: Mapping[str, str], roles: Mapping[str, str]) -> str:
    flagged = {e.turn_index for e in record.events if e.type in ("rupture", "repair") and e.turn_index is not None}
    rows = []
    for t in record.turns:
        role = roles.get(t.speaker, t.role) or "unknown"
        cls = "turn flagged" if t.index in flagged else "turn"
        rows.append(f'<li class="{cls}" id="turn-{t.index}" data-start="{_t(t.start)}" data-end="{_t(t.end)}">'
                    f'<button class="t" type="button" data-start="{_t(t.start)}">{hms(t.start, 0)}</button>'
                    f'<span class="spk r-{_e(role)}">{_e(names.get(t.speaker, t.speaker))}</span>'
                    f'<span class="txt">{_e(t.text)}</span></li>')
    if not rows:
        return '<ol class="transcript" id="transcript"></ol><p class="empty">No transcript.</p>'
    return '<ol class="transcript" id="transcript">\n' + "\n".join(rows) + "\n</ol>"


def _flatten(prefix: str, v: Any, out: list[tuple[str, str]], depth: int = 0) -> None:
    if len(out) >= 300:
        return
    if isinstance(v, Mapping) and depth < 4:
        for k in v:
            _flatten(f"{prefix}.{k}" if prefix else str(k), v[k], out, depth + 1)
    elif isinstance(v, float):
        out.append((prefix, f"{v:.4g}"))
    elif isinstance(v, (list, tuple)) and len(v) > 12:
        out.append((prefix, f"[{len(v)} values]"))
    else:
        out.append((prefix, json.dumps(v, ensure_ascii=False, default=str) if not isinstance(v, str) else v))


def _measures(record: SessionRecord) -> str:
    rows: list[tuple[str, str]] = []
    _flatten("", metrics_to_dict(record.metrics), rows)
    if not rows:
        return '<p class="empty">No measures recorded.</p>'
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<details><summary>all measures ({len(rows)})</summary><table class="measures">{body}</table></details>'


def audio_href(relative_path: str | None) -> str | None:
    """A relative filesystem path ('../in/a b.wav') as a URL path ('../in/a%20b.wav')."""
    if not relative_path:
        return None
    return quote(relative_path.replace("\\", "/"), safe="/._-~")


def render_report(record: SessionRecord, audio_relpath: str | None) -> str:
    """report.html for one session. `audio_relpath`: the recording's path relative to the page's folder."""
    names = speaker_names(record)
    roles = speaker_roles(record)
    css = _asset("report.css")
    js = _asset("report.js")
    href = audio_href(audio_relpath)
    flags_html, n_flags, flag_data = _flags(record, names)
    data = {
        "session_id": record.session_id,
        "duration": round(float(record.duration_s), 3),
        "timeline": {"x0": _X0, "width": _W},
        "turns": [[round(t.start, 3), round(t.end, 3)] for t in record.turns],
        "flags": flag_data,
    }
    return _fill(_asset("report.html"), {
        "CSP": _e(_csp(js, css, media=href is not None)),
        "TITLE": _e(f"Session {record.session_id}: review"),
        "CSS": css,
        "HEADER": _header(record, names),
        "AUDIO": _audio(href),
        "TIMELINE": _timeline(record, names, roles),
        "LEGEND": _legend(record),
        "MOMENTS": _moments(record, names),
        "FLAG_COUNT": str(n_flags),
        "FILTERS": _filters(record),
        "FLAGS": flags_html,
        "TRANSCRIPT": _transcript(record, names, roles),
        "MEASURES": _quality_table(record, names) + _measures(record),
        "DATA": _json_for_script(data),
        "JS": js,
    })


# -------------------------------------------------------------------------------------------------- index

@dataclass(frozen=True)
class SessionSummary:
    """One row of the batch index.

    status: "ok" | "failed" | "refused" | "skipped"; error/stage: why and where a session failed (a
    message without transcript text); counts: flat counts as from `summary_from_record` (ruptures,
    ruptures_resolved, ruptures_unresolved, repairs, interruptions, turns, therapist_talk_share, ...);
    report: the report page relative to the index (default "<session_id>/report.html" when status is ok).
    """

    session_id: str
    status: str
    error: str | None = None
    stage: str | None = None
    duration_s: float | None = None
    counts: Mapping[str, Any] = field(default_factory=dict)
    report: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} is not one of {', '.join(STATUSES)}")


def summary_from_record(record: SessionRecord, status: str = "ok") -> SessionSummary:
    return SessionSummary(session_id=record.session_id, status=status, duration_s=record.duration_s,
                          counts=session_counts(record))


def _count(c: Mapping[str, Any], key: str) -> str:
    v = c.get(key)
    return "" if v is None else _e(v)


def render_index(sessions: Sequence[SessionSummary], title: str = "Batch review index") -> str:
    css = _asset("index.css")
    head = ("<tr><th>Session</th><th>Status</th><th>Duration</th><th>Ruptures</th><th>resolved</th>"
            "<th>unresolved</th><th>Repairs</th><th>Interruptions</th><th>Therapist share</th>"
            "<th>Failure</th></tr>")
    rows = []
    for s in sorted(sessions, key=lambda s: s.session_id):
        c = s.counts
        if s.status in ("ok", "skipped") or s.report:
            href = s.report or f"{s.session_id}/report.html"
            name = f'<a href="{_e(quote(href, safe="/._-~"))}">{_e(s.session_id)}</a>'
        else:
            name = _e(s.session_id)
        err = ""
        if s.error or s.stage:
            err = f'<span class="err">{_e((s.stage + ": ") if s.stage else "")}{_e(s.error or "")}</span>'
        if c.get("quality_warnings"):
            err += (f'<span class="err">check the recording: {_e(c["quality_warnings"])} quality '
                    f'warning{"s" * (c["quality_warnings"] != 1)} (see the report)</span>')
        share = c.get("therapist_talk_share")
        rows.append(
            f'<tr id="row-{_e(s.session_id)}" data-status="{_e(s.status)}"><td>{name}</td>'
            f'<td><span class="status s-{_e(s.status)}">{_e(s.status)}</span></td>'
            f'<td class="num">{hms(s.duration_s, 0) if s.duration_s is not None else ""}</td>'
            f'<td class="num">{_count(c, "ruptures")}</td><td class="num">{_count(c, "ruptures_resolved")}</td>'
            f'<td class="num">{_count(c, "ruptures_unresolved")}</td><td class="num">{_count(c, "repairs")}</td>'
            f'<td class="num">{_count(c, "interruptions")}</td>'
            f'<td class="num">{_pct(share) if isinstance(share, (int, float)) else ""}</td><td>{err}</td></tr>')
    n = {st: sum(1 for s in sessions if s.status == st) for st in STATUSES}
    summary = f"{len(sessions)} sessions: " + ", ".join(f"{v} {k}" for k, v in n.items() if v) if sessions \
        else "No sessions."
    table = f'<table id="sessions"><thead>{head}</thead><tbody>\n' + "\n".join(rows) + "\n</tbody></table>"
    csp = ("default-src 'none'; " f"style-src 'sha256-{_sha256_b64(css)}'; img-src 'none'; "
           "base-uri 'none'; form-action 'none'")
    return _fill(_asset("index.html"), {"CSP": _e(csp), "TITLE": _e(title), "CSS": css,
                                         "SUMMARY": _e(summary), "TABLE": table})
