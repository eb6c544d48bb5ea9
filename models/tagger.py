"""Rupture/repair marker classifier (3RS): a text encoder plus small trained linear heads.

`MarkerClassifier` loads once (`__init__`) and classifies every turn of a session (`__call__`), returning
one `pipeline.records.MarkerPrediction` per turn: probabilities over `LABELS` that respect the speaker's
role (rupture subtypes only on client turns, repair strategies only on therapist turns, both when the role
is unknown), and the raw rupture and repair scores that the session-context stage re-weighs
(`pipeline.tagging.in_context`, with the weights in head.json "context").

Features (the same function, `featurize`, serves training and inference):
  "frozen3": [ e(target) | e(previous turn) | e(context, target) | role one-hot (therapist, client) ]
  "frozen3t": the same, but e(context, target) pooled over the target's tokens only: the turn as the encoder
             read it after the turns before it (the bundled head since version 3.3)
  "pair":    [ e(context, target), not normalised | role one-hot ]   (for an encoder fine-tuned with LoRA)
where e() is the mean-pooled MiniLM embedding (L2-normalised for "frozen3"/"frozen3t"). The single-turn embeddings are
computed once per turn and reused as the "previous turn" of the next one.

Heads (head.safetensors, standardised features x): rupture and repair scores (logistic), the rupture family
(confrontation vs withdrawal, logistic) and the subtype within each family (softmax). For a client turn:
P(rupture) = sigmoid(rupture score), split into withdrawal/confrontation and then subtypes; for a therapist
turn P(repair) likewise; for an unknown role both, normalised with P(none) = (1 - P(rupture))(1 - P(repair)).
Trained by scripts/train_tagger.py on the real-talk conversations (../shared/data/real-talk).

Bundled head (models/tagger/): `head.safetensors`, `head.json` (labels, encoder, features, context weights,
thresholds, and the sha256 of head.safetensors, verified before loading), `MODEL_CARD.md`. The bundled
head's pair of files is also pinned in `BUNDLED_HEAD_SHA256` (an edited head.json is refused), and the
digest recorded in provenance covers both files.

Pluggable model: `TaggingConfig.classifier` may point at
  - another head directory of the same format, or
  - a transformers sequence-classification directory (config.json with `*ForSequenceClassification`)
    plus `label_map.json`: {"<model label or id>": "<our label>", ...} and optionally
    `{"temperature": T, "threshold": t}` under the key "_calibration". Its input is the context and the
    target turn as a text pair. Labels it does not map get probability 0 (renormalised).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import pipeline.offline  # noqa: F401  (offline env before any ML import)

import numpy as np
import torch
from torch import nn

from models._threads import parallel_map
from models.store import resolve, sha256_file
from pipeline.config import ModelsConfig, TaggingConfig
from pipeline.errors import ModelError, ModelIntegrityError
from pipeline.records import (CONFRONTATION_SUBTYPES, LABELS, REPAIR_SUBTYPES, RUPTURE_SUBTYPES, WITHDRAWAL_SUBTYPES,
                              MarkerPrediction, role_mask,
                              ModelInfo, Turn)

HEAD_DIR = Path(__file__).with_name("tagger")
HEAD_FILE = "head.safetensors"
HEAD_CONFIG = "head.json"
CONTEXT_CHARS = 600  # characters of context kept (the most recent ones) before tokenisation
# sha256 of the bundled head (head_digest: head.json + head.safetensors), written by scripts/train_tagger.py
BUNDLED_HEAD_SHA256 = "6ed2c916b43052645137af4958b9392c8be41fed1b90fba187fc819aa3de5f72"


@dataclass(frozen=True)
class Example:
    """One classification input: the preceding turns (oldest first) and the target, as (role, text)."""

    context: tuple[tuple[str, str], ...]
    target: tuple[str, str]


def context_string(context: Sequence[tuple[str, str]]) -> str:
    s = " ".join(f"{role}: {text.strip()}" for role, text in context)
    return s[-CONTEXT_CHARS:]


def examples_from_turns(turns: Sequence[Turn], context_turns: int) -> list[Example]:
    out = []
    for i, t in enumerate(turns):
        ctx = tuple((p.role, p.text) for p in turns[max(0, i - context_turns):i])
        out.append(Example(ctx, (t.role, t.text)))
    return out


class TextEncoder:
    """Mean-pooled, L2-normalised sentence embeddings from a local transformers encoder."""

    def __init__(self, path: Path, max_length: int = 128, parallel_batches: int = 1) -> None:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Loading weights" bar in batch logs
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            self.model = AutoModel.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as e:
            raise ModelError(f"cannot load the text encoder from {path}: {e}") from e
        self.model.eval()
        self.max_length = max_length
        self.dim = int(self.model.config.hidden_size)
        # batches encoded by this many threads at once (models._threads; the same numbers as one at a time)
        self.parallel_batches = max(1, int(parallel_batches))

    def _encode(self, firsts: list[str], seconds: list[str] | None, batch_size: int,
                normalise: bool = True, second_only: bool = False) -> np.ndarray:
        """Mean-pooled embeddings of texts (or text pairs); with `second_only`, of a pair's second text's tokens
        only, as the encoder read them after the first (the target turn in the context of the turns before)."""
        n = len(firsts)
        out = np.zeros((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        lengths = [len(a) + (len(seconds[i]) if seconds else 0) for i, a in enumerate(firsts)]
        order = np.argsort(lengths, kind="stable")  # batch similar lengths together: less padding

        def encode(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            with torch.inference_mode():  # per thread
                enc = self.tokenize([firsts[i] for i in idx], [seconds[i] for i in idx] if seconds else None)
                mask = second_sequence_mask(enc) if second_only else None
                pooled = mean_pool(self.model, enc, mask)
                if normalise:
                    pooled = torch.nn.functional.normalize(pooled, dim=-1)
            return idx, pooled.numpy()

        batches = ((order[s:s + batch_size],) for s in range(0, n, batch_size))
        for idx, pooled in parallel_map(encode, batches, self.parallel_batches, "tagger"):
            out[idx] = pooled
        return out

    def tokenize(self, firsts: list[str], seconds: list[str] | None = None) -> dict[str, torch.Tensor]:
        """Padded, truncated model inputs for texts (or text pairs); empty texts become a space."""
        return self.tokenizer([a or " " for a in firsts], [b or " " for b in seconds] if seconds is not None else None,
                              padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        return self._encode(texts, None, batch_size)

    def embed_pairs(self, firsts: list[str], seconds: list[str], batch_size: int = 64,
                    normalise: bool = True, second_only: bool = False) -> np.ndarray:
        return self._encode(firsts, seconds, batch_size, normalise, second_only)


def mean_pool(model: nn.Module, enc: dict[str, torch.Tensor], mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of the last hidden states over the real (unpadded) tokens, or over the tokens `mask` (batch, tokens)
    selects."""
    hidden = model(**enc).last_hidden_state
    m = (enc["attention_mask"] if mask is None else mask).unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def second_sequence_mask(enc) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """(batch, tokens) 1 where a token belongs to the second text of a pair (special tokens excluded), from the
    fast tokenizer's sequence ids."""
    return torch.tensor([[1 if s == 1 else 0 for s in enc.sequence_ids(j)] for j in range(len(enc["input_ids"]))])


# ---- low-rank adaptation (LoRA): adapters trained by scripts/research/tagger_lora.py are merged into the
# registry's verified base weights at load time (no extra cost at inference)
@torch.no_grad()
def merge_lora(model: nn.Module, tensors: dict[str, torch.Tensor], scale: float) -> int:
    """Add scale * B A into each adapted layer's weight (in place). Returns how many layers were merged."""
    n = 0
    for key, a in tensors.items():
        if not key.endswith(".lora_A"):
            continue
        name = key[: -len(".lora_A")]
        b = tensors.get(f"{name}.lora_B")
        try:
            layer = model.get_submodule(name)
        except AttributeError as e:
            raise ModelError(f"LoRA adapter for {name!r} does not fit the encoder") from e
        if b is None or not isinstance(layer, nn.Linear) or layer.weight.shape != (b.shape[0], a.shape[1]):
            raise ModelError(f"LoRA adapter for {name!r} does not fit the encoder")
        layer.weight += scale * (b @ a).to(layer.weight.dtype)
        n += 1
    return n


def role_features(role: str) -> list[float]:
    return [1.0 if role == "therapist" else 0.0, 1.0 if role == "client" else 0.0]


FEATURES = ("frozen3", "frozen3t", "pair")  # head.json "features": what the head's inputs are (featurize)


def featurize(encoder: TextEncoder, examples: Sequence[Example], batch_size: int = 64,
              single_cache: dict[str, np.ndarray] | None = None, features: str = "frozen3") -> np.ndarray:
    """Feature matrix (n, 3*dim+2): [e(turn) | e(turn before) | e(exchange) | role one-hot]. e(exchange) is
    the (context, turn) pair read together: mean-pooled over all its tokens for `frozen3`, over the turn's
    tokens only for `frozen3t` (the turn as read after the context). Single-turn embeddings are deduplicated
    by text."""
    if features not in ("frozen3", "frozen3t"):
        raise ValueError(f"featurize: unknown features {features!r}")
    texts = sorted({ex.target[1] for ex in examples} | {ex.context[-1][1] for ex in examples if ex.context})
    cache = single_cache if single_cache is not None else {}
    todo = [t for t in texts if t not in cache]
    for t, v in zip(todo, encoder.embed(todo, batch_size)):
        cache[t] = v
    zero = np.zeros(encoder.dim, dtype=np.float32)
    pairs = encoder.embed_pairs([context_string(ex.context) for ex in examples],
                                [ex.target[1] for ex in examples], batch_size, second_only=features == "frozen3t")
    rows = []
    for ex, p in zip(examples, pairs):
        prev = cache[ex.context[-1][1]] if ex.context else zero
        rows.append(np.concatenate([cache[ex.target[1]], prev, p,
                                    np.asarray(role_features(ex.target[0]), dtype=np.float32)]))
    return np.stack(rows) if rows else np.zeros((0, 3 * encoder.dim + 2), dtype=np.float32)


def featurize_pairs(encoder: TextEncoder, examples: Sequence[Example], batch_size: int = 64) -> np.ndarray:
    """Features of the fine-tuned (LoRA) model: (n, dim+2) = [mean-pooled e(context, target) | role one-hot]."""
    pairs = encoder.embed_pairs([context_string(ex.context) for ex in examples],
                                [ex.target[1] for ex in examples], batch_size, normalise=False)
    roles = np.asarray([role_features(ex.target[0]) for ex in examples], dtype=np.float32).reshape(-1, 2)
    return np.concatenate([pairs, roles], axis=1)


FAMILY_SUBTYPES = {"withdrawal": WITHDRAWAL_SUBTYPES, "confrontation": CONFRONTATION_SUBTYPES,
                   "repair": REPAIR_SUBTYPES}
HEAD_TENSORS = ("mean", "scale", "rupture.weight", "rupture.bias", "repair.weight", "repair.bias",
                "family.weight", "family.bias", "withdrawal.weight", "withdrawal.bias",
                "confrontation.weight", "confrontation.bias", "repair_sub.weight", "repair_sub.bias")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0)))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class LinearHeads:
    """The trained heads (numpy arrays; see the module docstring). `scores` gives the raw rupture and
    repair scores, `probs` the role-masked label probabilities over LABELS."""

    tensors: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        missing = [k for k in HEAD_TENSORS if k not in self.tensors]
        if missing:
            raise ModelError(f"tagger head lacks tensors {missing}")
        d = self.tensors["mean"].shape[0]
        for k in HEAD_TENSORS:
            w = self.tensors[k]
            if k.endswith(".weight") and w.shape[-1] != d:
                raise ModelError(f"tagger head tensor {k} has input size {w.shape[-1]}, features have {d}")

    @property
    def in_dim(self) -> int:
        return int(self.tensors["mean"].shape[0])

    def _lin(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self.tensors[f"{name}.weight"].T + self.tensors[f"{name}.bias"]

    def standardise(self, feats: np.ndarray) -> np.ndarray:
        return (feats - self.tensors["mean"]) / self.tensors["scale"]

    def scores(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = self.standardise(feats)
        return self._lin(x, "rupture").reshape(-1), self._lin(x, "repair").reshape(-1)

    def probs(self, feats: np.ndarray, roles: Sequence[str],
              logits: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """(n, len(LABELS)) role-masked probabilities; `logits` (rupture, repair) replace the heads' own
        scores where another part (the lexical one, LexicalHeads) has been blended in."""
        x = self.standardise(feats)
        r_logit, q_logit = logits if logits is not None else self.scores(feats)
        p_r = _sigmoid(np.asarray(r_logit).reshape(-1))
        p_q = _sigmoid(np.asarray(q_logit).reshape(-1))
        p_c = _sigmoid(self._lin(x, "family").reshape(-1))  # confrontation share of a rupture
        sub = {"withdrawal": _softmax(self._lin(x, "withdrawal")),
               "confrontation": _softmax(self._lin(x, "confrontation")),
               "repair": _softmax(self._lin(x, "repair_sub"))}
        out = np.zeros((len(roles), len(LABELS)))
        for i, role in enumerate(roles):
            r = p_r[i] if role in ("client", "unknown") else 0.0
            q = p_q[i] if role in ("therapist", "unknown") else 0.0
            if role == "unknown":
                total = r * (1 - q) + q * (1 - r) + (1 - r) * (1 - q)
                r, q = r * (1 - q) / total, q * (1 - r) / total
            mass = {"withdrawal": r * (1 - p_c[i]), "confrontation": r * p_c[i], "repair": q}
            out[i, 0] = 1.0 - r - q
            for fam, labs in FAMILY_SUBTYPES.items():
                for j, lab in enumerate(labs):
                    out[i, LABELS.index(lab)] = mass[fam] * sub[fam][i, j]
        return out


_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)*")
LEXICAL_TENSORS = ("lex.idf", "lex.rupture.weight", "lex.rupture.bias", "lex.repair.weight", "lex.repair.bias",
                   "blend.rupture", "blend.repair")


def lexical_terms(text: str) -> list[str]:
    """The words of a text (lower case; apostrophes inside words kept: "don't") and its word pairs: the
    terms of the head's lexical part (training fits its vocabulary on exactly these)."""
    words = _WORD.findall(text.lower())
    return words + [f"{a} {b}" for a, b in zip(words, words[1:])]


@dataclass(frozen=True)
class LexicalHeads:
    """The head's lexical part: TF-IDF vectors (sublinear term frequency, a fixed vocabulary and its inverse
    document frequencies, L2-normalised) of the turn and of the turn before it, linear rupture and repair
    scores on both, and the blend of these scores with the encoder heads' scores:
        rupture = blend.rupture . (encoder score, lexical score, 1)   (repair likewise)
    Short, oblique turns ("whatever", "i guess") are where words carry what the sentence embedding smooths
    away; the blend weights are fitted on out-of-fold scores, so the blended score is calibrated."""

    terms: tuple[str, ...]
    tensors: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        missing = [k for k in LEXICAL_TENSORS if k not in self.tensors]
        if missing:
            raise ModelError(f"tagger head lacks lexical tensors {missing}")
        v = len(self.terms)
        if self.tensors["lex.idf"].shape != (v,) or len(set(self.terms)) != v:
            raise ModelError(f"tagger head: lexical vocabulary ({v} terms) does not match lex.idf")
        for name in ("rupture", "repair"):
            if self.tensors[f"lex.{name}.weight"].reshape(-1).shape != (2 * v,):
                raise ModelError(f"tagger head tensor lex.{name}.weight does not fit the vocabulary ({2 * v})")
            if self.tensors[f"blend.{name}"].reshape(-1).shape != (3,):
                raise ModelError(f"tagger head tensor blend.{name} must hold 3 numbers")
        object.__setattr__(self, "_index", {t: i for i, t in enumerate(self.terms)})

    def vector(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The TF-IDF vector of a text as (term indices, values)."""
        index: dict[str, int] = self._index  # type: ignore[attr-defined]
        counts = Counter(index[t] for t in lexical_terms(text) if t in index)
        if not counts:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        idx = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        val = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))) \
            * self.tensors["lex.idf"][idx]
        return idx, val / np.linalg.norm(val)

    def scores(self, texts: Sequence[str], previous: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Lexical rupture and repair scores of each turn text given the text of the turn before it."""
        v = len(self.terms)
        w = {n: self.tensors[f"lex.{n}.weight"].reshape(-1) for n in ("rupture", "repair")}
        out = {n: np.zeros(len(texts)) for n in w}
        memo: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for i, (cur, prev) in enumerate(zip(texts, previous)):
            a = memo[cur] if cur in memo else memo.setdefault(cur, self.vector(cur))
            b = memo[prev] if prev in memo else memo.setdefault(prev, self.vector(prev))
            for n in w:
                out[n][i] = w[n][a[0]] @ a[1] + w[n][v + b[0]] @ b[1]
        return (out["rupture"] + float(self.tensors["lex.rupture.bias"].reshape(-1)[0]),
                out["repair"] + float(self.tensors["lex.repair.bias"].reshape(-1)[0]))

    def blend(self, encoder_scores: tuple[np.ndarray, np.ndarray],
              lexical_scores: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return blend_scores(self.tensors, encoder_scores, lexical_scores)


def blend_scores(tensors: dict[str, np.ndarray], encoder_scores: tuple[np.ndarray, np.ndarray],
                 lexical_scores: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(rupture, repair) = blend.<name> . (encoder score, lexical score, 1) for each of the two."""
    out = []
    for name, e, lx in zip(("rupture", "repair"), encoder_scores, lexical_scores):
        b = np.asarray(tensors[f"blend.{name}"]).reshape(-1)
        out.append(b[0] * np.asarray(e) + b[1] * np.asarray(lx) + b[2])
    return out[0], out[1]


def load_head_config(d: Path) -> dict:
    p = d / HEAD_CONFIG
    if not p.is_file():
        raise ModelError(f"no {HEAD_CONFIG} in {d}: not a tagger head directory; train one with "
                         "scripts/train_tagger.py or point tagging.classifier at a valid directory")
    try:
        cfg = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{p} is not valid JSON (line {getattr(e, 'lineno', '?')}): retrain the head") from e
    if not isinstance(cfg, dict):
        raise ModelError(f"{p} must hold a JSON object")
    return cfg


def head_digest(d: Path) -> str:
    """sha256 over head.json then head.safetensors: what provenance records, so that an edited threshold
    or context weight shows as another model."""
    h = hashlib.sha256()
    for name in (HEAD_CONFIG, HEAD_FILE):
        h.update(hashlib.sha256((d / name).read_bytes()).digest())
    return h.hexdigest()


def verify_head(d: Path, cfg: dict) -> str:
    """Check head.safetensors against head.json's sha256 and, for the bundled head, both files against the
    pinned digest. Returns the digest of the pair (`head_digest`)."""
    p = d / HEAD_FILE
    if not p.is_file():
        raise ModelError(f"tagger head weights {p} missing: run scripts/train_tagger.py")
    digest = sha256_file(p)
    if digest != cfg.get("sha256"):
        raise ModelIntegrityError(
            f"tagger head {p} fails its integrity check (sha256 {digest[:12]}…, expected "
            f"{str(cfg.get('sha256'))[:12]}…): it was modified or corrupted; retrain with scripts/train_tagger.py"
        )
    pair = head_digest(d)
    if d.resolve() == HEAD_DIR.resolve() and pair != BUNDLED_HEAD_SHA256:
        raise ModelIntegrityError(
            f"the bundled tagger head in {d} does not match its pinned digest ({pair[:12]}…, expected "
            f"{BUNDLED_HEAD_SHA256[:12]}…): head.json or head.safetensors was edited; restore them from the "
            "release, or copy the folder elsewhere and point tagging.classifier at it to use it as your own head")
    return pair


class MarkerClassifier:
    """Loads the encoder and head once; `__call__` returns one MarkerPrediction per turn."""

    def __init__(self, cfg: TaggingConfig, models_cfg: ModelsConfig) -> None:
        self.cfg = cfg
        d = Path(cfg.classifier).expanduser() if cfg.classifier else HEAD_DIR
        if not d.is_dir():
            raise ModelError(f"tagging.classifier {d} is not a directory")
        self.head_dir = d
        self.context_weights: tuple[float, ...] = ()
        self.default_repair_threshold: float | None = None
        if (d / HEAD_CONFIG).is_file():
            self._init_head(d, models_cfg)
        elif (d / "config.json").is_file():
            self._init_seqcls(d)
        else:
            raise ModelError(f"{d} holds neither a tagger head ({HEAD_CONFIG}) nor a transformers "
                             "sequence-classification model (config.json + label_map.json)")

    # ---- bundled/own head on the text encoder
    def _init_head(self, d: Path, models_cfg: ModelsConfig) -> None:
        from safetensors.numpy import load_file

        hc = load_head_config(d)
        digest = verify_head(d, hc)
        try:
            if tuple(hc["labels"]) != LABELS:
                raise ModelError(f"head in {d} was trained on another label set than this version's 3RS labels")
            self.labels: tuple[str, ...] = LABELS
            self.features = str(hc["features"])
            if self.features not in FEATURES:
                raise ModelError(f"head in {d}: unknown features {self.features!r} ({', '.join(FEATURES)})")
            self.default_threshold = float(hc["threshold"])
            self.default_repair_threshold = float(hc["repair_threshold"])
            ctx = hc.get("context") or {}
            self.context_weights = tuple(float(w) for w in ctx.get("weights", ()))
            self.context_window = int(ctx.get("window", 6))
            self.context_lookback = int(ctx.get("lookback", 4))
            self.context_turns_default = int(hc.get("context_turns", 2))
            max_length = int(hc.get("max_length", 128))
            encoder_name = models_cfg.text_encoder or str(hc["encoder"])
            lora = hc.get("lora")
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"{d / HEAD_CONFIG} is incomplete or malformed ({type(e).__name__}); retrain the head") from e
        if not all(math.isfinite(x) for x in (self.default_threshold, self.default_repair_threshold,
                                                *self.context_weights)):
            raise ModelError(f"{d / HEAD_CONFIG}: thresholds and context weights must be finite numbers")
        enc = resolve(encoder_name, models_cfg.store)
        self.encoder = TextEncoder(enc.path, max_length=max_length, parallel_batches=self.cfg.parallel_batches)
        if self.features == "frozen3t" and not getattr(self.encoder.tokenizer, "is_fast", False):
            raise ModelError(f"head in {d} reads the turn's own tokens (features frozen3t), which needs a fast "
                             f"tokenizer (tokenizer.json); the encoder {encoder_name!r} has none")
        tensors = load_file(str(d / HEAD_FILE))
        self.kind = "lora" if lora else "head"
        if lora:  # the encoder was fine-tuned with low-rank adapters (stored with the heads, merged here)
            adapters = {k[len("lora."):]: torch.from_numpy(v) for k, v in tensors.items() if k.startswith("lora.")}
            if merge_lora(self.encoder.model, adapters, float(lora["alpha"]) / float(lora["rank"])) == 0:
                raise ModelError(f"tagger head {d / HEAD_FILE} declares LoRA adapters but holds none")
        own = ("lora.", "lex.", "blend.")
        self.heads = LinearHeads({k: v.astype(np.float64) for k, v in tensors.items() if not k.startswith(own)})
        self.lexical: LexicalHeads | None = None
        if "lexical" in hc:
            terms = hc["lexical"].get("terms") if isinstance(hc["lexical"], dict) else None
            if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
                raise ModelError(f"{d / HEAD_CONFIG}: lexical.terms must be a list of strings; retrain the head")
            self.lexical = LexicalHeads(tuple(terms), {k: v.astype(np.float64) for k, v in tensors.items()
                                                       if k.startswith(("lex.", "blend."))})
        width = (1 if self.features == "pair" else 3) * self.encoder.dim + 2
        if self.heads.in_dim != width:
            raise ModelError(f"tagger head {d / HEAD_FILE} expects {self.heads.in_dim} features, the encoder gives {width}")
        self.model_infos: tuple[ModelInfo, ...] = (
            enc.info, ModelInfo(f"tagger-head:{hc.get('name', d.name)}", str(hc.get("version", "1")), digest))

    # ---- a user's fine-tuned sequence classifier
    def _init_seqcls(self, d: Path) -> None:
        from models.store import dir_digest
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        lm_path = d / "label_map.json"
        if not lm_path.is_file():
            raise ModelError(f"{d} needs label_map.json mapping the model's labels to 3RS labels")
        lm = json.loads(lm_path.read_text(encoding="utf-8"))
        cal = lm.pop("_calibration", {})
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(d), local_files_only=True)
            self.seqcls = AutoModelForSequenceClassification.from_pretrained(str(d), local_files_only=True)
        except (OSError, ValueError) as e:
            raise ModelError(f"cannot load the sequence classifier in {d}: {e}") from e
        self.seqcls.eval()
        id2label = {int(k): v for k, v in self.seqcls.config.id2label.items()}
        self.seq_map = []  # model output index -> our label index (or -1)
        for i in range(len(id2label)):
            ours = lm.get(id2label[i], lm.get(str(i)))
            if ours is not None and ours not in LABELS:
                raise ModelError(f"label_map.json maps {id2label[i]!r} to unknown label {ours!r}")
            self.seq_map.append(LABELS.index(ours) if ours else -1)
        self.kind = "seqcls"
        self.labels = LABELS
        self.temperature = float(cal.get("temperature", 1.0))
        self.default_threshold = float(cal.get("threshold", 0.5))
        self.context_turns_default = 2
        self.model_infos = (ModelInfo(str(d), "local", dir_digest(d)),)

    @property
    def threshold(self) -> float:
        """The threshold in force: the config's when set, else the head's chosen default."""
        return self.cfg.threshold if self.cfg.threshold is not None else self.default_threshold

    def tagging_config(self) -> TaggingConfig:
        """The tagging config with the model's own settings filled in where the config leaves them open
        (thresholds, session-context weights): what pipeline.tagging.tag_turns needs."""
        rep = self.cfg.repair_threshold if self.cfg.repair_threshold is not None else self.default_repair_threshold
        if self.cfg.context_weights or not self.context_weights:
            return replace(self.cfg, threshold=self.threshold, repair_threshold=rep)
        return replace(self.cfg, threshold=self.threshold, repair_threshold=rep, context_weights=self.context_weights,
                       context_window=self.context_window, context_lookback=self.context_lookback)

    def features_of(self, examples: Sequence[Example]) -> np.ndarray:
        """The head's input features (training computes them with this same method)."""
        if self.features == "pair":
            return featurize_pairs(self.encoder, examples, self.cfg.batch_size)
        return featurize(self.encoder, examples, self.cfg.batch_size, features=self.features)

    @torch.inference_mode()
    def _seqcls_logits(self, examples: Sequence[Example]) -> np.ndarray:
        out = np.full((len(examples), len(LABELS)), -1e9, dtype=np.float32)
        bs = self.cfg.batch_size
        for s in range(0, len(examples), bs):
            chunk = examples[s:s + bs]
            enc = self.tokenizer([context_string(e.context) or " " for e in chunk], [e.target[1] for e in chunk],
                                 padding=True, truncation=True, max_length=256, return_tensors="pt")
            lg = self.seqcls(**enc).logits.numpy()
            for j, ours in enumerate(self.seq_map):
                if ours >= 0:
                    out[s:s + len(chunk), ours] = np.logaddexp(out[s:s + len(chunk), ours], lg[:, j])
        return out

    def __call__(self, turns: tuple[Turn, ...], context_turns: int | None = None) -> tuple[MarkerPrediction, ...]:
        k = context_turns if context_turns is not None else self.cfg.context_turns
        examples = examples_from_turns(turns, k)
        if self.kind in ("head", "lora"):
            return head_predictions(self.heads, turns, self.features_of(examples), self.lexical)
        probs = masked_softmax(self._seqcls_logits(examples), [t.role for t in turns], self.labels, self.temperature)
        return tuple(MarkerPrediction(turn_index=t.index, probs=tuple((lab, float(p)) for lab, p in zip(self.labels, row)))
                     for t, row in zip(turns, probs))


def head_predictions(heads: LinearHeads, turns: Sequence[Turn], features: np.ndarray,
                     lexical: LexicalHeads | None = None) -> tuple[MarkerPrediction, ...]:
    """One MarkerPrediction per turn from the head's features and, when the head has one, its lexical part
    (inference, and evaluation on cached features)."""
    if not len(turns):
        return ()
    r, q = heads.scores(features)
    if lexical is not None:
        texts = [t.text for t in turns]
        r, q = lexical.blend((r, q), lexical.scores(texts, [""] + texts[:-1]))
    probs = heads.probs(features, [t.role for t in turns], (r, q))
    return tuple(MarkerPrediction(turn_index=t.index, probs=tuple((lab, float(p)) for lab, p in zip(LABELS, row)),
                                  rupture_logit=float(r[i]), repair_logit=float(q[i]))
                 for i, (t, row) in enumerate(zip(turns, probs)))


def masked_softmax(logits: np.ndarray, roles: Sequence[str], labels: Sequence[str], temperature: float) -> np.ndarray:
    """Softmax of logits / T over the labels each role allows (others get 0)."""
    z = logits / float(temperature)
    masks = np.stack([role_mask(r, labels) for r in roles]) if len(roles) else np.zeros((0, len(labels)), bool)
    z = np.where(masks, z, -np.inf)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


__all__ = ["MarkerClassifier", "TextEncoder", "Example", "LinearHeads", "LexicalHeads", "lexical_terms", "featurize", "featurize_pairs",
           "examples_from_turns", "head_predictions", "merge_lora", "mean_pool", "masked_softmax", "head_digest", "HEAD_DIR",
           "RUPTURE_SUBTYPES", "REPAIR_SUBTYPES"]
