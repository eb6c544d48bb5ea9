"""Shared set-up of the tagger's training and evaluation entry points: the real-talk conversations, the
text encoder from the model store, and the feature tables of each copy (cached under out/tagger-cache)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from research.realtalk import DEFAULT_CSV, Conversation, load_conversations
from research.tagger_train import LOG, Table, build_table, written_table

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "out" / "tagger-cache"
KINDS = ("clean", "noised", "noised_noroles")


def load(csv: Path = DEFAULT_CSV, kinds: Sequence[str] = KINDS, store: str = "", threads: int = 2,
         context_turns: int = 2, max_length: int = 128, written: bool = False, log: LOG = print,
         encoder: str = "minilm", features: str = "frozen3t") -> tuple[tuple[Conversation, ...], dict[str, Table], object]:
    """`encoder`: a model store name (models/manifest.yaml) or a directory holding a transformers encoder
    (for trying one that is not in the store yet); `features`: models.tagger.featurize's kind."""
    import pipeline.offline  # noqa: F401  (offline env before any ML import)

    import torch

    from models.store import resolve
    from models.tagger import TextEncoder

    if not csv.is_file():
        raise SystemExit(f"{csv} not found: the real-talk data lives in ../shared/data/real-talk/ (pass --data)")
    torch.set_num_threads(threads)
    convs = load_conversations(csv)
    enc_info = Path(encoder) if Path(encoder).is_dir() else resolve(encoder, store)
    enc = TextEncoder(enc_info if isinstance(enc_info, Path) else enc_info.path, max_length=max_length)
    tables = {k: build_table(enc, convs, k, context_turns, CACHE, log=log, features=features) for k in kinds}
    if written:
        tables["written"] = written_table(enc, ROOT / "models" / "tagger" / "data", context_turns, CACHE, log, features)
    return convs, tables, enc_info
