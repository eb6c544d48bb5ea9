"""End-to-end fine-tuning of the text encoder with low-rank adapters (LoRA) on CPU, as a cross-encoder of
the exchange: (the preceding turns, the target turn) -> [rupture logit, repair logit].

Training only: the runtime loads the result through models.tagger (adapters merged into the verified base
weights). Negatives are subsampled afresh every epoch (ruptures are ~2% of real turns), so an epoch costs
about a minute on 2 cores.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

LORA_TARGETS = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                "output.dense", "intermediate.dense")


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


@dataclass(frozen=True)
class PairExample:
    context: str  # models.tagger.context_string of the preceding turns
    text: str  # the target turn
    role: str  # therapist | client | unknown
    y_rupture: int  # 1/0, -1: not scored (therapist turn, or don't care)
    y_repair: int


class PairModel(nn.Module):
    """Encoder (with adapters) -> mean pool -> [rupture, repair] logits (role one-hot appended)."""

    def __init__(self, encoder, dropout: float = 0.1) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.encoder = encoder
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(encoder.dim + 2, 2)

    def forward(self, enc: dict[str, torch.Tensor], roles: torch.Tensor) -> torch.Tensor:
        from models.tagger import mean_pool

        pooled = mean_pool(self.encoder.model, enc)
        return self.out(torch.cat([self.drop(pooled), roles], dim=1))


def _roles(examples: Sequence[PairExample]) -> torch.Tensor:
    from models.tagger import role_features

    return torch.tensor([role_features(e.role) for e in examples], dtype=torch.float32)


def train(encoder_path: Path, examples: Sequence[PairExample], epochs: int = 4, rank: int = 8, alpha: float = 16.0,
          lr: float = 5e-4, negatives_per_epoch: int = 1200, batch_size: int = 16, max_length: int = 128,
          seed: int = 0, log=print) -> PairModel:  # type: ignore[no-untyped-def]
    from models.tagger import TextEncoder

    torch.manual_seed(seed)
    rng = random.Random(seed)
    enc = TextEncoder(encoder_path, max_length=max_length)
    add_lora(enc.model, rank, alpha)
    model = PairModel(enc)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    pos = [e for e in examples if e.y_rupture == 1 or e.y_repair == 1]
    neg = [e for e in examples if e.y_rupture == 0 or e.y_repair == 0]
    neg = [e for e in neg if e not in pos]
    steps = epochs * ((len(pos) + min(negatives_per_epoch, len(neg)) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    bce = nn.BCEWithLogitsLoss(reduction="none")
    model.train()
    for ep in range(epochs):
        batch_pool = pos + rng.sample(neg, min(negatives_per_epoch, len(neg)))
        rng.shuffle(batch_pool)
        total = 0.0
        for s in range(0, len(batch_pool), batch_size):
            b = batch_pool[s:s + batch_size]
            toks = enc.tokenize([e.context for e in b], [e.text for e in b])
            logits = model(toks, _roles(b))
            y = torch.tensor([[max(e.y_rupture, 0), max(e.y_repair, 0)] for e in b], dtype=torch.float32)
            m = torch.tensor([[e.y_rupture >= 0, e.y_repair >= 0] for e in b], dtype=torch.float32)
            loss = (bce(logits, y) * m).sum() / m.sum().clamp(min=1.0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(b)
            if (s // batch_size) % 20 == 19:
                log(f"epoch {ep + 1}: batch {s // batch_size + 1}/{(len(batch_pool) + batch_size - 1) // batch_size}")
        log(f"epoch {ep + 1}/{epochs}: loss {total / len(batch_pool):.4f} ({len(batch_pool)} examples)")
    model.eval()
    return model


@torch.inference_mode()
def predict(model: PairModel, examples: Sequence[PairExample], batch_size: int = 64) -> np.ndarray:
    """(n, 2) logits [rupture, repair]."""
    out = np.zeros((len(examples), 2), dtype=np.float32)
    order = np.argsort([len(e.context) + len(e.text) for e in examples], kind="stable")
    for s in range(0, len(examples), batch_size):
        idx = order[s:s + batch_size]
        b = [examples[i] for i in idx]
        toks = model.encoder.tokenize([e.context for e in b], [e.text for e in b])
        out[idx] = model(toks, _roles(b)).numpy()
    return out
