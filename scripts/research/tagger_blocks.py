"""Candidate feature blocks appended to a feature table, for trying them on the grouped CV
(`scripts/eval_tagger.py --extra-block NAME`). None of them is in the shipped head; MODEL_CARD.md lists their
figures ("What was tried").

- `next`: the next turn's own embedding (the first block of the next row; usually the therapist's reply, which
  an offline run has);
- `next_exchange`: the next turn's exchange block (the reply as the encoder read it after this turn);
- `max`, `layer3`, `layer4`: from the same (context, turn) pair encoding as the `frozen3t` exchange block, over
  the turn's own tokens: the max of the last layer, or the mean of hidden layer 3 or 4 of MiniLM's 6.
  These need one more pass of the encoder (about 2 minutes for the ASR-style copy on 2 cores), cached beside
  the feature tables.

Each block is L2-normalised, like the shipped blocks, and goes before the two role columns.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from research.tagger_train import Table, turns_of

BLOCKS = ("next", "next_exchange", "max", "layer3", "layer4")
ENCODED = {"max": None, "layer3": 3, "layer4": 4}  # blocks that need the encoder: None = max of the last layer


def _next(rows: np.ndarray, convs: tuple[str, ...]) -> np.ndarray:
    """Each row's next row in the same conversation (zeros for a conversation's last turn)."""
    out = np.zeros_like(rows)
    same = np.asarray(convs[1:]) == np.asarray(convs[:-1])
    out[:-1][same] = rows[1:][same]
    return out


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-9)).astype(np.float32)


def encoded_block(encoder, table: Table, name: str, context_turns: int, cache: Path | None,
                  batch_size: int = 64) -> np.ndarray:  # type: ignore[no-untyped-def]
    """`max`, `layer3` or `layer4` of every row of `table` (rows in the table's order)."""
    import torch

    from models.tagger import context_string, examples_from_turns, second_sequence_mask

    examples = [e for conv in dict.fromkeys(table.convs) for e in examples_from_turns(turns_of(table.turns[conv]),
                                                                                         context_turns)]
    if len(examples) != len(table.X):
        raise ValueError(f"{table.kind}: {len(examples)} examples for {len(table.X)} rows")
    key = hashlib.sha256(json.dumps([name, context_turns, encoder.model.name_or_path,
                                     [(e.context, e.target) for e in examples]]).encode()).hexdigest()[:20]
    path = cache / f"block-{table.kind}-{name}-{key}.npy" if cache else None
    if path is not None and path.is_file():
        return np.load(path)
    firsts = [context_string(e.context) for e in examples]
    seconds = [e.target[1] for e in examples]
    out = np.zeros((len(examples), encoder.dim), dtype=np.float32)
    order = np.argsort([len(a) + len(b) for a, b in zip(firsts, seconds)], kind="stable")
    layer = ENCODED[name]
    with torch.inference_mode():
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            enc = encoder.tokenize([firsts[i] for i in idx], [seconds[i] for i in idx])
            mask = second_sequence_mask(enc).unsqueeze(-1).float()
            hidden = encoder.model(**enc, output_hidden_states=layer is not None)
            if layer is None:
                h = hidden.last_hidden_state
                out[idx] = torch.where(mask > 0, h, torch.full_like(h, -1e4)).max(1).values.numpy()
            else:
                h = hidden.hidden_states[layer]
                out[idx] = ((h * mask).sum(1) / mask.sum(1).clamp(min=1.0)).numpy()
    out = _normalise(out)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, out)
    return out


def with_block(table: Table, name: str, encoder=None, context_turns: int = 2,
               cache: Path | None = None) -> Table:  # type: ignore[no-untyped-def]
    """`table` with the block `name` added before its role columns."""
    if name not in BLOCKS:
        raise ValueError(f"unknown block {name!r} ({', '.join(BLOCKS)})")
    d = (table.X.shape[1] - 2) // 3
    if name == "next":
        block = _next(table.X[:, :d], table.convs)
    elif name == "next_exchange":
        block = _next(table.X[:, 2 * d:3 * d], table.convs)
    else:
        block = encoded_block(encoder, table, name, context_turns, cache)
    X = np.concatenate([table.X[:, :-2], block, table.X[:, -2:]], axis=1)
    return Table(table.kind, table.convs, table.roles, table.labels, table.subtypes, X, table.turns,
                 table.labels_single)


__all__ = ["BLOCKS", "with_block"]
