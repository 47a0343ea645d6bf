"""Networks, losses, a few training steps, and the weights files (format, safe loading, errors)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from honnotate.perception.networks import (
    DEPTH_CHANNELS,
    build_network,
    count_parameters,
    default_arch,
    full_arch,
    grow_state_dict,
)
from honnotate.perception.train import TrainConfig, keypoint_loss, segmentation_loss
from honnotate.perception.weights import (
    WeightsError,
    load_weights,
    quantize_state,
    quantize_weights_file,
    save_weights,
)

TINY_SEG = {"base": 4, "levels": 2, "max_channels": 8}
TINY_KP = {"width": 8, "stages": 2, "stage_width": 8}


class _NotAllowed:
    """A class the weights-only unpickler must refuse to build."""


@pytest.mark.parametrize("batch", [1, 2, 5])
def test_shapes(batch):
    seg = build_network("segmentation", TINY_SEG)
    assert seg(torch.rand(batch, 3, 16, 24)).shape == (batch, 3, 16, 24)
    kp = build_network("keypoints", TINY_KP)
    out = kp(torch.rand(batch, 3, 32, 32))
    assert len(out) == 2 and all(o.shape == (batch, 21, 8, 8) for o in out)


def test_bad_inputs():
    seg = build_network("segmentation", TINY_SEG)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        seg(torch.rand(3, 16, 16))
    with pytest.raises(ValueError, match="multiples of 8"):  # stem stride 2 x 2 levels
        seg(torch.rand(1, 3, 18, 16))
    with pytest.raises(ValueError, match="multiples of 4"):
        build_network("segmentation", {**TINY_SEG, "stem_stride": 1})(torch.rand(1, 3, 18, 16))
    with pytest.raises(ValueError, match="stem_stride"):
        build_network("segmentation", {**TINY_SEG, "stem_stride": 4})
    with pytest.raises(ValueError, match="unknown segmentation architecture keys"):
        build_network("segmentation", {"blocks": 3})
    with pytest.raises(ValueError, match="unknown task"):
        build_network("pose")


@pytest.mark.parametrize("stem_stride", [1, 2])
def test_segmentation_full_resolution_logits(stem_stride):
    # both layouts give logits at the input size, and the full-resolution branch sees fine detail:
    # a one-pixel change of the input changes the stride-2 net's logits at that pixel
    torch.manual_seed(0)
    seg = build_network("segmentation", {**TINY_SEG, "stem_stride": stem_stride}).eval()
    x = torch.rand(2, 3, 24, 32)
    out = seg(x)
    assert out.shape == (2, 3, 24, 32)
    y = x.clone()
    y[:, :, 11, 13] = 1.0 - y[:, :, 11, 13]
    d = (seg(y) - out).abs().sum(1)
    assert d[:, 11, 13].min() > 0


def test_default_weights_fit_the_size_budget():
    """Both default networks together stay under 10 MB even in float32 (stored in float16)."""
    n = count_parameters(build_network("segmentation")) + count_parameters(build_network("keypoints"))
    assert n * 4 <= 10e6, n


def test_segmentation_loss_golden_and_gradient():
    labels = torch.tensor([[[0, 1], [2, 2]]])
    perfect = torch.nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2).double() * 50
    assert float(segmentation_loss(perfect, labels)) == pytest.approx(0.0, abs=1e-6)
    wrong = perfect.roll(1, dims=1)
    assert float(segmentation_loss(wrong, labels)) > 10
    logits = torch.randn(1, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: segmentation_loss(x, labels), (logits,))


def test_keypoint_loss_weights_and_errors():
    target = torch.rand(2, 21, 4, 4)
    w = torch.ones(2, 21)
    assert float(keypoint_loss([target.clone()], target, w)) == 0.0
    pred = target.clone()
    pred[:, 3] += 1.0
    w0 = w.clone()
    w0[:, 3] = 0
    assert float(keypoint_loss([pred], target, w0)) == 0.0  # the error is on a weight-0 joint
    assert float(keypoint_loss([pred], target, w)) == pytest.approx(100 / 21, rel=1e-5)
    with pytest.raises(ValueError, match="weights must be"):
        keypoint_loss([pred], target, torch.ones(2, 20))


def test_keypoint_loss_foreground_and_integral_terms():
    torch.manual_seed(0)
    target = torch.rand(2, 21, 6, 5, dtype=torch.float64)
    w = torch.ones(2, 21, dtype=torch.float64)
    pred = target.clone()
    pred[:, 3] += 1.0  # squared error 1 on every cell of joint 3
    expect = 100 * (1 + 4.0 * target[:, 3]).mean((1, 2)).sum() / 42
    assert float(keypoint_loss([pred], target, w, foreground=4.0)) == pytest.approx(float(expect), rel=1e-12)
    # integral term: a one-cell peak at the target point costs ~nothing, one cell off costs ~1 cell
    peak = torch.zeros(1, 21, 6, 5, dtype=torch.float64)
    peak[0, :, 2, 3] = 1.0
    pts = torch.tensor([3.0, 2.0], dtype=torch.float64).expand(1, 21, 2)
    one = torch.ones(1, 21, dtype=torch.float64)
    assert float(keypoint_loss([peak], peak, one, integral=1.0, points=pts)) == pytest.approx(0.0, abs=1e-5)
    off = pts + torch.tensor([1.0, 0.0], dtype=torch.float64)
    assert float(keypoint_loss([peak], peak, one, integral=1.0, points=off)) == pytest.approx(1.0, abs=1e-5)
    # gradient of the full loss against finite differences
    x = (0.3 * torch.rand(1, 21, 6, 5, dtype=torch.float64)).requires_grad_()
    pts = 5 * torch.rand(1, 21, 2, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda h: keypoint_loss([h, 2 * h], peak, one, foreground=3.0, integral=0.5,
                                                            points=pts, beta=4.0), (x,))
    with pytest.raises(ValueError, match="needs points"):
        keypoint_loss([peak], peak, one, integral=1.0)


def test_keypoint_loss_hard_joint_term():
    """The hard keypoint term (OHKM) adds, per crop, the mean of its K largest weighted joint errors."""
    torch.manual_seed(1)
    target = torch.rand(2, 21, 4, 4, dtype=torch.float64)
    w = torch.ones(2, 21, dtype=torch.float64)
    pred = target.clone()
    pred[0, 3] += 1.0  # crop 0: joint 3 errs by 1 on every cell, joint 7 by 0.5
    pred[0, 7] += 0.5
    pred[1, 5] += 2.0  # crop 1: joint 5 errs by 2
    base = float(keypoint_loss([pred], target, w))
    assert base == pytest.approx(100 * (1 + 0.25 + 4) / 42, rel=1e-12)
    # K = 2: crop 0's two worst (100, 25), crop 1's (400, 0): mean 525 / 4 added
    assert float(keypoint_loss([pred], target, w, hard=2)) == pytest.approx(base + 525 / 4, rel=1e-12)
    # K = 21 with all weights 1: the term is the base term again (mean over all joints)
    assert float(keypoint_loss([pred], target, w, hard=21)) == pytest.approx(2 * base, rel=1e-12)
    # a weight-0 joint is never among the hard ones
    w0 = w.clone()
    w0[1, 5] = 0
    assert float(keypoint_loss([pred], target, w0, hard=1)) == pytest.approx(100 * 1.25 / 41 + 100 / 2, rel=1e-12)
    x = (0.3 * torch.rand(1, 21, 4, 4, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda h: keypoint_loss([h, 2 * h], target[:1], w[:1], hard=5), (x,))
    with pytest.raises(ValueError, match="hard must be in"):
        keypoint_loss([pred], target, w, hard=22)
    with pytest.raises(ValueError, match="hard_joints must be in"):
        TrainConfig(task="keypoints", hard_joints=-1)


def _fit(model, step_fn, steps=25, lr=5e-3):
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = step_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def test_a_few_steps_lower_the_losses():
    """Tiny networks on a fixed tiny batch: 25 Adam steps lower each loss by > 30%."""
    torch.manual_seed(0)
    seg = build_network("segmentation", TINY_SEG)
    img = torch.rand(2, 3, 16, 16)
    labels = torch.zeros(2, 16, 16, dtype=torch.long)
    labels[:, 4:10, 3:9] = 2
    labels[:, 8:14, 8:15] = 1
    img[:, 0][labels == 2] = 0.9
    img[:, 2][labels == 1] = 0.9
    s = _fit(seg, lambda: segmentation_loss(seg(img), labels))
    assert np.mean(s[-3:]) < 0.7 * np.mean(s[:3]), s
    kp = build_network("keypoints", TINY_KP)
    from honnotate.perception.crops import heatmap_targets

    pts = np.random.default_rng(0).uniform(4, 28, (21, 2))
    hm = torch.from_numpy(heatmap_targets(pts, np.ones(21), 32, 4, 1.2))[None].repeat(2, 1, 1, 1)
    crops = torch.rand(2, 3, 32, 32)
    k = _fit(kp, lambda: keypoint_loss(kp(crops), hm, torch.ones(2, 21)))
    assert np.mean(k[-3:]) < 0.7 * np.mean(k[:3]), k


def test_bf16_training_steps_lower_the_loss_and_keep_float32_weights(tmp_path):
    """precision bf16: autocast forward, float32 weights and loss; the loss still falls, and a
    bad precision is refused by name."""
    from dataclasses import replace

    from honnotate.perception.data import CompositeConfig
    from honnotate.perception.train import TrainConfig, train

    syn = CompositeConfig(width=64, height=48, objects=("sphere",), grasps_per_object=1, seed=3)
    syn = replace(syn, crop=replace(syn.crop, size=32))
    cfg = TrainConfig(task="keypoints", out=str(tmp_path / "bf16"), steps=30, batch=2, lr=3e-3, warmup=1,
                      device="cpu", arch=TINY_KP, synthetic=syn, precision="bf16", seed=3)
    result = train(cfg)
    assert np.isfinite(result.losses).all()
    assert np.mean(result.losses[-5:]) < 0.8 * np.mean(result.losses[:5]), result.losses
    model, info = load_weights("keypoints", tmp_path / "bf16")
    assert all(p.dtype == torch.float32 for p in model.parameters())
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="fp8")


def _save(tmp_path, task="segmentation", arch=TINY_SEG):
    model = build_network(task, arch)
    spec = {"width": 16, "height": 16} if task == "segmentation" else {"crop_size": 32, "margin": 1.3, "stride": 4}
    return model, save_weights(tmp_path / f"{task}.pt", task, model, {**default_arch(task), **arch}, spec, {"steps": 3})


def test_weights_round_trip(tmp_path):
    model, path = _save(tmp_path)
    loaded, info = load_weights("segmentation", tmp_path)
    assert info["input"] == {"width": 16, "height": 16} and info["train"]["steps"] == 3
    x = torch.rand(1, 3, 16, 16)
    model.eval()
    # float16 storage: outputs agree to float16 precision of the weights.
    np.testing.assert_allclose(loaded(x).detach().numpy(), model(x).detach().numpy(), atol=5e-2)
    # The file is a plain dict: readable with weights_only=True, no pickled code.
    assert isinstance(torch.load(path, weights_only=True), dict)


def test_quantize_state_matches_its_definition():
    """Per-output-channel symmetric int8: q = round(w / s), s = max|w| / 127 per channel (stored
    float16); small tensors, 1-D tensors and integers stay as they were (floats as float16)."""
    torch.manual_seed(0)
    w = torch.randn(6, 8, 3, 3) * torch.tensor([1e-3, 0.1, 1.0, 3.0, 0.0, 10.0]).view(6, 1, 1, 1)
    state = {"conv.weight": w, "bn.weight": torch.rand(6), "small": torch.rand(4, 4), "n": torch.tensor(7)}
    q, scales = quantize_state(state)
    assert set(scales) == {"conv.weight"} and q["conv.weight"].dtype == torch.int8
    s = (w.reshape(6, -1).abs().amax(1) / 127).half().float()
    s[s == 0] = 1.0  # the all-zero channel: any scale, q = 0
    assert torch.equal(scales["conv.weight"].float(), s)
    assert torch.equal(q["conv.weight"], torch.round(w / s.view(6, 1, 1, 1)).clamp(-127, 127).to(torch.int8))
    back = q["conv.weight"].float() * s.view(6, 1, 1, 1)
    assert ((back - w).abs() <= 0.5 * s.view(6, 1, 1, 1) * 1.01 + 1e-12).all()  # half a step, each channel
    assert q["bn.weight"].dtype == torch.float16 and q["small"].dtype == torch.float16 and q["n"].dtype == torch.int64


def test_int8_weights_file_loads_close_and_half_the_size(tmp_path):
    torch.manual_seed(0)
    model = build_network("keypoints", {**TINY_KP, "width": 16, "stage_width": 16}).eval()
    src = save_weights(tmp_path / "keypoints.pt", "keypoints", model, full_arch("keypoints", {**TINY_KP, "width": 16,
                       "stage_width": 16}), {"crop_size": 32, "margin": 1.35}, {"steps": 1})
    (tmp_path / "q").mkdir()
    dst = quantize_weights_file(src, tmp_path / "q" / "keypoints.pt")
    assert dst.stat().st_size < 0.7 * src.stat().st_size
    data = torch.load(dst, weights_only=True)  # still a plain dict, no code
    assert data["version"] == 2 and data["scales"]
    a, info_a = load_weights("keypoints", tmp_path)
    b, info_b = load_weights("keypoints", tmp_path / "q")
    assert info_a == {**info_b, "version": 1}
    x = torch.rand(2, 3, 32, 32)
    ha, hb = a(x)[-1], b(x)[-1]
    assert (ha - hb).abs().max() <= 0.05 * ha.abs().max()
    # an int8 file quantized again is the same file's tensors
    again = quantize_weights_file(dst, tmp_path / "again.pt")
    d2 = torch.load(again, weights_only=True)
    assert all(torch.equal(d2["state_dict"][k], data["state_dict"][k]) for k in data["state_dict"])
    # a scale that names no int8 tensor: a clear error naming the file
    data["scales"]["bogus"] = torch.ones(3, dtype=torch.float16)
    torch.save(data, dst)
    with pytest.raises(WeightsError, match=r"keypoints\.pt: scale of 'bogus'"):
        load_weights("keypoints", tmp_path / "q")
    with pytest.raises(WeightsError, match="not a honnotate perception weights file"):
        (tmp_path / "junk.pt").write_bytes(b"junk")
        quantize_weights_file(tmp_path / "junk.pt", tmp_path / "out.pt")


def test_missing_weights_say_how_to_train(tmp_path):
    with pytest.raises(WeightsError, match=r"segmentation\.pt.*honnotate train seg"):
        load_weights("segmentation", tmp_path)


def test_corrupt_weights_name_the_file(tmp_path):
    (tmp_path / "keypoints.pt").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(WeightsError, match=r"keypoints\.pt: not a readable honnotate weights file"):
        load_weights("keypoints", tmp_path)
    # A truncated real file too.
    _, path = _save(tmp_path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(WeightsError, match="segmentation.pt"):
        load_weights("segmentation", tmp_path)


def test_mismatched_weights_name_what_differs(tmp_path):
    _, path = _save(tmp_path)
    data = torch.load(path, weights_only=True)
    data["arch"]["base"] = 8  # the tensors were made for base 4
    torch.save(data, path)
    with pytest.raises(WeightsError, match=r"segmentation\.pt: weights do not match.*shape mismatches"):
        load_weights("segmentation", tmp_path)
    data["arch"]["base"] = 4
    data["task"] = "keypoints"
    torch.save(data, tmp_path / "keypoints.pt")
    with pytest.raises(WeightsError, match=r"holds a 'keypoints' network, expected 'segmentation'"):
        torch.save(data, path)
        load_weights("segmentation", tmp_path)
    torch.save({"state_dict": {}}, path)
    with pytest.raises(WeightsError, match="not a honnotate perception weights file"):
        load_weights("segmentation", tmp_path)
    # A pickled object (code) is refused by the weights-only loader.
    torch.save({"format": _NotAllowed()}, path)
    with pytest.raises(WeightsError, match="not a readable"):
        load_weights("segmentation", tmp_path)


def test_ema_update_is_the_moving_average():
    from honnotate.perception.train import ema_update

    torch.manual_seed(0)
    a, b = build_network("keypoints", TINY_KP), build_network("keypoints", TINY_KP)
    before = {k: v.clone() for k, v in a.state_dict().items()}
    ema_update(a, b, 0.9)
    for k, v in a.state_dict().items():
        if v.is_floating_point():
            torch.testing.assert_close(v, 0.9 * before[k] + 0.1 * b.state_dict()[k])


def test_ema_training_exports_the_average_and_resumes_it(tmp_path):
    """ema > 0: the weights file holds the averaged network (kept in the checkpoint beside the
    raw one), and a run resumed half-way exports the same average as an uninterrupted one."""
    from dataclasses import replace

    from honnotate.perception.data import CompositeConfig
    from honnotate.perception.train import TrainConfig, train

    syn = CompositeConfig(width=64, height=48, objects=("sphere",), grasps_per_object=1, seed=3)
    syn = replace(syn, crop=replace(syn.crop, size=32))
    base = dict(task="keypoints", batch=1, lr=3e-3, warmup=1, device="cpu", arch=TINY_KP, synthetic=syn,
                seed=3, ema=0.5, checkpoint_every=2)
    train(TrainConfig(**base, out=str(tmp_path / "full"), steps=4))
    train(TrainConfig(**base, out=str(tmp_path / "half"), steps=2))
    train(TrainConfig(**base, out=str(tmp_path / "half"), steps=4), resume=True)
    ck = torch.load(tmp_path / "full" / "keypoints_checkpoint.pt", weights_only=True)
    full, info = load_weights("keypoints", tmp_path / "full")
    half, _ = load_weights("keypoints", tmp_path / "half")
    assert info["train"]["ema"] == 0.5
    key = "backbone.0.0.weight"
    torch.testing.assert_close(full.state_dict()[key], ck["ema"][key].half().float())
    assert not torch.allclose(ck["ema"][key], ck["model"][key])
    for k, v in full.state_dict().items():
        torch.testing.assert_close(half.state_dict()[k], v)
    with pytest.raises(ValueError, match="ema must be in"):
        TrainConfig(ema=1.0)


def test_grown_keypoint_network_computes_what_the_smaller_one_did():
    """Extra backbone blocks start as the identity; the original blocks keep their weights."""
    torch.manual_seed(0)
    small = build_network("keypoints", {**TINY_KP, "blocks": 2})
    for m in small.modules():  # non-trivial norms, so a wrong copy would show
        if isinstance(m, torch.nn.GroupNorm):
            torch.nn.init.normal_(m.weight, 1.0, 0.3)
            torch.nn.init.normal_(m.bias, 0.0, 0.3)
    big = build_network("keypoints", {**TINY_KP, "blocks": 5}).eval()
    big.load_state_dict(grow_state_dict("keypoints", small.state_dict(), {**TINY_KP, "blocks": 2},
                                        {**TINY_KP, "blocks": 5}))
    x = torch.rand(2, 3, 32, 32)
    for a, b in zip(small.eval()(x), big(x), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert count_parameters(big) > count_parameters(small)
    # after one gradient step the new blocks are no longer the identity (they can learn)
    opt = torch.optim.SGD(big.parameters(), lr=0.5)
    big.train()
    sum(o.square().sum() for o in big(x)).backward()
    opt.step()
    assert not torch.equal(big.backbone[3 + 4].body[2].weight, torch.zeros_like(big.backbone[3 + 4].body[2].weight))
    with pytest.raises(ValueError, match="only more keypoint backbone blocks, a context branch"):
        grow_state_dict("keypoints", small.state_dict(), {**TINY_KP, "blocks": 2}, {**TINY_KP, "blocks": 1})
    with pytest.raises(ValueError, match=r"keys \['blocks', 'width'\]"):
        grow_state_dict("keypoints", small.state_dict(), {**TINY_KP, "blocks": 2}, {**TINY_KP, "width": 16})
    # a file written before `blocks` existed had the default three
    assert full_arch("keypoints", TINY_KP)["blocks"] == 3 == default_arch("keypoints")["blocks"]
    with pytest.raises(ValueError, match="blocks must be >= 0"):
        build_network("keypoints", {**TINY_KP, "blocks": -1})


def test_forearm_class_grows_without_changing_any_label():
    """A segmentation network grown to the forearm class keeps the three logits and every
    pixel's arg-max; other changes are refused; 5 classes do not build."""
    torch.manual_seed(0)
    small = build_network("segmentation", TINY_SEG).eval()
    torch.nn.init.normal_(small.head.bias, 0.0, 1.0)
    big = build_network("segmentation", {**TINY_SEG, "num_classes": 4}).eval()
    big.load_state_dict(grow_state_dict("segmentation", small.state_dict(), TINY_SEG, {**TINY_SEG, "num_classes": 4}))
    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        a, b = small(x), big(x)
    assert b.shape == (2, 4, 32, 48)
    torch.testing.assert_close(b[:, :3], a)
    assert torch.equal(b.argmax(1), a.argmax(1)) and (b[:, 3] < b[:, 0]).all()
    assert full_arch("segmentation", TINY_SEG)["num_classes"] == 3
    with pytest.raises(ValueError, match="only the forearm class"):
        grow_state_dict("segmentation", small.state_dict(), TINY_SEG, {**TINY_SEG, "base": 8})
    with pytest.raises(ValueError, match="num_classes must be 3"):
        build_network("segmentation", {**TINY_SEG, "num_classes": 5})


def test_segmentation_depth_channels_grow_as_zero_weights_and_learn():
    """A segmentation network grown to RGB-D images (with its forearm class at once) computes what
    it did whatever the depth channels hold, then learns from them; RGB images are refused with
    a message naming the channels; no shrinking back to RGB; the full-resolution branch sees RGB."""
    torch.manual_seed(6)
    small = build_network("segmentation", TINY_SEG).eval()
    arch = {**TINY_SEG, "num_classes": 4, "depth": 1}
    big = build_network("segmentation", arch).eval()
    big.load_state_dict(grow_state_dict("segmentation", small.state_dict(), TINY_SEG, arch))
    x, d = torch.rand(2, 3, 32, 48), torch.randn(2, DEPTH_CHANNELS, 32, 48)
    with torch.no_grad():
        torch.testing.assert_close(big(torch.cat([x, d], 1))[:, :3], small(x))
    first = big.stem[0][0].weight
    assert first.shape[1] == 3 + DEPTH_CHANNELS and not first[:, 3:].any() and big.full[0].weight.shape[1] == 3
    big.train()
    opt = torch.optim.SGD(big.parameters(), lr=0.5)
    big(torch.cat([x, d], 1)).square().sum().backward()
    opt.step()
    assert first[:, 3:].abs().sum() > 0
    with pytest.raises(ValueError, match=r"\(B, 5, H, W\).*depth channels"):
        big(x)
    with pytest.raises(ValueError, match="depth channels to an RGB network"):
        grow_state_dict("segmentation", big.state_dict(), arch, {**TINY_SEG, "num_classes": 4})
    with pytest.raises(ValueError, match="depth must be 0"):
        build_network("segmentation", {**TINY_SEG, "depth": 2})
    assert full_arch("segmentation", TINY_SEG)["depth"] == 0


def test_context_branch_grows_as_the_identity_and_learns():
    """A stride-16 context branch added to a network without one changes nothing at first, then
    trains; a branch cannot be regrown into another one."""
    torch.manual_seed(1)
    small = build_network("keypoints", TINY_KP)
    for m in small.modules():
        if isinstance(m, torch.nn.GroupNorm):
            torch.nn.init.normal_(m.weight, 1.0, 0.3)
            torch.nn.init.normal_(m.bias, 0.0, 0.3)
    arch = {**TINY_KP, "blocks": 4, "context": 2, "context_width": 16}
    big = build_network("keypoints", arch).eval()
    big.load_state_dict(grow_state_dict("keypoints", small.state_dict(), TINY_KP, arch))
    for size in (32, 36, 44):  # crops that are not multiples of 16: the branch's output is resized
        x = torch.rand(2, 3, size, size)
        for a, b in zip(small.eval()(x), big(x), strict=True):
            assert a.shape == b.shape == (2, 21, size // 4, size // 4)
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert count_parameters(big) > count_parameters(small)
    opt = torch.optim.SGD(big.parameters(), lr=0.5)
    big.train()
    sum(o.square().sum() for o in big(torch.rand(2, 3, 32, 32))).backward()
    opt.step()
    assert big.context.up[1].weight.abs().sum() > 0  # the branch's output scale moved off zero
    x = torch.rand(1, 3, 32, 32)
    assert not torch.allclose(small.eval()(x)[-1], big.eval()(x)[-1])
    with pytest.raises(ValueError, match="context branch where there was none"):
        grow_state_dict("keypoints", big.state_dict(), arch, {**arch, "context": 3})
    # files written before the branch existed have none
    assert full_arch("keypoints", TINY_KP)["context"] == 0 and build_network("keypoints", TINY_KP).context is None
    with pytest.raises(ValueError, match="context must be >= 0"):
        build_network("keypoints", {**TINY_KP, "context": -1})


def test_attention_layers_grow_as_the_identity_and_learn():
    """Global self-attention layers added to an existing context branch change nothing at first,
    then train; they need a branch; the attention is over all cells (a change far away in the
    crop reaches every cell of the stride-16 grid)."""
    torch.manual_seed(2)
    arch = {**TINY_KP, "context": 1, "context_width": 16}
    small = build_network("keypoints", arch)
    for m in small.modules():  # the branch already trained: its output scale is not zero
        if isinstance(m, torch.nn.GroupNorm):
            torch.nn.init.normal_(m.weight, 1.0, 0.3)
            torch.nn.init.normal_(m.bias, 0.0, 0.3)
    big_arch = {**arch, "context_attention": 2}
    big = build_network("keypoints", big_arch).eval()
    big.load_state_dict(grow_state_dict("keypoints", small.state_dict(), arch, big_arch))
    for size in (32, 48, 64):  # grids of 2x2, 3x3, 4x4 cells: the position code follows the size
        x = torch.rand(2, 3, size, size)
        for a, b in zip(small.eval()(x), big(x), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    opt = torch.optim.SGD(big.parameters(), lr=0.5)
    big.train()
    sum(o.square().sum() for o in big(torch.rand(2, 3, 64, 64))).backward()
    opt.step()
    layer = big.context.attention[0]
    assert layer.proj.weight.abs().sum() > 0 and layer.mlp[2].weight.abs().sum() > 0
    # global: the attention output at one cell depends on a cell at the opposite corner
    y = torch.rand(1, 16, 4, 4, requires_grad=True)
    layer.eval()(y)[0, :, 0, 0].sum().backward()
    assert y.grad[0, :, 3, 3].abs().sum() > 0
    # old files have no attention; a network without a branch cannot have it; no shrinking
    assert full_arch("keypoints", arch)["context_attention"] == 0 and small.context.attention is None
    with pytest.raises(ValueError, match="needs a context branch"):
        build_network("keypoints", {**TINY_KP, "context_attention": 1})
    with pytest.raises(ValueError, match="more attention layers"):
        grow_state_dict("keypoints", big.state_dict(), big_arch, arch)


def test_depth_channels_grow_as_zero_weights_and_learn():
    """An RGB network grown to RGB-D crops computes what it did whatever the depth channels
    hold, then learns from them; an RGB-D network refuses RGB crops with a message naming the
    channels; no shrinking back to RGB."""
    torch.manual_seed(4)
    rgb = build_network("keypoints", TINY_KP)
    arch = {**TINY_KP, "depth": 1}
    rgbd = build_network("keypoints", arch).eval()
    rgbd.load_state_dict(grow_state_dict("keypoints", rgb.state_dict(), TINY_KP, arch))
    x = torch.rand(2, 3, 32, 32)
    d = torch.randn(2, DEPTH_CHANNELS, 32, 32)
    for a, b in zip(rgb.eval()(x), rgbd(torch.cat([x, d], 1)), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    first = rgbd.backbone[0][0].weight
    assert first.shape[1] == 3 + DEPTH_CHANNELS and not first[:, 3:].any()
    opt = torch.optim.SGD(rgbd.parameters(), lr=0.5)
    rgbd.train()
    sum(o.square().sum() for o in rgbd(torch.cat([x, d], 1))).backward()
    opt.step()
    assert first[:, 3:].abs().sum() > 0
    with pytest.raises(ValueError, match=r"\(B, 5, H, W\).*depth channels"):
        rgbd(x)
    with pytest.raises(ValueError, match="depth channels added to RGB crops"):
        grow_state_dict("keypoints", rgbd.state_dict(), arch, TINY_KP)
    with pytest.raises(ValueError, match="depth must be 0"):
        build_network("keypoints", {**TINY_KP, "depth": 2})
    assert full_arch("keypoints", TINY_KP)["depth"] == 0


def test_bone_heatmaps_grow_at_zero_and_learn():
    """A keypoint network grown to bone heatmaps (bones=1) gives the joints' heatmaps it gave,
    its bone outputs start at zero, the next stages see them through zero weights, and a step
    on the bones' loss moves them; forward without ``with_bones`` keeps the joints' shapes; no
    shrinking back, and a network without bones refuses ``with_bones``."""
    from honnotate.perception.networks import BONES

    torch.manual_seed(6)
    small = build_network("keypoints", TINY_KP).eval()
    arch = {**TINY_KP, "bones": 1}
    grown = build_network("keypoints", arch).eval()
    grown.load_state_dict(grow_state_dict("keypoints", small.state_dict(), TINY_KP, arch))
    x = torch.rand(2, 3, 32, 32)
    joints, bones = grown(x, with_bones=True)
    for a, b in zip(small(x), joints, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(grown(x), joints, strict=True):  # forward without with_bones: the joints alone
        assert a.shape == (2, 21, 8, 8)
        torch.testing.assert_close(a, b)
    assert len(bones) == TINY_KP["stages"] and all(b.shape == (2, len(BONES), 8, 8) and not b.any() for b in bones)
    assert grown.stages[1][0][0].weight.shape[1] == TINY_KP["width"] + 21 + len(BONES)
    assert not grown.stages[1][0][0].weight[:, -len(BONES):].any()
    grown.train()
    opt = torch.optim.SGD(grown.parameters(), lr=0.5)
    sum((b - 1).square().sum() for b in grown(x, with_bones=True)[1]).backward()
    opt.step()
    assert grown.stages[0][-1].weight[21:].abs().sum() > 0
    with pytest.raises(ValueError, match="no bone heatmaps"):
        small(x, with_bones=True)
    with pytest.raises(ValueError, match="bone heatmaps added"):
        grow_state_dict("keypoints", grown.state_dict(), arch, TINY_KP)
    with pytest.raises(ValueError, match="bones must be 0"):
        build_network("keypoints", {**TINY_KP, "bones": 2})
    assert full_arch("keypoints", TINY_KP)["bones"] == 0
    # the bones are the finger chains: every joint but the wrist is the child of exactly one bone
    assert sorted(b for _, b in BONES) == list(range(1, 21)) and len(set(BONES)) == 20
