"""CAM++ encoder and the pyannote Diarizer on real speech (pyannote's sample, the shared stereo clip).

Real models from the local store; slow-ish (a few seconds each on 2 cores)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from pipeline.config import DiarizationConfig, ModelsConfig
from pipeline.errors import ModelError
from pipeline.records import Audio
from pipeline.scoring import diarization_error_rate, read_rttm

# the diarization adapters and their libraries (pyannote, CAM++); the load-error tests need no store but import them
pytestmark = [pytest.mark.slow, pytest.mark.integration]
SR = 16000
# one torch thread: these tests share the CPU with other suites; the result does not depend on it
CFG = DiarizationConfig(torch_threads=1)


@pytest.fixture(scope="module")
def campplus(model_store):
    from models.campplus import WEIGHTS_FILE, CampplusEmbedding
    from models.store import resolve

    return CampplusEmbedding.from_weights(resolve("campplus").path / WEIGHTS_FILE)


@pytest.fixture(scope="module")
def sample_wave(pyannote_sample) -> np.ndarray:
    y, sr = sf.read(str(pyannote_sample["wav"]), dtype="float32")
    assert sr == SR and y.ndim == 1
    return y


@pytest.fixture(scope="module")
def stereo_wave(stereo_clip) -> np.ndarray:
    x, sr = sf.read(str(stereo_clip), dtype="float32", always_2d=True)
    assert sr == SR
    return np.ascontiguousarray(x.T)


@pytest.fixture(scope="module")
def diarizer(model_store):
    from models.diarizer import Diarizer

    return Diarizer(CFG, ModelsConfig())


def _embed(model, wave: np.ndarray) -> torch.Tensor:
    with torch.inference_mode():
        return model(torch.from_numpy(np.ascontiguousarray(wave)).view(1, 1, -1))[0]


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


# ------------------------------------------------------------------------------------------------ CAM++


def test_campplus_state_dict_loads_strictly_and_has_no_final_relu(campplus, sample_wave):
    from models.campplus import CAMPPlus, load_campplus
    from models.store import resolve

    state = torch.load(resolve("campplus").path / "campplus_cn_en_common.pt", map_location="cpu",
                       weights_only=True)
    assert set(state) == set(CAMPPlus().state_dict())  # every key, nothing extra
    load_campplus(resolve("campplus").path / "campplus_cn_en_common.pt")  # strict=True inside
    e = _embed(campplus, sample_wave[10 * SR: 14 * SR])
    assert e.shape == (192,) and torch.isfinite(e).all()
    assert (e < 0).sum() > 20  # BatchNorm output without a ReLU: many negative components


def test_campplus_load_rejects_a_foreign_state_dict(tmp_path):
    from models.campplus import load_campplus

    p = tmp_path / "bad.pt"
    torch.save({"head.conv1.weight": torch.zeros(1)}, p)
    with pytest.raises(ModelError, match="do not match"):
        load_campplus(p)


def test_campplus_same_speaker_more_similar_than_different(campplus, sample_wave, stereo_wave):
    seg = lambda a, b: _embed(campplus, sample_wave[int(a * SR): int(b * SR)])  # noqa: E731
    # pyannote sample (reference RTTM): speaker90 alone 10.6-14.4 and 27.9-30.0; speaker91 alone
    # 14.8-17.9 and 22.0-27.8
    a1, a2, b1, b2 = seg(10.6, 14.4), seg(27.9, 30.0), seg(14.8, 17.9), seg(22.0, 27.8)
    same = [_cos(a1, a2), _cos(b1, b2)]
    diff = [_cos(a1, b1), _cos(a1, b2), _cos(a2, b1), _cos(a2, b2)]
    assert min(same) > max(diff) + 0.1, (same, diff)
    # stereo clip: the two channels are two real speakers; halves of the left channel are one speaker
    left, right = stereo_wave
    n = left.size // 2
    l1, l2, r = _embed(campplus, left[:n]), _embed(campplus, left[n:]), _embed(campplus, right)
    assert _cos(l1, l2) > _cos(l1, r) + 0.2 and _cos(l1, l2) > _cos(l2, r) + 0.2


def test_wrapper_masks_nan_rows_and_cache(campplus, sample_wave):
    wav = torch.from_numpy(sample_wave[10 * SR: 20 * SR].copy()).view(1, 1, -1)
    frames = 589
    m1 = torch.zeros(frames)
    m1[:300] = 1.0
    m2 = torch.zeros(frames)
    m2[300:] = 1.0
    with torch.inference_mode():
        campplus.clear_cache()
        batch = campplus(wav.repeat(3, 1, 1), weights=torch.stack([m1, m2, torch.zeros(frames)]))
        campplus.clear_cache()
        alone1 = campplus(wav, weights=m1[None])
        campplus.clear_cache()
        alone2 = campplus(wav, weights=m2[None])
    assert campplus.dimension == 192 and campplus.audio.sample_rate == SR
    assert batch.shape == (3, 192)
    assert torch.isnan(batch[2]).all()  # empty mask
    assert torch.allclose(batch[0], alone1[0], atol=1e-5)  # cached encoder output == fresh one
    assert torch.allclose(batch[1], alone2[0], atol=1e-5)
    assert not torch.allclose(batch[0], batch[1])  # the mask matters
    with pytest.raises(ValueError):
        campplus(torch.zeros(1, 2, 16000))


# -------------------------------------------------------------------------------------------- Diarizer


def test_diarizer_pyannote_sample_der(diarizer, sample_wave, pyannote_sample):
    audio = Audio(sample_wave[None], SR, SR, 1, "sample")
    d = diarizer(audio)
    assert d.method == "pyannote"
    ref = read_rttm(pyannote_sample["rttm"])
    der = diarization_error_rate(ref, d.overlapping)["der"]
    assert der < 0.10, der
    assert d.speakers == ("S1", "S2")
    # ids in order of first appearance; tracks sorted; exclusive track has one speaker at a time
    first = []
    for s in d.overlapping:
        if s.speaker not in first:
            first.append(s.speaker)
    assert tuple(first) == d.speakers
    assert [s.start for s in d.overlapping] == sorted(s.start for s in d.overlapping)
    for a, b in zip(d.exclusive, d.exclusive[1:]):
        assert a.end <= b.start + 1e-6
    # the overlapping track has the sample's overlaps, the exclusive one covers (almost) the same speech
    ov_total = sum(s.duration for s in d.overlapping)
    ex_total = sum(s.duration for s in d.exclusive)
    assert ex_total < ov_total
    assert diarization_error_rate(ref, d.exclusive)["der"] < 0.2


def test_diarizer_num_speakers_and_hook(diarizer, sample_wave):
    steps = []
    audio = Audio(sample_wave[None, : 20 * SR], SR, SR, 1, "sample")
    d = diarizer(audio, num_speakers=2, hook=lambda step, *a, **k: steps.append(step))
    assert len(d.speakers) == 2
    assert {"segmentation", "embeddings"} <= set(steps)
    one = diarizer(audio, num_speakers=1)
    assert one.speakers == ("S1",)


def test_diarizer_on_silence_returns_empty(diarizer):
    d = diarizer(Audio(np.zeros((1, 5 * SR), dtype=np.float32), SR, SR, 1, "silence"))
    assert d.overlapping == () and d.exclusive == () and d.speakers == ()


def test_diarizer_model_infos(diarizer):
    names = [m.name for m in diarizer.model_infos]
    assert names == ["pyannote-segmentation-3.0", "campplus"]
    assert all(len(m.sha256) == 64 for m in diarizer.model_infos)


def test_diarizer_bad_local_pipeline_is_a_model_error(tmp_path):
    from models.diarizer import Diarizer

    with pytest.raises(ModelError, match="config.yaml"):
        Diarizer(CFG, ModelsConfig(diarization_pipeline=str(tmp_path)))


def test_diarizer_segments_stay_inside_short_audio(diarizer, sample_wave):
    """Clips of 1 s and 0.3 s from 10 s into the sample, all speech in its reference (9.92-11.03 s): both
    tracks have segments (an empty result fails), every one inside the clip, the exclusive track covering
    at least half of it."""
    for seconds in (1.0, 0.3):
        clip = sample_wave[10 * SR: 10 * SR + int(seconds * SR)]
        d = diarizer(Audio(clip[None], SR, SR, 1, "short"))
        assert d.overlapping and d.exclusive, f"{seconds} s of speech gave no segments: {d}"
        for s in d.overlapping + d.exclusive:
            assert 0.0 <= s.start < s.end <= seconds
        assert sum(s.end - s.start for s in d.exclusive) >= 0.5 * seconds, d.exclusive


def test_diarizer_second_pass_separates_two_male_voices(diarizer, flite_synth):
    """Two male flite voices; one asks short questions between the other's long answers (the pattern the
    first pass mislabels: the segmentation model gives both voices the same chunk-local speaker). After the
    second pass the talk time per speaker is close to the truth."""
    Line, Part, Script, render_script = (flite_synth.Line, flite_synth.Part, flite_synth.Script,
                                         flite_synth.render_script)

    answers = (
        "Well, on Monday I went back to the office for the first time in weeks, and it was harder than I thought.",
        "I sat at my desk for an hour before I could open my email, and then I read the same message five times.",
        "In the afternoon my manager asked how I was doing, and I said fine, although I was not fine at all.",
        "By the evening I was exhausted, so I skipped the walk we had planned and went straight to bed instead.",
        "On Tuesday it was a little easier, because I knew what to expect and I had lunch with a colleague.",
    )
    lines = [Line("C", answers[0], gap=0.0)]
    for a in answers[1:]:
        lines += [Line("T", "What happened next?", gap=0.7), Line("C", a, gap=0.7)]
    script = Script("two_male", (Part("T", "therapist", "kal"), Part("C", "client", "awb")), tuple(lines))
    rendered = render_script(script, seed=3)
    audio = Audio(rendered.audio[None].astype(np.float32), SR, SR, 1, "two_male")
    d = diarizer(audio, num_speakers=2)
    truth = {u.speaker: 0.0 for u in rendered.truth.utterances}
    for u in rendered.truth.utterances:
        truth[u.speaker] += u.end - u.start
    talk = {s: sum(x.duration for x in d.exclusive if x.speaker == s) for s in d.speakers}
    true_share = truth["T"] / sum(truth.values())
    # the questioner is the speaker with less talk; its share must be close to the truth
    share = min(talk.values()) / sum(talk.values())
    assert abs(share - true_share) < 0.05, (share, true_share, talk)
