"""Speaker diarization adapter: pyannote.audio 4 SpeakerDiarization with segmentation-3.0 and CAM++.

    Diarizer(cfg.diarization, cfg.models)(audio) -> pipeline.records.Diarization

Loads everything once in `__init__` from the local model store (sha256-verified by models.store) and never
touches a hub. No pyannote type leaves this module.

How the pipeline is built (pyannote.audio 4.0.7, see its pipelines/speaker_diarization.py):
- segmentation: `Model.from_pretrained(<store>/pyannote-segmentation-3.0/pytorch_model.bin)`, sliding
  10 s window with step `cfg.step` (0.5 of the window by default instead of pyannote's 0.1: ~4x faster).
- embedding: `models.campplus.CampplusEmbedding` (CAM++, 192-dim, cosine), batch size 1.
- parallel chunks (`cfg.parallel_chunks`, 2 by default): segmentation batches are split across that many
  threads, and the CAM++ chunk embeddings (`_CampplusDiarization.get_embeddings`) and the second pass's
  segment embeddings run that many at once, each thread with torch's intra-op count (1). The results are
  identical to one thread (checked on the demo session and the pyannote sample); diarization takes ~1.8x
  less wall time on 2 free cores. Two intra-op threads are not used instead: on a shared 2-core machine
  they ran 3-30x slower than one (OpenMP threads waiting on a descheduled sibling); independent threads
  do not wait on each other.
- clustering: "AgglomerativeClustering" on cosine distances, with `clustering.constrained_assignment = True`
  set after construction (it is not a constructor argument; without it a large step splits speakers
  wrongly on short files).
- PLDA: the constructor always loads one (`plda=None` raises), but only VBx clustering uses it.
  `get_plda()` returns any `PLDA` instance as is, so an inert `_UnusedPLDA` subclass (no files, no
  download) is passed; agglomerative clustering never calls it.
- second pass (`cfg.refine_segments`, on by default with CAM++): every segment with at least
  `cfg.refine_min_segment_s` of overlap-free speech is embedded with CAM++ (its first
  `cfg.refine_max_segment_s` of that speech, 2 s by default: the same DER as whole segments) and the
  segments are re-clustered (models/speaker_refine.py), into the known number of speakers when the manifest or the
  config gives one. It fixes what chunk-level clustering cannot: two alike voices sharing one chunk-local
  speaker (the short questions of one male flite voice labelled as the other's answers). Measured with
  `scripts/eval_diarization.py --synthetic` (see the README).

Clustering hyper-parameters for CAM++ (CAMPPLUS_CLUSTERING) were tuned on synthetic flite sessions made by
scripts/eval_diarization.py --tune (two and three voices, different text from the demo session); see the
comment at CAMPPLUS_CLUSTERING for how the threshold was picked within the tuning plateau.

If `models_cfg.diarization_pipeline` names a local directory (a complete pyannote pipeline such as
speaker-diarization-community-1 with its config.yaml), that pipeline is loaded instead with
`Pipeline.from_pretrained(dir)` and its own parameters; the output conversion is the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pipeline.offline  # noqa: F401  (offline / no-telemetry variables before any ML import)
import numpy as np
import torch
from pyannote.audio import Model, Pipeline
from pyannote.audio.core.plda import PLDA
from pyannote.audio.pipelines import SpeakerDiarization

from models._threads import parallel_map
from models.campplus import SAMPLE_RATE, WEIGHTS_FILE, CampplusEmbedding
from models.store import resolve
from pipeline.config import DiarizationConfig, ModelsConfig
from pipeline.errors import ModelError, SessionError
from pipeline.records import Audio, Diarization, ModelInfo, Segment
from models.speaker_refine import first_seconds, recluster, relabel, segment_spans

# Agglomerative clustering of CAM++ chunk embeddings (cosine distance in [0, 2]). Tuned on synthetic
# two/three-voice flite sessions (scripts/eval_diarization.py --tune); see the module docstring.
# Grid (scripts/eval_diarization.py --tune): centroid linkage had a plateau of lowest mean DER (12.4%) for
# thresholds 0.6-0.7 (0.5 too with min_cluster_size 6; 0.8 merged the two male voices awb/kal: 18.0%);
# "average" and "complete" linkage reached the same 12.4% only at one threshold each.
# 0.7, the top of the plateau, is used because real speech varies more within a speaker than flite voices
# do (on the pyannote sample 0.6 split the two speakers into four, 0.7 did not: that sample informed this
# choice of edge, so its DER is not a fully held-out number). min_cluster_size 3: pyannote's 12 is for
# step 0.1, and step 0.5 gives 5x fewer chunk embeddings.
CAMPPLUS_CLUSTERING: dict[str, Any] = {"method": "centroid", "threshold": 0.7, "min_cluster_size": 3}

SEGMENTATION_FILE = "pytorch_model.bin"


class _UnusedPLDA(PLDA):
    """A PLDA placeholder: pyannote's SpeakerDiarization constructor insists on loading a PLDA (only VBx
    clustering uses it). Passing an instance makes `get_plda` return it as is, with no file or download.
    Calling it is a bug."""

    def __init__(self) -> None:  # noqa: D401  (deliberately skips PLDA.__init__: nothing to load)
        pass

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        raise RuntimeError("PLDA is not available offline: use agglomerative clustering")


class _CampplusDiarization(SpeakerDiarization):
    """pyannote's SpeakerDiarization whose chunk embeddings are computed by `parallel_chunks` threads at
    once when the embedding is CAM++ (`CampplusEmbedding.embed_chunk`: the encoder once per chunk, pooled
    with each local speaker's mask; the same numbers as pyannote's batch-size-1 loop). Each thread runs
    torch ops with the process's intra-op thread count (1 by default), so 2 workers use 2 cores without the
    OpenMP barrier waits that make 2 intra-op threads slow on a shared machine. Anything else (training,
    `exclude_overlap`, another embedding) takes pyannote's own path."""

    parallel_chunks: int = 1

    def get_embeddings(self, file: Any, binary_segmentations: Any, exclude_overlap: bool = False,
                       hook: Callable[..., Any] | None = None) -> np.ndarray:
        model = getattr(self._embedding, "model_", None)
        if (self.training or exclude_overlap or not isinstance(model, CampplusEmbedding)
                or model.input_frames != "chunk"):
            return super().get_embeddings(file, binary_segmentations, exclude_overlap=exclude_overlap, hook=hook)
        num_chunks, _, num_speakers = binary_segmentations.data.shape

        def embed(chunk: Any, masks: np.ndarray) -> np.ndarray:
            waveform, _ = self._audio.crop(file, chunk, mode="pad")  # (1, samples)
            m = torch.from_numpy(np.ascontiguousarray(np.nan_to_num(masks, nan=0.0).astype(np.float32).T))
            with torch.inference_mode():
                return model.embed_chunk(waveform[0], m).numpy()

        if hook is not None:
            hook("embeddings", None, total=num_chunks, completed=0)
        out: list[np.ndarray] = []
        for i, emb in enumerate(parallel_map(embed, iter(binary_segmentations), self.parallel_chunks, "diarization"), 1):
            out.append(emb)
            if hook is not None:
                hook("embeddings", emb, total=num_chunks, completed=i)
        if not out:
            return np.zeros((0, num_speakers, model.dimension), dtype=np.float32)
        return np.stack(out)


def _parallel_inference(inference: Any, workers: int) -> None:
    """Make a pyannote `Inference` split each batch of chunks into `workers` parts run by as many threads at
    once. Each chunk's output does not depend on its batch (segmentation-3.0 on CPU: bitwise identical for
    batches of 8, 4 and 1), so the result is the same."""
    if workers <= 1:
        return
    infer = inference.infer

    def parallel_infer(chunks: torch.Tensor) -> Any:
        parts = [p for p in torch.tensor_split(chunks, workers) if len(p)]
        if len(parts) < 2:
            return infer(chunks)
        outs = list(parallel_map(infer, ((p,) for p in parts), workers, "diarization"))
        if isinstance(outs[0], tuple):  # several outputs (a multi-task model)
            return tuple(np.concatenate(o) for o in zip(*outs))
        return np.concatenate(outs)

    inference.infer = parallel_infer


def _segments(annotation: Any, duration: float | None = None) -> list[tuple[float, float, Any]]:
    out = []
    limit = float("inf") if duration is None else duration
    for turn, _, label in annotation.itertracks(yield_label=True):
        start = round(max(0.0, float(turn.start)), 3)
        end = round(min(limit, float(turn.end)), 3)
        if end > start:
            out.append((start, end, label))
    out.sort(key=lambda s: (s[0], s[1], str(s[2])))
    return out


def annotations_to_diarization(
    overlapping: Any, exclusive: Any, method: str = "pyannote", duration: float | None = None
) -> Diarization:
    """Convert pyannote Annotations (overlapping and exclusive tracks) to a Diarization record. Speakers
    are renamed "S1", "S2", ... in order of first appearance in the overlapping track. Times are rounded to
    the millisecond and clipped to [0, duration] (pyannote's frames can run past the end of short audio)."""
    ov = _segments(overlapping, duration)
    ex = _segments(exclusive, duration)
    names: dict[Any, str] = {}
    for _, _, label in ov + ex:
        if label not in names:
            names[label] = f"S{len(names) + 1}"
    return Diarization(
        overlapping=tuple(Segment(s, e, names[lab]) for s, e, lab in ov),
        exclusive=tuple(Segment(s, e, names[lab]) for s, e, lab in ex),
        speakers=tuple(names.values()),
        method=method,
    )


class Diarizer:
    """pyannote speaker diarization with a local segmentation model and the CAM++ embedding.

    `__call__(audio, num_speakers=None, min_speakers=None, max_speakers=None, hook=None)` diarizes the mono
    mix of `audio` (16 kHz). Speaker-count arguments left as None fall back to the config's. `hook` is
    pyannote's progress callable `hook(step, artifact, file=..., completed=..., total=...)`.
    """

    def __init__(self, cfg: DiarizationConfig, models_cfg: ModelsConfig) -> None:
        self.cfg = cfg
        self.device = torch.device(cfg.device)
        infos: list[ModelInfo] = []
        if models_cfg.diarization_pipeline:
            self._pipeline = self._load_local_pipeline(models_cfg.diarization_pipeline, infos)
        else:
            self._pipeline = self._build_pipeline(cfg, models_cfg, infos)
        self._pipeline.to(self.device)
        self.model_infos: tuple[ModelInfo, ...] = tuple(infos)

    # ----------------------------------------------------------------------------------------- loading

    @staticmethod
    def _load_local_pipeline(path: str, infos: list[ModelInfo]) -> Any:
        d = Path(path).expanduser()
        if not d.is_dir() or not (d / "config.yaml").is_file():
            raise ModelError(
                f"diarization_pipeline {path!r} is not a local pyannote pipeline directory with a config.yaml; "
                "point models.diarization_pipeline at a downloaded copy, or leave it empty to use "
                "segmentation-3.0 + CAM++"
            )
        infos.append(resolve(str(d)).info)
        try:
            pipe = Pipeline.from_pretrained(d)
        except Exception as e:  # pyannote raises many kinds here
            raise ModelError(f"cannot load the pyannote pipeline in {d}: {e}") from e
        if pipe is None:
            raise ModelError(f"cannot load the pyannote pipeline in {d}")
        return pipe

    @staticmethod
    def _build_pipeline(cfg: DiarizationConfig, models_cfg: ModelsConfig, infos: list[ModelInfo]) -> Any:
        seg = resolve(models_cfg.segmentation, store=models_cfg.store)
        infos.append(seg.info)
        seg_ckpt = seg.path / SEGMENTATION_FILE if seg.path.is_dir() else seg.path
        try:
            segmentation = Model.from_pretrained(seg_ckpt)
        except Exception as e:
            raise ModelError(f"cannot load the segmentation model {seg_ckpt}: {e}") from e
        if segmentation is None:
            raise ModelError(f"cannot load the segmentation model {seg_ckpt}")

        emb = resolve(models_cfg.embedding, store=models_cfg.store)
        infos.append(emb.info)
        campplus = emb.path / WEIGHTS_FILE if emb.path.is_dir() else emb.path
        is_campplus = campplus.name == WEIGHTS_FILE and campplus.is_file()
        embedding: Any = CampplusEmbedding.from_weights(campplus) if is_campplus else str(emb.path)

        try:
            pipe = _CampplusDiarization(
                legacy=False,
                segmentation=segmentation,
                segmentation_step=cfg.step,
                embedding=embedding,
                embedding_exclude_overlap=False,
                plda=_UnusedPLDA(),
                clustering="AgglomerativeClustering",
                embedding_batch_size=cfg.embedding_batch_size,
                segmentation_batch_size=cfg.segmentation_batch_size,
            )
        except Exception as e:
            raise ModelError(f"cannot build the pyannote diarization pipeline: {e}") from e
        clustering = dict(CAMPPLUS_CLUSTERING)
        if cfg.clustering_method is not None:
            clustering["method"] = cfg.clustering_method
        if cfg.clustering_threshold is not None:
            clustering["threshold"] = cfg.clustering_threshold
        if cfg.min_cluster_size is not None:
            clustering["min_cluster_size"] = cfg.min_cluster_size
        pipe.instantiate(
            {"segmentation": {"min_duration_off": cfg.min_duration_off}, "clustering": clustering}
        )
        pipe.clustering.constrained_assignment = True
        pipe.parallel_chunks = cfg.parallel_chunks
        _parallel_inference(pipe._segmentation, cfg.parallel_chunks)
        return pipe

    # ------------------------------------------------------------------------------------------- work

    def __call__(
        self,
        audio: Audio,
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        hook: Callable[..., Any] | None = None,
    ) -> Diarization:
        if audio.sample_rate != 16000:
            raise SessionError(f"diarization needs 16 kHz audio, got {audio.sample_rate} Hz", stage="diarization")
        if num_speakers is None and min_speakers is None and max_speakers is None:
            num_speakers = self.cfg.num_speakers
            min_speakers, max_speakers = self.cfg.min_speakers, self.cfg.max_speakers
        waveform = torch.from_numpy(np.ascontiguousarray(audio.mono, dtype=np.float32)).unsqueeze(0)
        file = {"waveform": waveform, "sample_rate": audio.sample_rate, "uri": "session"}
        embedding = getattr(self._pipeline, "_embedding", None)
        model = getattr(embedding, "model_", None)
        if isinstance(model, CampplusEmbedding):
            model.clear_cache()
        try:
            with torch.inference_mode():
                output = self._pipeline(
                    file,
                    num_speakers=num_speakers,
                    min_speakers=min_speakers,
                    max_speakers=max_speakers,
                    hook=hook,
                )
        except (RuntimeError, ValueError) as e:
            raise SessionError(f"speaker diarization failed: {e}", stage="diarization") from e
        finally:
            if isinstance(model, CampplusEmbedding):
                model.clear_cache()
        if hasattr(output, "speaker_diarization"):
            overlapping = output.speaker_diarization
            exclusive = getattr(output, "exclusive_speaker_diarization", None)
            if exclusive is None:
                exclusive = overlapping
        else:  # a legacy pipeline returns a bare Annotation
            overlapping = exclusive = output
        diar = annotations_to_diarization(overlapping, exclusive, method="pyannote", duration=audio.duration_s)
        if self.cfg.refine_segments and isinstance(model, CampplusEmbedding):
            known = num_speakers if num_speakers is not None else (
                min_speakers if min_speakers is not None and min_speakers > len(diar.speakers) else None)
            diar = self.refine(audio.mono, diar, model, num_speakers=known)
        return diar

    def refine(self, mono: np.ndarray, diar: Diarization, model: CampplusEmbedding,
               num_speakers: int | None = None) -> Diarization:
        """Second pass (models/speaker_refine.py): re-cluster whole segments on CAM++ embeddings of their
        overlap-free speech, into `num_speakers` clusters when the count is known."""
        index, clips, weights, old = [], [], [], []
        for i, (seg, parts) in enumerate(zip(diar.overlapping, segment_spans(diar))):
            dur = sum(e - s for s, e in parts)
            if dur < self.cfg.refine_min_segment_s:
                continue
            parts = first_seconds(parts, self.cfg.refine_max_segment_s)  # the weight stays the whole segment's
            clips.append((np.concatenate([mono[int(s * SAMPLE_RATE):int(e * SAMPLE_RATE)] for s, e in parts]),))
            index.append(i)
            weights.append(dur)
            old.append(seg.speaker)
        if len(index) < 2:
            return diar
        embeddings = list(parallel_map(model.embed_waveform, iter(clips), self.cfg.parallel_chunks, "diarization"))
        labels = recluster(np.stack(embeddings), weights, old, min_cluster_s=self.cfg.refine_min_cluster_s,
                           num_speakers=num_speakers)
        if labels is None:
            return diar
        return relabel(diar, dict(zip(index, labels)))
