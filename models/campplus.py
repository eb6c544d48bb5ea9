"""CAM++ speaker encoder (3D-Speaker) and its pyannote.audio wrapper.

The network follows the CAM++ architecture of 3D-Speaker (https://github.com/modelscope/3D-Speaker,
`speakerlab/models/campplus`, Apache-2.0; Wang et al., "CAM++: A Fast and Efficient Network for Speaker
Verification Using Context-Aware Masking", Interspeech 2023), written here from the published architecture
so that the released state dict `campplus_cn_en_common.pt` (192-dim embeddings) loads with strict=True:

    80-dim Kaldi fbank (16 kHz, 25 ms / 10 ms, no dither), minus the per-utterance mean
    -> FCM head (2-D residual conv front end)            (B, 32 * 10, T)
    -> TDNN (stride 2) -> 3 x [CAM dense TDNN block -> transit]   (B, 512, T/2)
    -> BatchNorm + ReLU ("out_nonlinear")                 frame-level output
    -> statistics pooling (mean, std)                     (B, 1024)
    -> dense: Conv1d(1024, 192, 1) + BatchNorm1d(affine=False), NO ReLU   (B, 192)

The final layer has no ReLU: a variant with one (as in some redistributions) separates speakers much worse
(see shared/MODELS.md).

`CampplusEmbedding` is a `pyannote.audio.Model` that pyannote's SpeakerDiarization pipeline accepts as its
`embedding=`: it takes `forward(waveforms (B, 1, N), weights (B, F))` and returns `(B, 192)`, pooling the
encoder's frame outputs with the frame mask (resampled to the encoder's frame rate). Rows with an empty mask
are NaN (pyannote skips them). pyannote embeds every 10 s chunk once per local speaker on the same waveform;
the frame-level output does not depend on the mask, so the last waveform's frame output is kept (keyed on
the exact waveform samples, one entry) and reused: identical results, about 3x less compute.
"""

from __future__ import annotations

from pathlib import Path

import pipeline.offline  # noqa: F401  (offline / no-telemetry variables before any ML import)
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from pyannote.audio import Model

from pipeline.errors import ModelError

SAMPLE_RATE = 16000
EMBEDDING_SIZE = 192
WEIGHTS_FILE = "campplus_cn_en_common.pt"


# --------------------------------------------------------------------------------------------- network


def _bn_relu(channels: int) -> nn.Sequential:
    seq = nn.Sequential()
    seq.add_module("batchnorm", nn.BatchNorm1d(channels))
    seq.add_module("relu", nn.ReLU(inplace=True))
    return seq


class _BasicResBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=(stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=(stride, 1), bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class _FCM(nn.Module):
    """2-D convolutional front end over (frequency, time); downsamples frequency by 8, keeps time."""

    def __init__(self, feat_dim: int = 80, m_channels: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, m_channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(m_channels)
        self.layer1 = nn.Sequential(
            _BasicResBlock(m_channels, m_channels, stride=2), _BasicResBlock(m_channels, m_channels, 1)
        )
        self.layer2 = nn.Sequential(
            _BasicResBlock(m_channels, m_channels, stride=2), _BasicResBlock(m_channels, m_channels, 1)
        )
        self.conv2 = nn.Conv2d(m_channels, m_channels, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(m_channels)
        self.out_channels = m_channels * (feat_dim // 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, F, T) -> (B, C*F/8, T)
        out = F.relu(self.bn1(self.conv1(x.unsqueeze(1))))
        out = self.layer2(self.layer1(out))
        out = F.relu(self.bn2(self.conv2(out)))
        b, c, f, t = out.shape
        return out.reshape(b, c * f, t)


class _TDNNLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        padding = (kernel_size - 1) // 2
        self.linear = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.nonlinear = _bn_relu(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x))


class _CAMLayer(nn.Module):
    """Context-aware masking: a local conv gated by global + segment (100-frame) average context."""

    def __init__(self, bn_channels: int, out_channels: int, kernel_size: int, dilation: int, reduction: int = 2):
        super().__init__()
        padding = (kernel_size - 1) // 2 * dilation
        self.linear_local = nn.Conv1d(
            bn_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=False
        )
        self.linear1 = nn.Conv1d(bn_channels, bn_channels // reduction, 1)
        self.relu = nn.ReLU(inplace=True)
        self.linear2 = nn.Conv1d(bn_channels // reduction, out_channels, 1)

    @staticmethod
    def _seg_pooling(x: torch.Tensor, seg_len: int = 100) -> torch.Tensor:
        seg = F.avg_pool1d(x, kernel_size=seg_len, stride=seg_len, ceil_mode=True)
        seg = seg.unsqueeze(-1).expand(*seg.shape, seg_len).reshape(*seg.shape[:-1], -1)
        return seg[..., : x.shape[-1]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear_local(x)
        context = x.mean(-1, keepdim=True) + self._seg_pooling(x)
        return y * torch.sigmoid(self.linear2(self.relu(self.linear1(context))))


class _CAMDenseTDNNLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, bn_channels: int, kernel_size: int, dilation: int):
        super().__init__()
        self.nonlinear1 = _bn_relu(in_channels)
        self.linear1 = nn.Conv1d(in_channels, bn_channels, 1, bias=False)
        self.nonlinear2 = _bn_relu(bn_channels)
        self.cam_layer = _CAMLayer(bn_channels, out_channels, kernel_size, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))


class _CAMDenseTDNNBlock(nn.ModuleList):
    def __init__(self, num_layers: int, in_channels: int, growth: int, bn_channels: int, kernel_size: int,
                 dilation: int) -> None:
        super().__init__()
        for i in range(num_layers):
            self.add_module(
                f"tdnnd{i + 1}",
                _CAMDenseTDNNLayer(in_channels + i * growth, growth, bn_channels, kernel_size, dilation),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            x = torch.cat([x, layer(x)], dim=1)
        return x


class _TransitLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.nonlinear = _bn_relu(in_channels)
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.nonlinear(x))


class _DenseLayer(nn.Module):
    """Conv1d(k=1) + BatchNorm1d(affine=False): the embedding layer, no ReLU (original 3D-Speaker)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)
        self.nonlinear = nn.Sequential()
        self.nonlinear.add_module("batchnorm", nn.BatchNorm1d(out_channels, affine=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C) -> (B, D)
        return self.nonlinear(self.linear(x.unsqueeze(-1)).squeeze(-1))


class _XVector(nn.Module):
    def __init__(self, in_channels: int, embedding_size: int, growth_rate: int = 32, bn_size: int = 4,
                 init_channels: int = 128) -> None:
        super().__init__()
        self.tdnn = _TDNNLayer(in_channels, init_channels, 5, stride=2)
        channels = init_channels
        for i, (num_layers, kernel_size, dilation) in enumerate([(12, 3, 1), (24, 3, 2), (16, 3, 2)]):
            block = _CAMDenseTDNNBlock(num_layers, channels, growth_rate, bn_size * growth_rate, kernel_size,
                                       dilation)
            self.add_module(f"block{i + 1}", block)
            channels += num_layers * growth_rate
            self.add_module(f"transit{i + 1}", _TransitLayer(channels, channels // 2))
            channels //= 2
        self.out_nonlinear = _bn_relu(channels)
        self.dense = _DenseLayer(channels * 2, embedding_size)
        self.channels = channels

    def frames(self, x: torch.Tensor) -> torch.Tensor:
        x = self.tdnn(x)
        for i in (1, 2, 3):
            x = getattr(self, f"transit{i}")(getattr(self, f"block{i}")(x))
        return self.out_nonlinear(x)


class CAMPPlus(nn.Module):
    """The CAM++ encoder. `frames(fbank (B, T, 80))` gives the frame-level output (B, 512, ceil(T/2));
    `embed(frames, weights)` pools it and applies the dense layer; `forward` = both, unweighted."""

    def __init__(self, feat_dim: int = 80, embedding_size: int = EMBEDDING_SIZE) -> None:
        super().__init__()
        self.head = _FCM(feat_dim=feat_dim)
        self.xvector = _XVector(self.head.out_channels, embedding_size)
        self.embedding_size = embedding_size

    def frames(self, feats: torch.Tensor) -> torch.Tensor:
        return self.xvector.frames(self.head(feats.permute(0, 2, 1)))

    def embed(self, frames: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        return self.xvector.dense(weighted_stats(frames, weights))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.embed(self.frames(feats))


def weighted_stats(x: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean and standard deviation over time of x (B, C, T), optionally weighted by (B, T) weights;
    (B, 2C). Unweighted: unbiased std as in 3D-Speaker. Weighted: reliability-weighted unbiased variance
    sum(w (x - m)^2) / (V1 - V2 / V1)."""
    if weights is None:
        mean = x.mean(dim=-1)
        std = x.std(dim=-1, unbiased=True) if x.shape[-1] > 1 else torch.full_like(mean, 1e-2)
        return torch.cat([mean, std], dim=-1)
    w = weights.unsqueeze(1)  # (B, 1, T)
    v1 = w.sum(dim=-1) + 1e-8
    mean = (x * w).sum(dim=-1) / v1
    v2 = (w * w).sum(dim=-1)
    var = ((x - mean.unsqueeze(-1)) ** 2 * w).sum(dim=-1) / (v1 - v2 / v1 + 1e-8)
    return torch.cat([mean, var.clamp_min(1e-8).sqrt()], dim=-1)


def fbank(waveform: torch.Tensor, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """80-dim Kaldi fbank of a mono waveform (N,) in [-1, 1], minus its per-utterance mean: (T, 80)."""
    from torchaudio.compliance import kaldi

    feats = kaldi.fbank(waveform.unsqueeze(0), num_mel_bins=80, sample_frequency=sample_rate, dither=0.0)
    return feats - feats.mean(dim=0, keepdim=True)


def load_campplus(weights_path: str | Path) -> CAMPPlus:
    """Build CAM++ and load a 3D-Speaker state dict (strict: every key must match). Eval mode."""
    try:
        state = torch.load(str(weights_path), map_location="cpu", weights_only=True)
    except Exception as e:  # unreadable or not a plain tensor pickle
        raise ModelError(f"cannot load CAM++ weights from {weights_path}: {e}") from e
    model = CAMPPlus()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ModelError(f"CAM++ weights {weights_path} do not match the CAM++ architecture: {e}") from e
    model.eval()
    return model


# --------------------------------------------------------------------------------------------- pyannote


class CampplusEmbedding(Model):  # type: ignore[misc]
    """CAM++ as a `pyannote.audio.Model` speaker-embedding model (16 kHz mono, 192 dims, cosine metric).

    Build it with `CampplusEmbedding.from_weights(path)`. `forward(waveforms (B, 1, N), weights=None or
    (B, F))` -> (B, 192); F frame weights span the waveform evenly (pyannote passes its segmentation
    frames, 589 per 10 s). A row whose weights are all zero is NaN; a waveform shorter than one fbank frame
    (400 samples) raises ValueError (pyannote probes the minimum length that way).

    `input_frames`:
    - "chunk" (default): the encoder runs once on the whole waveform (cached across the rows that repeat
      it) and its frame output is pooled with the weights, linearly resampled to the encoder frame rate.
    - "speaker": the encoder runs on the fbank frames where the weight is > 0.5 only (at least
      `min_speaker_s` of them, else as "chunk"), so other speakers in the chunk do not colour CAM++'s
      context masking. Measured: better on synthetic two-male-voice sessions (DER 25.8% -> 18.1%), worse on
      the pyannote sample (10.1% -> 16.4% at threshold 0.6), so it is not the default.
    """

    def __init__(self, encoder: CAMPPlus | None = None, input_frames: str = "chunk",
                 min_speaker_s: float = 0.5) -> None:
        super().__init__(sample_rate=SAMPLE_RATE, num_channels=1)
        if input_frames not in ("speaker", "chunk"):
            raise ValueError(f"input_frames must be 'speaker' or 'chunk', got {input_frames!r}")
        self.encoder = encoder if encoder is not None else CAMPPlus()
        self.input_frames = input_frames
        self.min_speaker_frames = int(round(min_speaker_s * 100))  # fbank frames are 10 ms apart
        # single-entry cache of the last waveform's fbank and encoder frame output (see module docstring)
        self._cached_waveform: torch.Tensor | None = None
        self._cached_feats: torch.Tensor | None = None
        self._cached_frames: torch.Tensor | None = None

    @classmethod
    def from_weights(cls, weights_path: str | Path, input_frames: str = "chunk") -> "CampplusEmbedding":
        model = cls(load_campplus(weights_path), input_frames=input_frames)
        model.eval()
        return model

    @property
    def dimension(self) -> int:
        return int(self.encoder.embedding_size)

    def clear_cache(self) -> None:
        self._cached_waveform = None
        self._cached_feats = None
        self._cached_frames = None

    def _feats(self, waveform: torch.Tensor) -> torch.Tensor:
        """Mean-normalised fbank (T, 80) of one mono waveform (N,); resets the cache for a new waveform."""
        if (
            self._cached_waveform is not None
            and self._cached_feats is not None
            and self._cached_waveform.shape == waveform.shape
            and torch.equal(self._cached_waveform, waveform)
        ):
            return self._cached_feats
        feats = fbank(waveform.float())
        self._cached_waveform = waveform.detach().clone()
        self._cached_feats = feats.detach()
        self._cached_frames = None
        return feats

    def _frames(self, waveform: torch.Tensor) -> torch.Tensor:
        """Encoder frame output (1, 512, T') of one whole mono waveform (N,), reused for a repeated one."""
        feats = self._feats(waveform)
        if self._cached_frames is None:
            self._cached_frames = self.encoder.frames(feats.unsqueeze(0)).detach()
        return self._cached_frames

    def embed_chunk(self, waveform: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Embeddings (S, 192) of one chunk `waveform` (N,) for each of its S frame masks `masks` (S, F),
        exactly as `forward` computes them row by row ("chunk" input frames; NaN for an empty mask), but
        without the shared single-entry cache: several threads may call it at once (models/diarizer.py
        embeds chunks in parallel). The encoder runs once, and only when some mask is not empty."""
        if self.input_frames != "chunk":
            raise ValueError("embed_chunk needs input_frames='chunk'")
        if waveform.shape[0] < 400:  # shorter than one 25 ms fbank frame
            raise ValueError(f"waveform too short for CAM++ ({waveform.shape[0]} samples)")
        out = torch.full((masks.shape[0], self.dimension), float("nan"), dtype=torch.float32)
        frames: torch.Tensor | None = None
        for s in range(masks.shape[0]):
            w = masks[s].float()
            if not torch.isfinite(w).all() or float(w.sum()) <= 0.0:
                continue
            if frames is None:
                frames = self.encoder.frames(fbank(waveform.float()).unsqueeze(0))
            wt = F.interpolate(w.view(1, 1, -1), size=frames.shape[-1], mode="linear", align_corners=False)[0]
            if float(wt.sum()) <= 0.0:
                continue
            out[s] = self.encoder.embed(frames, wt)[0]
        return out

    def embed_waveform(self, waveform: np.ndarray) -> np.ndarray:
        """The CAM++ embedding (192,) of one whole mono 16 kHz waveform (N,), e.g. one speaker's segment.
        Uncached; no gradients."""
        with torch.inference_mode():
            feats = fbank(torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32)))
            return self.encoder(feats.unsqueeze(0))[0].numpy()

    def _embed_row(self, waveform: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor | None:
        if weights is None:
            return self.encoder.embed(self._frames(waveform))[0]
        w = weights.float()
        if not torch.isfinite(w).all() or float(w.sum()) <= 0.0:
            return None
        if self.input_frames == "speaker":
            feats = self._feats(waveform)
            wf = F.interpolate(w.view(1, 1, -1), size=feats.shape[0], mode="nearest")[0, 0]
            keep = wf > 0.5
            if int(keep.sum()) >= self.min_speaker_frames:
                sel = feats[keep]
                sel = sel - sel.mean(dim=0, keepdim=True)
                return self.encoder(sel.unsqueeze(0))[0]
        frames = self._frames(waveform)
        wt = F.interpolate(w.view(1, 1, -1), size=frames.shape[-1], mode="linear", align_corners=False)[0]
        if float(wt.sum()) <= 0.0:
            return None
        return self.encoder.embed(frames, wt)[0]

    def forward(self, waveforms: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        if waveforms.ndim != 3 or waveforms.shape[1] != 1:
            raise ValueError(f"expected waveforms of shape (batch, 1, samples), got {tuple(waveforms.shape)}")
        batch = waveforms.shape[0]
        out = torch.full((batch, self.dimension), float("nan"), dtype=torch.float32, device=waveforms.device)
        for b in range(batch):
            wav = waveforms[b, 0]
            if wav.shape[0] < 400:  # shorter than one 25 ms fbank frame
                raise ValueError(f"waveform too short for CAM++ ({wav.shape[0]} samples)")
            emb = self._embed_row(wav, None if weights is None else weights[b])
            if emb is not None:
                out[b] = emb
        return out
