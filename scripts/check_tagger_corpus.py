"""Validate a rupture/repair marker corpus split (JSONL) and print its label counts.

Usage:
    python scripts/check_tagger_corpus.py FILE.jsonl [FILE.jsonl ...] [--min-per-subtype N] [--quiet]

Each line is one JSON object:

    {"id": "test-0001",
     "modality": "cbt",                                   # lower-case word(s), e.g. cbt, mi, dbt
     "context": [{"role": "therapist"|"client", "text": str}, ...],   # 1-3 turns, oldest first
     "target": {"role": "therapist"|"client", "text": str},
     "label": "none" | <rupture subtype> | <repair subtype>,
     "cues": {"latency_s": float|null, "interrupts_previous": bool}}

Rules checked (each violation is an error with its line number; the text itself is never printed):
  * exactly the keys above, at every level; strings non-empty; ids unique within a file;
  * label is `none`, a rupture subtype (client targets only) or a repair subtype (therapist targets only),
    spelled exactly as in /work/shared/CONTRACT.md;
  * latency_s is null or a finite number in [0, 60]; interrupts_previous is a bool;
  * with --min-per-subtype N, every rupture and repair subtype has at least N items (summed over the
    files given).
Warnings (do not fail): a modality outside the usual list, the same item twice in one file, and
items shared between files given together (possible train/test leakage; reported as id pairs). Two
items count as the same when the last context turn and the target match after normalising case and
punctuation, so a backchannel like "Mm-hmm." after different turns is not a duplicate.

Exit status: 0 when no errors, 1 when any, 2 on a usage error (missing file).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.records import REPAIR_SUBTYPES, RUPTURE_SUBTYPES  # noqa: E402  (the CONTRACT vocabulary)

LABELS: tuple[str, ...] = ("none",) + RUPTURE_SUBTYPES + REPAIR_SUBTYPES
ROLES: tuple[str, ...] = ("therapist", "client")
KNOWN_MODALITIES: tuple[str, ...] = (
    "cbt",
    "psychodynamic",
    "couples",
    "mi",
    "trauma",
    "dbt",
    "person_centred",
    "act",
    "family",
    "group",
    "schema",
    "emdr",
    "integrative",
)
ITEM_KEYS = frozenset({"id", "modality", "context", "target", "label", "cues"})
TURN_KEYS = frozenset({"role", "text"})
CUE_KEYS = frozenset({"latency_s", "interrupts_previous"})
MAX_LATENCY_S = 60.0
_MODALITY_RE = re.compile(r"^[a-z][a-z_]*$")


def label_family(label: str) -> str:
    """`none`, `withdrawal`, `confrontation` or `repair` for a valid label."""
    if label == "none":
        return "none"
    if label in REPAIR_SUBTYPES:
        return "repair"
    return label.split(".", 1)[0]


def _check_turn(turn: object, where: str) -> list[str]:
    if not isinstance(turn, dict):
        return [f"{where}: must be an object"]
    errors: list[str] = []
    keys = set(turn)
    if keys != TURN_KEYS:
        errors.append(f"{where}: keys must be {sorted(TURN_KEYS)}, got {sorted(keys)}")
    role = turn.get("role")
    if role not in ROLES:
        errors.append(f"{where}.role: must be one of {list(ROLES)}")
    text = turn.get("text")
    if not isinstance(text, str) or not text.strip():
        errors.append(f"{where}.text: must be a non-empty string")
    elif text != text.strip():
        errors.append(f"{where}.text: leading/trailing whitespace")
    return errors


def validate_item(obj: object) -> list[str]:
    """Every schema violation of one parsed line, as messages that never quote the text."""
    if not isinstance(obj, dict):
        return ["line is not a JSON object"]
    errors: list[str] = []
    keys = set(obj)
    if keys != ITEM_KEYS:
        parts = []
        if ITEM_KEYS - keys:
            parts.append(f"missing {sorted(ITEM_KEYS - keys)}")
        if keys - ITEM_KEYS:
            parts.append(f"unexpected {sorted(keys - ITEM_KEYS)}")
        errors.append("keys: " + ", ".join(parts))
    item_id = obj.get("id")
    if not isinstance(item_id, str) or not item_id.strip():
        errors.append("id: must be a non-empty string")
    modality = obj.get("modality")
    if not isinstance(modality, str) or not _MODALITY_RE.match(modality):
        errors.append("modality: must be a lower-case word (letters and _)")
    context = obj.get("context")
    if not isinstance(context, list) or not 1 <= len(context) <= 3:
        errors.append("context: must be a list of 1 to 3 turns")
    else:
        for i, turn in enumerate(context):
            errors.extend(_check_turn(turn, f"context[{i}]"))
    target = obj.get("target")
    errors.extend(_check_turn(target, "target"))
    label = obj.get("label")
    if label not in LABELS:
        errors.append(f"label: unknown label {label!r}")
    elif isinstance(target, dict):
        role = target.get("role")
        if label in RUPTURE_SUBTYPES and role != "client":
            errors.append(f"label: rupture subtype {label} on a {role} target (client only)")
        if label in REPAIR_SUBTYPES and role != "therapist":
            errors.append(f"label: repair subtype {label} on a {role} target (therapist only)")
    cues = obj.get("cues")
    if not isinstance(cues, dict):
        errors.append("cues: must be an object")
    else:
        if set(cues) != CUE_KEYS:
            errors.append(f"cues: keys must be {sorted(CUE_KEYS)}, got {sorted(cues)}")
        latency = cues.get("latency_s")
        if latency is not None:
            if isinstance(latency, bool) or not isinstance(latency, (int, float)):
                errors.append("cues.latency_s: must be a number or null")
            elif not math.isfinite(latency) or not 0.0 <= latency <= MAX_LATENCY_S:
                errors.append(f"cues.latency_s: must be in [0, {MAX_LATENCY_S:g}] seconds")
        if not isinstance(cues.get("interrupts_previous"), bool):
            errors.append("cues.interrupts_previous: must be true or false")
    return errors


@dataclass(frozen=True)
class FileReport:
    """Result of checking one JSONL file."""

    path: str
    n_items: int
    errors: tuple[str, ...]
    warnings: tuple[str, ...]
    labels: tuple[tuple[str, int], ...]
    families: tuple[tuple[str, int], ...]
    modalities: tuple[tuple[str, int], ...]
    target_roles: tuple[tuple[str, int], ...]
    target_keys: tuple[tuple[str, str], ...] = field(repr=False)  # (normalised last context + target, id)


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def item_key(obj: dict) -> str:
    """Normalised (last context turn, target) of a valid item, for duplicate and leakage checks."""
    return _norm(obj["context"][-1]["text"]) + " || " + _norm(obj["target"]["text"])


def check_lines(lines: list[str], path: str = "<memory>") -> FileReport:
    """Check the lines of one split; pure (no I/O)."""
    errors: list[str] = []
    warnings: list[str] = []
    labels: Counter[str] = Counter()
    families: Counter[str] = Counter()
    modalities: Counter[str] = Counter()
    roles: Counter[str] = Counter()
    seen_ids: dict[str, int] = {}
    seen_targets: dict[str, str] = {}
    target_keys: list[tuple[str, str]] = []
    n_items = 0
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():
            errors.append(f"{path}:{lineno}: blank line")
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            errors.append(f"{path}:{lineno}: invalid JSON ({e.msg} at column {e.colno})")
            continue
        n_items += 1
        item_errors = validate_item(obj)
        errors.extend(f"{path}:{lineno}: {msg}" for msg in item_errors)
        if not isinstance(obj, dict):
            continue
        item_id = obj.get("id")
        if isinstance(item_id, str):
            if item_id in seen_ids:
                errors.append(f"{path}:{lineno}: duplicate id {item_id!r} (first on line {seen_ids[item_id]})")
            else:
                seen_ids[item_id] = lineno
        if item_errors:
            continue
        label = obj["label"]
        labels[label] += 1
        families[label_family(label)] += 1
        modalities[obj["modality"]] += 1
        roles[obj["target"]["role"]] += 1
        if obj["modality"] not in KNOWN_MODALITIES:
            warnings.append(f"{path}:{lineno}: unusual modality {obj['modality']!r}")
        key = item_key(obj)
        if key in seen_targets:
            warnings.append(f"{path}:{lineno}: same last context turn and target as id {seen_targets[key]!r}")
        else:
            seen_targets[key] = item_id
        target_keys.append((key, item_id))
    return FileReport(
        path=path,
        n_items=n_items,
        errors=tuple(errors),
        warnings=tuple(warnings),
        labels=tuple(sorted(labels.items())),
        families=tuple(sorted(families.items())),
        modalities=tuple(sorted(modalities.items())),
        target_roles=tuple(sorted(roles.items())),
        target_keys=tuple(target_keys),
    )


def check_file(path: Path) -> FileReport:
    """Read and check one JSONL file."""
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]
    return check_lines(lines, str(path))


def subtype_shortfalls(reports: list[FileReport], minimum: int) -> list[str]:
    """Subtypes with fewer than `minimum` items over all reports."""
    total: Counter[str] = Counter()
    for report in reports:
        total.update(dict(report.labels))
    return [
        f"subtype {name} has {total[name]} items (< {minimum})"
        for name in RUPTURE_SUBTYPES + REPAIR_SUBTYPES
        if total[name] < minimum
    ]


def cross_file_overlaps(reports: list[FileReport]) -> list[str]:
    """Items (last context turn + target) that occur in more than one file, by id, never quoting text."""
    out: list[str] = []
    for i, a in enumerate(reports):
        index = {key: item_id for key, item_id in a.target_keys}
        for b in reports[i + 1 :]:
            for key, item_id in b.target_keys:
                if key in index:
                    out.append(f"item shared: {a.path}#{index[key]} and {b.path}#{item_id}")
    return out


def _print_counts(title: str, counts: tuple[tuple[str, int], ...], n: int) -> None:
    print(f"  {title}:")
    for name, count in counts:
        share = 100.0 * count / n if n else 0.0
        print(f"    {name:<45} {count:>5}  {share:5.1f}%")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("files", nargs="+", type=Path, help="JSONL split files")
    parser.add_argument("--min-per-subtype", type=int, default=0, metavar="N",
                        help="error when any rupture/repair subtype has fewer than N items in total")
    parser.add_argument("--quiet", action="store_true", help="print only errors and the summary line")
    args = parser.parse_args(argv)

    reports: list[FileReport] = []
    for path in args.files:
        if not path.is_file():
            print(f"error: {path}: no such file", file=sys.stderr)
            return 2
        reports.append(check_file(path))

    errors: list[str] = []
    warnings: list[str] = []
    for report in reports:
        errors.extend(report.errors)
        warnings.extend(report.warnings)
        if not args.quiet:
            print(f"{report.path}: {report.n_items} items")
            _print_counts("families", report.families, report.n_items)
            _print_counts("labels", report.labels, report.n_items)
            _print_counts("modalities", report.modalities, report.n_items)
            _print_counts("target roles", report.target_roles, report.n_items)
    if args.min_per_subtype > 0:
        errors.extend(subtype_shortfalls(reports, args.min_per_subtype))
    warnings.extend(cross_file_overlaps(reports))

    for msg in warnings:
        print(f"warning: {msg}", file=sys.stderr)
    for msg in errors:
        print(f"error: {msg}", file=sys.stderr)
    n = sum(r.n_items for r in reports)
    print(f"{len(reports)} file(s), {n} items, {len(errors)} error(s), {len(warnings)} warning(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
