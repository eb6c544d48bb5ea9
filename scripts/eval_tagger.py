"""Evaluate the rupture/repair tagger on real talk: grouped 5-fold cross-validation on
../shared/data/real-talk (folds by conversation), beside a bag-of-words baseline on the same folds.

    .venv/bin/python scripts/eval_tagger.py [--data CSV] [--json out/eval_tagger.json] [--no-baseline] [--no-lexical] [--refit]

Prints, for the ASR-style copy (the figure that counts), the clean transcripts and the ASR-style copy with
no roles: rupture P/R/F1, false ruptures per 100 calm client utterances, repair P/R/F1, precision of the
top 3 and top 5 moments per conversation, and the Spearman correlation of per-conversation rupture counts
with the coders', pooled over all held-out conversations with the spread across folds, for the model, the
bag-of-words baseline and the baseline with the model's session-context stage, and the model's margin; and,
for diagnosis only, the F1 that the best single threshold on the scores would give (a ceiling: it reads
the held-out labels). Then false ruptures per 10 minutes on the team's written calm sessions, of the
bundled head, or with options that change the recipe, of a head trained on every conversation with them.
The options marked "exploration" reproduce rows of models/tagger/MODEL_CARD.md that were not taken. See
scripts/research/tagger_cv.py for the procedure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from research.realtalk import DEFAULT_CSV
from research.tagger_blocks import BLOCKS, ENCODED, with_block
from research.tagger_cv import EVAL_KINDS, cross_validate
from research.tagger_report import calm_written_sessions, print_cv
from research.tagger_setup import load
from research.tagger_train import TrainSettings


def classifier_like(settings: TrainSettings, convs, tables, enc_info, log):  # type: ignore[no-untyped-def]
    """None (the bundled head) when `settings` are the shipped ones; otherwise a classifier on a head trained on
    every conversation with `settings`, so that the written calm check judges the candidate, not the bundled
    head (the head is written to a temporary directory, loaded, and the directory removed)."""
    import tempfile

    from models.tagger import MarkerClassifier
    from pipeline.config import ModelsConfig, TaggingConfig
    from research.tagger_train import train_head, write_head

    if settings == TrainSettings():
        return None
    log("written calm check: training a head on every conversation with these settings")
    info = {"name": "candidate", "version": "eval", "encoder": "minilm", "encoder_sha256": enc_info.info.sha256,
            "features": settings.features, "pooling": "mean, L2-normalised", "max_length": 128, "context_turns": 2,
            "train": {}}
    fitted = train_head(convs, tables, settings, log)
    with tempfile.TemporaryDirectory(prefix="rupture-eval-head-") as d:
        write_head(Path(d), fitted, info)
        return MarkerClassifier(TaggingConfig(classifier=d), ModelsConfig())  # loads the head into memory


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_CSV)
    ap.add_argument("--json", type=Path, help="write every figure (pooled and per fold) here")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--no-calm", action="store_true", help="skip the written calm sessions check")
    ap.add_argument("--no-lexical", action="store_true",
                    help="the model without its lexical part (encoder heads only), for comparison")
    ap.add_argument("--lexical-C", type=float, default=TrainSettings.lexical_C,
                    help="regularisation of the lexical part's logistic regressions (default %(default)s)")
    ap.add_argument("--refit", action="store_true",
                    help="one model refitted on all training conversations instead of the average of the fold "
                         "models (TrainSettings.fold_average), for comparison")
    ap.add_argument("--encoder", default="minilm",
                    help="text encoder: a model store name or a directory with a transformers encoder, to try "
                         "one that is not bundled (default %(default)s; the features are cached per encoder)")
    ap.add_argument("--kinds", default=",".join(EVAL_KINDS),
                    help="copies to score, comma-separated, noised first (default %(default)s)")
    ap.add_argument("--train-kinds", default=",".join(TrainSettings.train_kinds),
                    help="copies stage 1 is trained on, comma-separated (default %(default)s)")
    ap.add_argument("--features", default=TrainSettings.features, choices=("frozen3", "frozen3t"),
                    help="models.tagger.featurize's kind (default %(default)s; frozen3: the exchange pooled over all "
                         "its tokens, as heads before 3.3)")
    ap.add_argument("--consensus-only", action="store_true",
                    help="train on the coders' consensus only (heads before 3.3), not also on the turns one "
                         "coder coded (TrainSettings.single_coder_positives)")
    ap.add_argument("--extra-block", choices=BLOCKS,
                    help="exploration: add a candidate feature block (research.tagger_blocks) to every copy's "
                         "features; the written calm check is skipped (the pipeline's classifier has no such block)")
    ap.add_argument("--written-weight", type=float, default=TrainSettings.written_weight,
                    help="exploration: add the team's written corpus to stage 1 at this weight (default %(default)s: "
                         "not used); the written calm check then reads a head trained with it")
    ap.add_argument("--written-families", default="",
                    help="with --written-weight: only the written rows of these families, comma-separated "
                         "(e.g. confrontation); default all")
    args = ap.parse_args(argv)
    kinds = tuple(k for k in args.kinds.split(",") if k)
    if not kinds or kinds[0] != "noised" or not set(kinds) <= set(EVAL_KINDS):
        ap.error(f"--kinds: noised first, then any of {', '.join(EVAL_KINDS[1:])}")
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    train_kinds = tuple(k for k in args.train_kinds.split(",") if k)
    settings = TrainSettings(lexical=not args.no_lexical, lexical_C=args.lexical_C, fold_average=not args.refit,
                             train_kinds=train_kinds, features=args.features,
                             single_coder_positives=not args.consensus_only, written_weight=args.written_weight,
                             written_families=tuple(f for f in args.written_families.split(",") if f))
    convs, tables, enc_info = load(args.data, kinds=tuple(dict.fromkeys(kinds + train_kinds)), written=settings.written_weight > 0, log=log,
                                   encoder=args.encoder, features=settings.features)
    if args.extra_block:
        from models.tagger import TextEncoder
        from research.tagger_setup import CACHE

        enc = TextEncoder(enc_info if isinstance(enc_info, Path) else enc_info.path) \
            if args.extra_block in ENCODED else None
        tables = {k: with_block(t, args.extra_block, enc, cache=CACHE) for k, t in tables.items()}
    res = cross_validate(convs, tables, settings, log=log, baseline=not args.no_baseline, eval_kinds=kinds)
    print_cv(res, kinds)
    if not (args.no_calm or args.extra_block or args.encoder != "minilm"):  # the check runs the pipeline's classifier
        res["calm_written"] = calm_written_sessions(classifier_like(settings, convs, tables, enc_info, log))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
