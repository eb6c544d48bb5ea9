"""Train the bundled rupture/repair tagger head (models/tagger/) on the real-talk conversations.

    .venv/bin/python scripts/train_tagger.py [--data CSV] [--out models/tagger]   # ~1 min with cached features

Trains on all 113 coded conversations of ../shared/data/real-talk (the ASR-style copy: what the pipeline
hands the tagger from Whisper): the encoder heads and the lexical part (TF-IDF heads), each the average of
the 5 fold models (folds by conversation) whose out-of-fold scores set their blend, the session-context
weights and the thresholds. Writes head.safetensors + head.json and, for the bundled
folder, pins the pair's digest in models/tagger.py (BUNDLED_HEAD_SHA256). The procedure is in
scripts/research/tagger_train.py; its cross-validated figures come from scripts/eval_tagger.py.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

from research.realtalk import DEFAULT_CSV
from research.tagger_setup import ROOT, load
from research.tagger_train import TrainSettings, train_head, write_head


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_CSV)
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "tagger")
    args = ap.parse_args(argv)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    settings = TrainSettings()
    convs, tables, enc = load(args.data, kinds=("noised",), written=settings.written_weight > 0, log=log,
                              features=settings.features)
    fitted = train_head(convs, tables, settings, log)
    info = {
        "name": "3rs-realtalk-linear", "version": "3.3", "encoder": "minilm", "encoder_sha256": enc.info.sha256,
        "features": settings.features, "pooling": "mean, L2-normalised", "max_length": 128, "context_turns": 2,
        "train": {"data": args.data.name, "data_sha256": hashlib.sha256(args.data.read_bytes()).hexdigest(),
                  "conversations": len(convs), "copy": settings.train_kinds, "C": settings.C,
                  "standardise": settings.standardise, "max_false_per_100_calm": settings.max_false_per_100,
                  "written_corpus_weight": settings.written_weight, "lexical": settings.lexical,
                  "lexical_C": settings.lexical_C, "fold_average": settings.fold_average,
                  "context_window": settings.window, "context_lookback": settings.lookback,
                  "single_coder_positives": settings.single_coder_positives},
    }
    digest = write_head(args.out, fitted, info)
    print(f"wrote {args.out}: threshold {fitted['threshold']:.3f}, repair threshold {fitted['repair_threshold']:.3f}, "
          f"digest {digest}")
    if args.out.resolve() == (ROOT / "models" / "tagger").resolve():
        src = ROOT / "models" / "tagger.py"
        text = src.read_text(encoding="utf-8")
        src.write_text(re.sub(r'^BUNDLED_HEAD_SHA256 = "[^"]*"', f'BUNDLED_HEAD_SHA256 = "{digest}"', text,
                              count=1, flags=re.M), encoding="utf-8")
        print(f"pinned the bundled head's digest in {src.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
