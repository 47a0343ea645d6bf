"""Sample banks: stored keypoint crops equal the samples they were made from, jitter is drawn
per use, interrupted banks finish to the same files, bad banks give clear errors, training runs."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from honnotate.perception.bank import BankError, SampleBank, write_bank
from honnotate.perception.crops import heatmap_targets
from honnotate.perception.data import AugmentConfig, CompositeConfig, SyntheticComposites
from honnotate.perception.train import TrainConfig, train, write_training_bank

ARCH = {"width": 16, "stages": 1, "stage_width": 16}


@pytest.fixture(scope="module")
def syn():
    base = CompositeConfig(objects=("sphere",), grasps_per_object=1, width=96, height=80, distance=(0.3, 0.4), seed=5)
    return dataclasses.replace(base, crop=dataclasses.replace(base.crop, size=32))


@pytest.fixture(scope="module")
def bank(syn, tmp_path_factory):
    """A bank of 7 samples in shards of 3 (the last one short), written through the training config."""
    out = tmp_path_factory.mktemp("bank") / "b"
    cfg = TrainConfig(task="keypoints", out=str(out), seed=2, device="cpu", arch=ARCH, synthetic=syn)
    write_training_bank(cfg, 7, shard_size=3)
    return out


def test_bank_stores_the_uncoloured_samples(syn, bank):
    meta = json.loads((bank / "bank.json").read_text())
    assert meta["count"] == 7 and meta["crop"]["size"] == 32 and meta["depth"] is False
    assert sorted(p.name for p in bank.glob("shard_*")) == ["shard_00000", "shard_00001", "shard_00002"]
    plain = SampleBank([bank], syn.crop, AugmentConfig(enabled=False))
    ref_ds = SyntheticComposites(syn, "keypoints", crop_colour=False)
    jit_ds = SyntheticComposites(syn, "keypoints")
    assert len(plain) == 7
    # each pass shows every sample once, in another order
    passes = [[plain.item(p * 7 + k) for k in range(7)] for p in range(3)]
    assert all(sorted(order) == list(range(7)) for order in passes) and passes[0] != passes[1]
    for i in (0, 4, 6):
        index = passes[1].index(i) + 7  # the index that shows bank sample i in the second pass
        got, ref = plain[index], ref_ds[i]
        # the same crop: image up to uint8 rounding, the same points and targets
        np.testing.assert_allclose(got["image"].numpy(), ref["image"].numpy(), atol=0.5 / 255 + 1e-6)
        np.testing.assert_array_equal(got["keypoints"].numpy(), ref["keypoints"].numpy())
        np.testing.assert_array_equal(got["weights"].numpy(), ref["weights"].numpy())
        np.testing.assert_allclose(got["heatmaps"].numpy(), ref["heatmaps"].numpy(), atol=1e-6)
        # the training sample of the same index differs only by its colour jitter
        np.testing.assert_array_equal(jit_ds[i]["keypoints"].numpy(), ref["keypoints"].numpy())
        assert float(ref["pixel_scale"]) > 0


def test_bank_jitter_is_drawn_per_use_and_targets_follow_the_run(syn, bank):
    ds = SampleBank([bank], syn.crop, syn.augment, seed=1)
    same = next(k for k in range(len(ds), 2 * len(ds)) if ds.item(k) == ds.item(2))  # its next pass
    a, again, next_pass = ds[2], ds[2], ds[same]
    np.testing.assert_array_equal(a["image"].numpy(), again["image"].numpy())  # a pure function of the index
    np.testing.assert_array_equal(a["keypoints"].numpy(), next_pass["keypoints"].numpy())
    assert np.abs(a["image"].numpy() - next_pass["image"].numpy()).max() > 0.01  # other colours on the next pass
    # heatmap targets from the run's own sigma and occluded amplitude
    crop = dataclasses.replace(syn.crop, sigma=2.0, occluded_amplitude=0.25)
    s = SampleBank([bank], crop, syn.augment)[5]
    kp, w = s["keypoints"].numpy(), s["weights"].numpy()
    amp = np.where(kp[:, 2] > 0, 1.0, 0.25) * w
    np.testing.assert_allclose(s["heatmaps"].numpy(), heatmap_targets(kp[:, :2], amp, 32, 4, 2.0), atol=1e-6)
    # occluders drawn at each use (the run's crop settings): the joints they cover become
    # occluded in the sample and in its targets; the stored points do not move
    occ = dataclasses.replace(syn.crop, occluder_prob=1.0, occluder_size=(0.4, 0.6))
    base, hidden = SampleBank([bank], syn.crop, syn.augment, seed=1), 0
    for k in range(7):
        s, ref = SampleBank([bank], occ, syn.augment, seed=1)[k], base[k]
        kp, w = s["keypoints"].numpy(), s["weights"].numpy()
        np.testing.assert_array_equal(kp[:, :2], ref["keypoints"].numpy()[:, :2])
        assert not ((kp[:, 2] > 0) & (ref["keypoints"].numpy()[:, 2] == 0)).any()
        hidden += int(((kp[:, 2] == 0) & (ref["keypoints"].numpy()[:, 2] > 0)).sum())
        amp = np.where(kp[:, 2] > 0, 1.0, occ.occluded_amplitude) * w
        np.testing.assert_allclose(s["heatmaps"].numpy(), heatmap_targets(kp[:, :2], amp, 32, 4, occ.sigma), atol=1e-6)
    assert hidden > 0


def test_interrupted_bank_finishes_to_the_same_files(syn, bank, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(bank, copy)
    shutil.rmtree(copy / "shard_00001")  # as if killed while writing it
    (copy / ".tmp_shard_00001").mkdir()
    with pytest.raises(BankError, match="incomplete bank, 1 of 3 shards missing"):
        SampleBank([copy], syn.crop)
    cfg = TrainConfig(task="keypoints", out=str(copy), seed=2, device="cpu", arch=ARCH, synthetic=syn)
    write_training_bank(cfg, 7, shard_size=3)
    for name in ("images", "keypoints", "weights", "pixel_scale"):
        np.testing.assert_array_equal(np.load(copy / "shard_00001" / f"{name}.npy"),
                                      np.load(bank / "shard_00001" / f"{name}.npy"))
    with pytest.raises(BankError, match="other settings"):  # another seed into the same folder
        write_training_bank(dataclasses.replace(cfg, seed=3), 7, shard_size=3)


def test_bad_banks_give_clear_errors(syn, bank, tmp_path):
    with pytest.raises(BankError, match="not a sample bank"):
        SampleBank([tmp_path], syn.crop)
    with pytest.raises(BankError, match="size 32, this run 64"):
        SampleBank([bank], dataclasses.replace(syn.crop, size=64))
    with pytest.raises(BankError, match="RGB bank; this run trains an RGB-D network"):
        SampleBank([bank], syn.crop, depth=True)
    with pytest.raises(BankError, match=r"its crops are not turned upright, this run's are \(--upright\)"):
        SampleBank([bank], dataclasses.replace(syn.crop, upright=True))
    with pytest.raises(ValueError, match="crop_colour=False"):  # jittered samples cannot be stored
        write_bank(SyntheticComposites(syn, "keypoints"), tmp_path / "j", 2, crop=syn.crop)
    with pytest.raises(ValueError, match="keypoints task only"):
        TrainConfig(task="segmentation", bank=(str(bank),))
    with pytest.raises(ValueError, match="replaces the generated data"):
        TrainConfig(task="keypoints", bank=(str(bank),), data=(str(tmp_path),))


def test_training_from_a_bank_lowers_the_loss(syn, bank, tmp_path):
    torch.manual_seed(0)
    cfg = TrainConfig(task="keypoints", out=str(tmp_path / "run"), steps=30, batch=4, lr=3e-3, warmup=2, seed=0,
                      device="cpu", arch=ARCH, synthetic=syn, bank=(str(bank),), checkpoint_every=30)
    result = train(cfg)
    assert result.weights.is_file()
    assert np.mean(result.losses[-5:]) < 0.7 * np.mean(result.losses[:5])
    saved = json.loads((tmp_path / "run" / "keypoints_config.json").read_text())
    assert saved["bank"] == [str(bank)]


def test_bank_command_writes_then_trains(syn, tmp_path):
    from typer.testing import CliRunner

    from honnotate.cli import app

    runner = CliRunner()
    out = tmp_path / "bank"
    args = ["train", "keypoints", "--out", str(out), "--size", "96x80", "--objects", "sphere",
            "--grasps-per-object", "1", "--arch", "width=16,stages=1,stage_width=16"]
    r = runner.invoke(app, [*args, "--write-bank", "3"])
    assert r.exit_code == 0, r.output
    assert (out / "shard_00000" / "images.npy").is_file() and "--bank" in r.output
    r = runner.invoke(app, ["train", "keypoints", "--out", str(tmp_path / "run"), "--bank", str(out), "--steps", "2",
                            "--batch", "2", "--arch", "width=16,stages=1,stage_width=16"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "run" / "keypoints.pt").is_file()
    r = runner.invoke(app, ["train", "keypoints", "--out", str(tmp_path / "run2"), "--bank", str(tmp_path), "--steps", "1"])
    assert r.exit_code == 2 and "not a sample bank" in r.output


def test_training_with_bone_heatmaps_lowers_both_losses(syn, bank, tmp_path):
    """A bones=1 network trained from a bank: the loss (joints + bone_weight x bones) falls, the
    weights file records the architecture and loads into a network whose forward gives the
    joints' heatmaps; bone_weight must be >= 0."""
    from honnotate.perception.weights import load_weights

    torch.manual_seed(0)
    arch = {**ARCH, "stages": 2, "bones": 1}
    cfg = TrainConfig(task="keypoints", out=str(tmp_path / "run"), steps=30, batch=4, lr=3e-3, warmup=2, seed=0,
                      device="cpu", arch=arch, synthetic=syn, bank=(str(bank),), checkpoint_every=30, bone_weight=2.0)
    result = train(cfg)
    assert np.mean(result.losses[-5:]) < 0.7 * np.mean(result.losses[:5])
    net, info = load_weights("keypoints", tmp_path / "run")
    assert info["arch"]["bones"] == 1
    out = net(torch.rand(1, 3, 32, 32))
    assert len(out) == 2 and out[-1].shape == (1, 21, 8, 8)
    with pytest.raises(ValueError, match="bone_weight must be >= 0"):
        TrainConfig(task="keypoints", bone_weight=-1.0)
