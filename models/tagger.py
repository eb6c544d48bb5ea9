"""Rupture/repair marker classifier (3RS): a frozen MiniLM text encoder plus a small trained head.

`MarkerClassifier` loads once (`__init__`) and classifies every turn of a session (`__call__`), returning
one `pipeline.tagging.MarkerPrediction` per turn: calibrated probabilities over `LABELS` that respect the
speaker's role (rupture subtypes only on client turns, repair strategies only on therapist turns, both
when the role is unknown).

Features (the same function, `featurize`, serves training and inference):
  [ e(target) | e(previous turn) | e(context [SEP] target) | role one-hot (therapist, client) ]
where e() is the L2-normalised mean-pooled MiniLM embedding. The single-turn embeddings are computed once
per turn and reused as the "previous turn" of the next one, so a session costs two encoder passes per turn.

A head trained with `scripts/train_tagger.py --mode lora` (head.json has a "lora" entry) instead carries
low-rank adapters for the encoder; they are merged into the verified base weights at load time, and its
features are [mean-pooled e(context, target) | role one-hot] (`featurize_pairs`, one encoder pass per turn).

Bundled head (models/tagger/): `head.safetensors` (MLP weights), `head.json` (labels, temperature,
threshold, encoder name, pooling, max_length, context_turns, and the sha256 of head.safetensors, verified
before loading), `MODEL_CARD.md`. Train it with scripts/train_tagger.py.

Pluggable model: `TaggingConfig.classifier` may point at
  - another head directory of the same format, or
  - a transformers sequence-classification directory (config.json with `*ForSequenceClassification`)
    plus `label_map.json`: {"<model label or id>": "<our label>", ...} and optionally
    `{"temperature": T, "threshold": t}` under the key "_calibration". Its input is the context and the
    target turn as a text pair. Labels it does not map get probability 0 (renormalised).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import pipeline.offline  # noqa: F401  (offline env before any ML import)

import numpy as np
import torch
from torch import nn

from models.store import resolve, sha256_file
from pipeline.config import ModelsConfig, TaggingConfig
from pipeline.errors import ModelError, ModelIntegrityError
from pipeline.records import REPAIR_SUBTYPES, RUPTURE_SUBTYPES, ModelInfo, Turn
from pipeline.tagging import LABELS, MarkerPrediction, role_mask

HEAD_DIR = Path(__file__).with_name("tagger")
HEAD_FILE = "head.safetensors"
HEAD_CONFIG = "head.json"
CONTEXT_CHARS = 600  # characters of context kept (the most recent ones) before tokenisation


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

    def __init__(self, path: Path, max_length: int = 128, threads: int | None = None) -> None:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Loading weights" bar in batch logs
        if threads:
            torch.set_num_threads(threads)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            self.model = AutoModel.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as e:
            raise ModelError(f"cannot load the text encoder from {path}: {e}") from e
        self.model.eval()
        self.max_length = max_length
        self.dim = int(self.model.config.hidden_size)

    @torch.inference_mode()
    def _encode(self, firsts: list[str], seconds: list[str] | None, batch_size: int,
                normalise: bool = True) -> np.ndarray:
        n = len(firsts)
        out = np.zeros((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        lengths = [len(a) + (len(seconds[i]) if seconds else 0) for i, a in enumerate(firsts)]
        order = np.argsort(lengths, kind="stable")  # batch similar lengths together: less padding
        for s in range(0, n, batch_size):
            idx = order[s:s + batch_size]
            enc = self.tokenize([firsts[i] for i in idx], [seconds[i] for i in idx] if seconds else None)
            pooled = mean_pool(self.model, enc)
            if normalise:
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
            out[idx] = pooled.numpy()
        return out

    def tokenize(self, firsts: list[str], seconds: list[str] | None = None) -> dict[str, torch.Tensor]:
        """Padded, truncated model inputs for texts (or text pairs); empty texts become a space."""
        return self.tokenizer([a or " " for a in firsts], [b or " " for b in seconds] if seconds is not None else None,
                              padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        return self._encode(texts, None, batch_size)

    def embed_pairs(self, firsts: list[str], seconds: list[str], batch_size: int = 64,
                    normalise: bool = True) -> np.ndarray:
        return self._encode(firsts, seconds, batch_size, normalise)


def mean_pool(model: nn.Module, enc: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean of the last hidden states over the real (unpadded) tokens."""
    hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


# ---- low-rank adaptation (LoRA) of the encoder: trained adapters are small, the base weights stay the
# registry's verified ones; at load time the adapters are merged into the base weights (no extra cost)
LORA_TARGETS = ("attention.self.query", "attention.self.value", "output.dense", "intermediate.dense")


class LoRALinear(nn.Module):
    """y = base(x) + scale * x A^T B^T, with A (rank x in) and B (out x rank); B starts at zero."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features))
        nn.init.kaiming_uniform_(self.lora_A, a=5 ** 0.5)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_A.t() @ self.lora_B.t()) * self.scale


def add_lora(model: nn.Module, rank: int, alpha: float, targets: Sequence[str] = LORA_TARGETS) -> list[str]:
    """Wrap the target linear layers with LoRA adapters; freeze everything else. Returns the wrapped names."""
    names = [n for n, m in model.named_modules()
             if isinstance(m, nn.Linear) and any(n.endswith(t) for t in targets)]
    for p in model.parameters():
        p.requires_grad_(False)
    for n in names:
        parent_name, _, child = n.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(getattr(parent, child), rank, alpha))
    return names


def lora_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapters only: {"<layer>.lora_A": A, "<layer>.lora_B": B}."""
    out = {}
    for n, m in model.named_modules():
        if isinstance(m, LoRALinear):
            out[f"{n}.lora_A"] = m.lora_A.detach().clone()
            out[f"{n}.lora_B"] = m.lora_B.detach().clone()
    return out


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


def featurize(encoder: TextEncoder, examples: Sequence[Example], batch_size: int = 64,
              single_cache: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Feature matrix (n, 3*dim+2). Single-turn embeddings are deduplicated by text."""
    texts = sorted({ex.target[1] for ex in examples} | {ex.context[-1][1] for ex in examples if ex.context})
    cache = single_cache if single_cache is not None else {}
    todo = [t for t in texts if t not in cache]
    for t, v in zip(todo, encoder.embed(todo, batch_size)):
        cache[t] = v
    zero = np.zeros(encoder.dim, dtype=np.float32)
    pairs = encoder.embed_pairs([context_string(ex.context) for ex in examples],
                                [ex.target[1] for ex in examples], batch_size)
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


class MarkerHead(nn.Module):
    """MLP head: features -> logits over LABELS."""

    def __init__(self, in_dim: int, hidden: int, n_labels: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, hidden), nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(hidden, n_labels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def masked_softmax(logits: np.ndarray, roles: Sequence[str], labels: Sequence[str], temperature: float) -> np.ndarray:
    """Softmax of logits / T over the labels each role allows (others get 0)."""
    z = logits / float(temperature)
    masks = np.stack([role_mask(r, labels) for r in roles]) if len(roles) else np.zeros((0, len(labels)), bool)
    z = np.where(masks, z, -np.inf)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def load_head_config(d: Path) -> dict:
    p = d / HEAD_CONFIG
    if not p.is_file():
        raise ModelError(f"no {HEAD_CONFIG} in {d}: not a tagger head directory; train one with "
                         "scripts/train_tagger.py or point tagging.classifier at a valid directory")
    return json.loads(p.read_text(encoding="utf-8"))


def verify_head(d: Path, cfg: dict) -> str:
    p = d / HEAD_FILE
    if not p.is_file():
        raise ModelError(f"tagger head weights {p} missing: run scripts/train_tagger.py")
    digest = sha256_file(p)
    if digest != cfg.get("sha256"):
        raise ModelIntegrityError(
            f"tagger head {p} fails its integrity check (sha256 {digest[:12]}…, expected "
            f"{str(cfg.get('sha256'))[:12]}…): it was modified or corrupted; retrain with scripts/train_tagger.py"
        )
    return digest


class MarkerClassifier:
    """Loads the encoder and head once; `__call__` returns one calibrated MarkerPrediction per turn."""

    def __init__(self, cfg: TaggingConfig, models_cfg: ModelsConfig) -> None:
        self.cfg = cfg
        d = Path(cfg.classifier).expanduser() if cfg.classifier else HEAD_DIR
        if not d.is_dir():
            raise ModelError(f"tagging.classifier {d} is not a directory")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.head_dir = d
        if (d / HEAD_CONFIG).is_file():
            self._init_head(d, models_cfg)
        elif (d / "config.json").is_file():
            self._init_seqcls(d)
        else:
            raise ModelError(f"{d} holds neither a tagger head ({HEAD_CONFIG}) nor a transformers "
                             "sequence-classification model (config.json + label_map.json)")

    # ---- bundled/own head on a frozen encoder
    def _init_head(self, d: Path, models_cfg: ModelsConfig) -> None:
        from safetensors.torch import load_file

        hc = load_head_config(d)
        digest = verify_head(d, hc)
        self.labels: tuple[str, ...] = tuple(hc["labels"])
        unknown = set(self.labels) - set(LABELS)
        if unknown:
            raise ModelError(f"head in {d} has labels outside the 3RS label space: {sorted(unknown)}")
        self.temperature = float(hc["temperature"])
        self.default_threshold = float(hc["threshold"])
        self.context_turns_default = int(hc.get("context_turns", 2))
        encoder_name = models_cfg.text_encoder or hc["encoder"]
        enc = resolve(encoder_name, models_cfg.store)
        self.encoder = TextEncoder(enc.path, max_length=int(hc.get("max_length", 128)))
        self.head = MarkerHead(int(hc["in_dim"]), int(hc["hidden"]), len(self.labels), 0.0)
        tensors = load_file(str(d / HEAD_FILE))
        # "lora": the encoder was fine-tuned with low-rank adapters (stored next to the head, merged here)
        self.kind = "lora" if hc.get("lora") else "head"
        if self.kind == "lora":
            lora = {k[len("lora."):]: v for k, v in tensors.items() if k.startswith("lora.")}
            tensors = {k[len("head."):]: v for k, v in tensors.items() if k.startswith("head.")}
            merged = merge_lora(self.encoder.model, lora, float(hc["lora"]["alpha"]) / float(hc["lora"]["rank"]))
            if merged == 0:
                raise ModelError(f"tagger head {d / HEAD_FILE} declares LoRA adapters but holds none")
        try:
            self.head.load_state_dict(tensors)
        except (RuntimeError, KeyError) as e:
            raise ModelError(f"tagger head {d / HEAD_FILE} does not match {HEAD_CONFIG}: {e}") from e
        self.head.eval()
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
        """The threshold in force: the config's when set, else the head's tuned default."""
        return self.cfg.threshold if self.cfg.threshold is not None else self.default_threshold

    def tagging_config(self) -> TaggingConfig:
        """The tagging config with the threshold in force filled in (what pipeline.tagging.tag_turns needs)."""
        return replace(self.cfg, threshold=self.threshold)

    def logits(self, examples: Sequence[Example]) -> np.ndarray:
        if self.kind in ("head", "lora"):
            x = (featurize_pairs if self.kind == "lora" else featurize)(self.encoder, examples, self.cfg.batch_size)
            with torch.inference_mode():
                return self.head(torch.from_numpy(x)).numpy()
        return self._seqcls_logits(examples)

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

    def predict_examples(self, examples: Sequence[Example]) -> np.ndarray:
        """Calibrated, role-masked probabilities (n, len(self.labels))."""
        if not examples:
            return np.zeros((0, len(self.labels)))
        lg = self.logits(examples)
        return masked_softmax(lg, [e.target[0] for e in examples], self.labels, self.temperature)

    def __call__(self, turns: tuple[Turn, ...], context_turns: int | None = None) -> tuple[MarkerPrediction, ...]:
        k = context_turns if context_turns is not None else self.cfg.context_turns
        examples = examples_from_turns(turns, k)
        probs = self.predict_examples(examples)
        return tuple(
            MarkerPrediction(turn_index=t.index,
                             probs=tuple((lab, float(p)) for lab, p in zip(self.labels, row)))
            for t, row in zip(turns, probs)
        )


__all__ = ["MarkerClassifier", "TextEncoder", "Example", "featurize", "featurize_pairs", "examples_from_turns",
           "MarkerHead", "add_lora", "lora_state", "merge_lora", "mean_pool",
           "masked_softmax", "HEAD_DIR", "RUPTURE_SUBTYPES", "REPAIR_SUBTYPES"]
