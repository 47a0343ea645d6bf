"""Detection on a tiny generated capture, the train/detect commands, and bootstrapping data."""

from __future__ import annotations

import contextlib
import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from honnotate.cli import app
from honnotate.io.sequence import open_sequence
from honnotate.perception.crops import (
    apply_affine,
    crop_transform,
    decode_heatmaps,
    fuse_heatmaps,
    hand_axis_angle,
    hand_box_from_mask,
    invert_affine,
    resize_crop_map,
    warp_image,
)
from honnotate.perception.data import AugmentConfig, CompositeConfig, CropConfig, SequenceFrames
from honnotate.perception.detect import Detector, detect_sequence
from honnotate.perception.networks import build_network, default_arch
from honnotate.perception.weights import WeightsError, save_weights

TINY_SEG = {"base": 4, "levels": 2, "max_channels": 8}
TINY_KP = {"width": 8, "stages": 2, "stage_width": 8}


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    """2 frames x 1 camera at 128x96 (exact cues and ground truth)."""
    from honnotate.synth.generator import SynthConfig, generate_sequence
    from honnotate.synth.noise import DepthNoiseConfig

    out = tmp_path_factory.mktemp("perc") / "seq"
    generate_sequence(out, SynthConfig(frames=2, cameras=1, object="sphere", width=128, height=96, seed=11,
                                       depth_noise=DepthNoiseConfig(kind="none")))
    return out


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Untrained tiny networks in the weights format (detection plumbing, not accuracy)."""
    d = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    save_weights(d / "segmentation.pt", "segmentation", build_network("segmentation", TINY_SEG),
                 {**default_arch("segmentation"), **TINY_SEG}, {"width": 64, "height": 48})
    save_weights(d / "keypoints.pt", "keypoints", build_network("keypoints", TINY_KP),
                 {**default_arch("keypoints"), **TINY_KP}, {"crop_size": 32, "margin": 1.3, "stride": 4})
    return d


def _fresh_copy(capture, tmp_path):
    seq = tmp_path / "seq"
    shutil.copytree(capture, seq)
    shutil.rmtree(seq / "segmentation")
    shutil.rmtree(seq / "keypoints2d")
    return seq


def test_detect_writes_valid_cue_files(capture, weights, tmp_path):
    seq_dir = _fresh_copy(capture, tmp_path)
    summary = detect_sequence(seq_dir, weights, device="cpu")
    assert (summary.written, summary.skipped, summary.frames) == (4, 0, 2)
    seq = open_sequence(seq_dir)
    assert seq.has_cues()
    for frame in seq.frame_ids:
        labels = seq.segmentation("0", frame)  # validated by honnotate.io
        kp = seq.keypoints2d("0", frame)
        assert labels.shape == (96, 128) and labels.dtype == np.uint8
        assert kp.shape == (21, 3) and np.all(kp[:, 2] >= 0) and np.all(kp[:, 2] <= 1)


def test_detect_keeps_existing_cues_unless_overwrite(capture, weights, tmp_path):
    seq_dir = tmp_path / "seq"
    shutil.copytree(capture, seq_dir)  # the generator's exact cues are present
    kp_file = seq_dir / "keypoints2d" / "0" / "0000.json"
    before = kp_file.read_bytes()
    s = detect_sequence(seq_dir, weights, device="cpu")
    assert (s.written, s.skipped) == (0, 4) and kp_file.read_bytes() == before
    s = detect_sequence(seq_dir, weights, device="cpu", overwrite=True)
    assert s.written == 4 and kp_file.read_bytes() != before


def test_keypoints_map_back_into_the_hand_box(capture, weights):
    """Decoded crop keypoints are mapped back to image pixels inside the crop around the hand."""
    seq = open_sequence(capture)
    det = Detector(weights, "cpu")
    gt = seq.segmentation("0", 0)
    kp, box = det.keypoints(seq.rgb("0", 0), gt)
    cu, cv, side = box
    half = 0.5 * side * det.margin + 1
    assert np.all(np.abs(kp[:, 0] - cu) <= half) and np.all(np.abs(kp[:, 1] - cv) <= half)
    none, no_box = det.keypoints(seq.rgb("0", 0), np.zeros_like(gt))
    assert no_box is None and np.all(none == 0)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        det.segment(seq.rgb("0", 0).astype(np.float32))
    # with depth and focal length the box is at least min_box_m across at the hand's depth
    depth, fx = seq.depth("0", 0), float(seq.calibration("0").K[0, 0])
    z = float(np.median(depth[(gt == 2) & (depth > 0)]))
    far = np.where(depth > 0, depth * 0.0 + z * 40, 0.0).astype(np.float32)  # the hand 40x further: tiny floor
    assert det.keypoints(seq.rgb("0", 0), gt, far, fx)[1] == box
    wide = Detector(weights, "cpu", min_box_m=0.5)
    _, box_wide = wide.keypoints(seq.rgb("0", 0), gt, depth, fx)
    assert box_wide[:2] == box[:2] and box_wide[2] > box[2]
    assert box_wide[2] == pytest.approx(fx * 0.5 / z, rel=0.05)
    assert wide.keypoints(seq.rgb("0", 0), gt, depth)[1] == box  # no focal length: no floor
    with pytest.raises(ValueError, match="does not match the RGB image"):
        det.keypoints(seq.rgb("0", 0), gt, depth[:-1], fx)
    with pytest.raises(ValueError, match="min_box_m"):
        Detector(weights, "cpu", min_box_m=-1.0)


def test_tta_crops_fuse_in_the_first_crop(capture, weights):
    """One crop (no augmentation) decodes that crop's own heatmaps; several are fused in the first
    crop's frame: a first crop of another scale is the frame, the others are votes."""
    seq = open_sequence(capture)
    rgb, gt = seq.rgb("0", 0), seq.segmentation("0", 0)
    plain = Detector(weights, "cpu", tta=((1.0, 0.0),))
    kp, box = plain.keypoints(rgb, gt)
    A = crop_transform(box[0], box[1], box[2] * plain.margin, plain.crop_size)
    hm = _net_heatmaps(plain.kp, rgb.astype(np.float32) / 255.0, [A], plain.crop_size)
    ref = decode_heatmaps(hm, plain.kp.stride)[0].numpy()  # the default: the per-axis parabola
    np.testing.assert_allclose(kp[:, :2], apply_affine(invert_affine(A), ref[:, :2]), atol=1e-3)
    dark = Detector(weights, "cpu", tta=((1.0, 0.0),), decode_smooth_px=4.8).keypoints(rgb, gt)[0]
    ref = decode_heatmaps(hm, plain.kp.stride, smooth=4.8 / plain.kp.stride)[0].numpy()  # distribution-aware
    np.testing.assert_allclose(dark[:, :2], apply_affine(invert_affine(A), ref[:, :2]), atol=1e-3)
    with pytest.raises(ValueError, match="decode_smooth_px"):
        Detector(weights, "cpu", decode_smooth_px=-1.0)
    cu, cv, side = box
    half = 0.5 * side * plain.margin * 1.15 + 1  # inside the largest crop
    for tta in (None, ((1.15, 0.0), (1.0, 10.0))):
        det = Detector(weights, "cpu") if tta is None else Detector(weights, "cpu", tta=tta)
        fused, fused_box = det.keypoints(rgb, gt)
        assert fused_box == box and fused.shape == (21, 3) and np.isfinite(fused).all()
        assert np.all(np.abs(fused[:, 0] - cu) <= half) and np.all(np.abs(fused[:, 1] - cv) <= half)
    for bad in ((), ((0.0, 0.0),)):
        with pytest.raises(ValueError, match="tta must list"):
            Detector(weights, "cpu", tta=bad)


def _net_heatmaps(net, image, maps, size):
    """Last-stage heatmaps of ``net`` on the (size x size) crops ``maps`` of an RGB float image."""
    crops = np.stack([warp_image(image, A, (size, size), border="constant") for A in maps])
    with torch.no_grad():
        return net(torch.from_numpy(crops.transpose(0, 3, 1, 2).copy()))[-1]


def test_fine_keypoint_network_heatmaps_are_averaged_in(capture, weights, tmp_path):
    """A second keypoint network (keypoints_fine.pt) on crops of the same hand squares at its own
    size: its heatmaps resampled onto the fused grid and averaged with the first's (reference
    twin); the same network at the same size changes nothing; off by option or absence; a
    second network of another margin is refused, named."""
    seq = open_sequence(capture)
    rgb, gt = seq.rgb("0", 0), seq.segmentation("0", 0)
    w = tmp_path / "w"
    shutil.copytree(weights, w)
    shutil.copy(w / "keypoints.pt", w / "keypoints_fine.pt")  # the same network, the same crop size
    same, alone = Detector(w, "cpu"), Detector(weights, "cpu")
    assert same.kp_fine is not None and alone.kp_fine is None
    assert Detector(w, "cpu", fine_keypoints=False).kp_fine is None
    np.testing.assert_allclose(same.keypoints(rgb, gt)[0], alone.keypoints(rgb, gt)[0], atol=1e-4)
    torch.manual_seed(5)
    fine_net = build_network("keypoints", TINY_KP)
    save_weights(w / "keypoints_fine.pt", "keypoints", fine_net, {**default_arch("keypoints"), **TINY_KP},
                 {"crop_size": 48, "margin": 1.3, "stride": 4})
    det = Detector(w, "cpu")
    assert det.fine_crop_size == 48
    kp, box = det.keypoints(rgb, gt)
    image = rgb.astype(np.float32) / 255.0
    maps = [crop_transform(box[0], box[1], box[2] * det.margin * scale, 32, angle=np.deg2rad(angle))
            for scale, angle in det.tta]
    big = [resize_crop_map(A, 32, 48) for A in maps]
    hm1, hm2 = _net_heatmaps(det.kp, image, maps, 32), _net_heatmaps(det.kp_fine, image, big, 48)
    fused = fuse_heatmaps(hm1, maps, maps[0], 4, up=2)
    both = 0.5 * (fused + fuse_heatmaps(hm2, big, maps[0], 4, cell=2.0, cells=fused.shape[-1]))
    ref = decode_heatmaps(both[None], 2.0)[0].numpy()
    np.testing.assert_allclose(kp[:, :2], apply_affine(invert_affine(maps[0]), ref[:, :2]), atol=1e-3)
    np.testing.assert_allclose(kp[:, 2], np.clip(ref[:, 2], 0, 1), atol=1e-4)
    save_weights(w / "keypoints_fine.pt", "keypoints", fine_net, {**default_arch("keypoints"), **TINY_KP},
                 {"crop_size": 48, "margin": 1.5, "stride": 4})
    with pytest.raises(WeightsError, match=r"keypoints_fine\.pt: the second keypoint network"):
        Detector(w, "cpu")


def test_upright_keypoint_network_heatmaps_are_averaged_in(capture, weights, tmp_path):
    """A keypoint network trained on upright crops (keypoints_upright.pt): the other networks'
    fused keypoints give the hand's orientation, the same squares are cut again turned by it, and
    its heatmaps are resampled onto the fused grid and averaged in with ``upright_weight``
    (reference twin); off by option or absence; a file not trained upright, or an upright
    network as keypoints.pt, is refused, named."""
    seq = open_sequence(capture)
    rgb, gt = seq.rgb("0", 0), seq.segmentation("0", 0)
    w = tmp_path / "w"
    shutil.copytree(weights, w)
    torch.manual_seed(6)
    up_net = build_network("keypoints", TINY_KP)
    arch = {**default_arch("keypoints"), **TINY_KP}
    save_weights(w / "keypoints_upright.pt", "keypoints", up_net, arch,
                 {"crop_size": 48, "margin": 1.3, "stride": 4, "upright": True})
    det, alone = Detector(w, "cpu", upright_weight=0.25), Detector(weights, "cpu")
    assert det.kp_upright is not None and det.upright_crop_size == 48 and alone.kp_upright is None
    assert Detector(w, "cpu", upright_keypoints=False).kp_upright is None
    kp, box = det.keypoints(rgb, gt)
    image = rgb.astype(np.float32) / 255.0
    maps = [crop_transform(box[0], box[1], box[2] * det.margin * scale, 32, angle=np.deg2rad(angle))
            for scale, angle in det.tta]
    fused = fuse_heatmaps(_net_heatmaps(det.kp, image, maps, 32), maps, maps[0], 4, up=2)
    first = decode_heatmaps(fused[None], 2.0)[0].numpy()
    np.testing.assert_allclose(alone.keypoints(rgb, gt)[0][:, :2],
                               apply_affine(invert_affine(maps[0]), first[:, :2]), atol=1e-3)
    angle = hand_axis_angle(apply_affine(invert_affine(maps[0]), first[:, :2]))
    turned = [crop_transform(box[0], box[1], box[2] * det.margin * scale, 48, angle=angle + np.deg2rad(a))
              for scale, a in det.tta]
    up = fuse_heatmaps(_net_heatmaps(det.kp_upright, image, turned, 48), turned, maps[0], 4, cell=2.0,
                       cells=fused.shape[-1])
    ref = decode_heatmaps((0.75 * fused + 0.25 * up)[None], 2.0)[0].numpy()
    np.testing.assert_allclose(kp[:, :2], apply_affine(invert_affine(maps[0]), ref[:, :2]), atol=1e-3)
    np.testing.assert_allclose(kp[:, 2], np.clip(ref[:, 2], 0, 1), atol=1e-4)
    with pytest.raises(ValueError, match="upright_weight"):
        Detector(w, "cpu", upright_weight=0.0)
    save_weights(w / "keypoints_upright.pt", "keypoints", up_net, arch, {"crop_size": 48, "margin": 1.3, "stride": 4})
    with pytest.raises(WeightsError, match=r"keypoints_upright\.pt: the upright keypoint network.*upright 0"):
        Detector(w, "cpu")
    shutil.copy(w / "keypoints_upright.pt", w / "keypoints_fine.pt")  # image-aligned: fine as the second network
    (w / "keypoints_upright.pt").unlink()
    assert Detector(w, "cpu").kp_fine is not None
    save_weights(w / "keypoints_fine.pt", "keypoints", up_net, arch,
                 {"crop_size": 48, "margin": 1.3, "stride": 4, "upright": True})
    with pytest.raises(WeightsError, match=r"keypoints_fine\.pt: the second keypoint network.*upright 1"):
        Detector(w, "cpu")  # an upright network would be fed image-aligned crops
    save_weights(w / "keypoints.pt", "keypoints", up_net, arch,
                 {"crop_size": 32, "margin": 1.3, "stride": 4, "upright": True})
    with pytest.raises(WeightsError, match=r"keypoints\.pt: a network trained on upright crops"):
        Detector(w, "cpu")


def test_detector_chooses_the_box_with_the_most_confident_keypoints(weights):
    """A large false hand region (a skin-coloured table) must not take the crop: among the
    candidate boxes the one whose crop gives the highest heatmap peaks wins."""

    class _BrightIsConfident(torch.nn.Module):  # heatmap peaks = the crop's mean brightness
        stride = 4

        def forward(self, x):
            b, _, h, w = x.shape
            hm = torch.zeros(b, 21, h // 4, w // 4)
            hm[:, :, h // 8, w // 8] = x.mean((1, 2, 3))[:, None]
            return [hm]

    rgb = np.zeros((240, 320, 3), np.uint8)
    labels = np.zeros((240, 320), np.uint8)
    labels[20:100, 10:110] = 2  # the false region: largest, dark
    labels[150:200, 230:280] = 2  # the hand: smaller, bright, within reach of the false region (one default box)
    rgb[150:200, 230:280] = 255
    det = Detector(weights, "cpu")
    det.kp = _BrightIsConfident()
    _, box = det.keypoints(rgb, labels)
    assert box == pytest.approx((254.5, 174.5, 50.0))  # the hand alone
    largest = Detector(weights, "cpu", choose_box=False)
    largest.kp = _BrightIsConfident()
    _, box0 = largest.keypoints(rgb, labels)
    assert box0 == pytest.approx(hand_box_from_mask(labels == 2)) and box0[2] == 270.0


def test_segmentation_only_detector(capture, weights, tmp_path):
    # a folder with the segmentation weights alone (a training run's progress) loads with
    # keypoints=False; the full detector still asks for the keypoint file
    seg_dir = tmp_path / "seg_only"
    seg_dir.mkdir()
    shutil.copy(weights / "segmentation.pt", seg_dir / "segmentation.pt")
    det = Detector(seg_dir, "cpu", keypoints=False)
    rgb = open_sequence(capture).rgb("0", 0)
    d = det(rgb)
    assert d.labels.shape == rgb.shape[:2] and np.all(d.keypoints == 0) and d.box is None
    from honnotate.perception.weights import WeightsError

    with pytest.raises(WeightsError, match="keypoints"):
        Detector(seg_dir, "cpu")


def test_detect_command(capture, weights, tmp_path):
    seq_dir = _fresh_copy(capture, tmp_path)
    runner = CliRunner()
    r = runner.invoke(app, ["detect", str(seq_dir), "--weights", str(weights), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "wrote 4 cue files" in r.output
    assert "cue files against ground_truth/" in r.output and "| 0 |" in r.output  # a generated capture: per-view accuracy
    r = runner.invoke(app, ["detect", str(seq_dir), "--weights", str(weights), "--device", "cpu", "--overwrite",
                            "--no-cut-wrist", "--no-tta", "--no-seg-flip", "--seg-zoom", "1,2"])
    assert r.exit_code == 0 and "wrote 4 cue files" in r.output, r.output
    for bad in ("1,x", "0", "1,-2"):
        r = runner.invoke(app, ["detect", str(seq_dir), "--weights", str(weights), "--overwrite", "--seg-zoom", bad])
        assert r.exit_code == 2 and "seg" in r.output and "zoom" in r.output, r.output
    r = runner.invoke(app, ["detect", str(seq_dir), "--weights", str(tmp_path / "none")])
    assert r.exit_code == 2 and "honnotate train seg" in r.output
    r = runner.invoke(app, ["detect", str(seq_dir), "--weights", str(weights), "--cameras", "7"])
    assert r.exit_code == 2 and "no camera '7'" in r.output
    with pytest.raises(WeightsError):
        Detector(tmp_path / "none")


def test_train_command_checkpoints_and_resumes(tmp_path):
    out = tmp_path / "run"
    runner = CliRunner()
    args = ["train", "seg", "--out", str(out), "--batch", "1", "--size", "64x48", "--objects", "sphere",
            "--grasps-per-object", "1", "--device", "cpu", "--checkpoint-every", "1"]
    r = runner.invoke(app, [*args, "--steps", "2"])
    assert r.exit_code == 0, r.output
    for name in ("segmentation.pt", "segmentation_checkpoint.pt", "segmentation_config.json",
                 "segmentation_losses.csv", "segmentation_loss.png"):
        assert (out / name).is_file(), name
    r = runner.invoke(app, [*args, "--steps", "3"])
    assert r.exit_code == 2 and "--resume" in r.output
    r = runner.invoke(app, [*args, "--steps", "3", "--resume"])
    assert r.exit_code == 0, r.output
    rows = (out / "segmentation_losses.csv").read_text().strip().splitlines()
    assert [row.split(",")[0] for row in rows] == ["step", "1", "2", "3"]
    r = runner.invoke(app, [*args, "--steps", "4", "--resume", "--lr", "0.1"])
    assert r.exit_code == 2 and "settings differ" in r.output
    r = runner.invoke(app, [*args, "--steps", "4", "--resume", "--workers", "1"])  # how, not what: allowed
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, [*args, "--steps", "5", "--resume", "--precision", "bf16"])
    assert r.exit_code == 2 and "settings differ" in r.output and "precision" in r.output
    # a run saved before a setting existed resumes with that setting's default
    saved = json.loads((out / "segmentation_config.json").read_text())
    del saved["precision"]
    (out / "segmentation_config.json").write_text(json.dumps(saved))
    r = runner.invoke(app, [*args, "--steps", "4", "--resume"])
    assert r.exit_code == 0, r.output
    # The exported weights load for detection.
    from honnotate.perception.weights import load_weights

    model, info = load_weights("segmentation", out)
    assert info["train"]["steps"] == 4 and info["input"] == {"width": 64, "height": 48}
    assert json.loads((out / "segmentation_config.json").read_text())["synthetic"]["table_prob"] == 0.5
    r = runner.invoke(app, [*args, "--steps", "1", "--out", str(tmp_path / "t"), "--table-prob", "1.5"])
    assert r.exit_code == 2 and "table_prob must be in [0, 1]" in r.output
    r = runner.invoke(app, [*args, "--steps", "1", "--out", str(tmp_path / "p"), "--precision", "half"])
    assert r.exit_code == 2 and "precision must be one of" in r.output
    for bad, msg in (("blocks=2", "not KEY=INT"), ("levels", "not KEY=INT"), ("levels=two", "not an integer")):
        r = runner.invoke(app, [*args, "--steps", "1", "--out", str(tmp_path / "q"), "--arch", bad])
        assert r.exit_code == 2 and msg in r.output, (bad, r.output)
    r = runner.invoke(app, [*args, "--steps", "1", "--out", str(tmp_path / "r"), "--arch", "levels=2, base=4"])
    assert r.exit_code == 0, r.output
    saved = json.loads((tmp_path / "r" / "segmentation_config.json").read_text())["arch"]
    assert saved["levels"] == 2 and saved["base"] == 4
    r = runner.invoke(app, [*args, "--steps", "1", "--out", str(tmp_path / "f"), "--flip", "0.5"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "f" / "segmentation_config.json").read_text())["flip"] == 0.5
    r = runner.invoke(app, [*args, "--steps", "1", "--out", str(tmp_path / "z"), "--zoom", "0.8,2"])
    assert r.exit_code == 0, r.output
    saved = json.loads((tmp_path / "z" / "segmentation_config.json").read_text())["synthetic"]["augment"]
    assert saved["scale"] == [0.8, 2.0] and saved["rotation"] == 0.5  # the other augmentation defaults kept
    for bad in ("2", "2,1", "0,1", "a,b"):
        r = runner.invoke(app, [*args, "--steps", "1", "--out", str(tmp_path / "zb"), "--zoom", bad])
        assert r.exit_code == 2 and "--zoom" in r.output, (bad, r.output)
    r = runner.invoke(app, ["train", "keypoints", "--out", str(tmp_path / "k"), "--flip", "0.5", "--steps", "1"])
    assert r.exit_code == 2 and "is for the segmentation task" in r.output


def test_train_init_starts_from_weights_and_checks_them(tmp_path):
    from honnotate.perception.train import TrainConfig, train
    from honnotate.perception.weights import load_weights

    arch = {"width": 16, "stages": 1, "stage_width": 16}
    torch.manual_seed(5)
    src = build_network("keypoints", arch)
    save_weights(tmp_path / "w" / "keypoints.pt", "keypoints", src, arch, {"crop_size": 32, "margin": 1.35, "stride": 4})
    syn = CompositeConfig(width=64, height=48, objects=("sphere",), grasps_per_object=1)
    base = dict(task="keypoints", steps=1, batch=1, lr=1e-9, warmup=1, device="cpu", arch=arch,
                synthetic=replace(syn, crop=replace(syn.crop, size=32)))
    # lr ~ 0: the trained network is the initial one, so it must be the --init network
    train(TrainConfig(**base, out=str(tmp_path / "a"), init=str(tmp_path / "w")))
    got, info = load_weights("keypoints", tmp_path / "a")
    for k, v in src.state_dict().items():
        torch.testing.assert_close(got.state_dict()[k], v.half().float(), atol=1e-6, rtol=0)
    assert info["train"]["init"] == str(tmp_path / "w")
    train(TrainConfig(**base, out=str(tmp_path / "b"), seed=1))  # without init: another network
    other, _ = load_weights("keypoints", tmp_path / "b")
    assert not torch.allclose(other.state_dict()["backbone.0.0.weight"], got.state_dict()["backbone.0.0.weight"])
    with pytest.raises(WeightsError, match="architecture"):
        train(TrainConfig(**{**base, "arch": {**arch, "width": 32}}, out=str(tmp_path / "c"), init=str(tmp_path / "w")))
    with pytest.raises(WeightsError, match="no such"):
        train(TrainConfig(**base, out=str(tmp_path / "d"), init=str(tmp_path / "nowhere")))
    # a keypoint network under another name (as the shipped keypoints_fine.pt) starts a run as
    # well; a file of the other task is refused, naming it
    shutil.copy(tmp_path / "w" / "keypoints.pt", tmp_path / "w" / "renamed_fine.pt")
    train(TrainConfig(**base, out=str(tmp_path / "d2"), init=str(tmp_path / "w" / "renamed_fine.pt")))
    for k, v in src.state_dict().items():
        torch.testing.assert_close(load_weights("keypoints", tmp_path / "d2")[0].state_dict()[k], v.half().float(),
                                   atol=1e-6, rtol=0)
    save_weights(tmp_path / "w" / "seg_other.pt", "segmentation", build_network("segmentation", TINY_SEG),
                 {**default_arch("segmentation"), **TINY_SEG}, {"width": 64, "height": 48})
    with pytest.raises(WeightsError, match=r"seg_other\.pt.*(task|keypoints)"):
        train(TrainConfig(**base, out=str(tmp_path / "d3"), init=str(tmp_path / "w" / "seg_other.pt")))
    # a run saved before the architecture key `blocks` existed resumes (it had the default)
    cfg_a = tmp_path / "a" / "keypoints_config.json"
    saved = json.loads(cfg_a.read_text())
    del saved["arch"]["blocks"]
    cfg_a.write_text(json.dumps(saved))
    assert train(TrainConfig(**{**base, "steps": 2}, out=str(tmp_path / "a"), init=str(tmp_path / "w")),
                 resume=True).steps == 2
    # more backbone blocks than the --init network: grown, the old weights kept
    train(TrainConfig(**{**base, "arch": {**arch, "blocks": 5}}, out=str(tmp_path / "e"), init=str(tmp_path / "w")))
    grown, info = load_weights("keypoints", tmp_path / "e")
    assert info["arch"]["blocks"] == 5
    for k, v in src.state_dict().items():
        torch.testing.assert_close(grown.state_dict()[k], v.half().float(), atol=1e-6, rtol=0)
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(grown(x)[-1], got(x)[-1], atol=1e-5, rtol=1e-4)
    # the command line starts from the --init network's architecture; --arch changes it (here: a
    # context branch added), and the next run from those weights keeps it without --arch
    runner = CliRunner()
    cli = ["train", "keypoints", "--steps", "1", "--batch", "1", "--lr", "1e-9", "--size", "64x48", "--objects",
           "sphere", "--grasps-per-object", "1", "--device", "cpu"]
    r = runner.invoke(app, [*cli, "--out", str(tmp_path / "f"), "--init", str(tmp_path / "e"),
                            "--arch", "context=1,context_width=16"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, [*cli, "--out", str(tmp_path / "g"), "--init", str(tmp_path / "f" / "keypoints.pt")])
    assert r.exit_code == 0, r.output
    with_context, info = load_weights("keypoints", tmp_path / "g")
    assert {k: info["arch"][k] for k in ("width", "blocks", "context", "context_width")} == \
        {"width": 16, "blocks": 5, "context": 1, "context_width": 16}
    torch.testing.assert_close(with_context(x)[-1], got(x)[-1], atol=1e-4, rtol=1e-3)
    # --crop-size: another crop side than the --init network's, recorded for detection; bad sides refused
    r = runner.invoke(app, [*cli, "--out", str(tmp_path / "h"), "--init", str(tmp_path / "g"), "--crop-size", "48"])
    assert r.exit_code == 0, r.output
    assert load_weights("keypoints", tmp_path / "h")[1]["input"]["crop_size"] == 48
    for bad in ("40", "8"):
        r = runner.invoke(app, [*cli, "--out", str(tmp_path / "i"), "--crop-size", bad])
        assert r.exit_code == 2 and "multiple of 16" in r.output, r.output
    # --occluders: recorded in the run's crop settings; a bad chance, or for segmentation, refused
    r = runner.invoke(app, [*cli, "--out", str(tmp_path / "j"), "--init", str(tmp_path / "g"), "--occluders", "0.5"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "j" / "keypoints_config.json").read_text())["synthetic"]["crop"]["occluder_prob"] == 0.5
    for bad in (["--occluders", "1.5"], ["--occluders", "-0.5"]):
        r = runner.invoke(app, [*cli, "--out", str(tmp_path / "k"), *bad])
        assert r.exit_code == 2 and "--occluders" in r.output, r.output
    r = runner.invoke(app, ["train", "seg", "--steps", "1", "--out", str(tmp_path / "l"), "--occluders", "0.5"])
    assert r.exit_code == 2 and "--occluders is for keypoints" in r.output, r.output
    # --truncate: likewise
    r = runner.invoke(app, [*cli, "--out", str(tmp_path / "m"), "--init", str(tmp_path / "g"), "--truncate", "0.3"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "m" / "keypoints_config.json").read_text())["synthetic"]["crop"]["truncate_prob"] == 0.3
    r = runner.invoke(app, [*cli, "--out", str(tmp_path / "n"), "--truncate", "1.5"])
    assert r.exit_code == 2 and "--truncate" in r.output, r.output
    # --upright: recorded in the crop settings and in the weights for detection; not for segmentation
    r = runner.invoke(app, [*cli, "--out", str(tmp_path / "o"), "--init", str(tmp_path / "g"), "--upright"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "o" / "keypoints_config.json").read_text())["synthetic"]["crop"]["upright"] is True
    assert load_weights("keypoints", tmp_path / "o")[1]["input"]["upright"] is True
    assert "upright" not in load_weights("keypoints", tmp_path / "g")[1]["input"]
    r = runner.invoke(app, ["train", "seg", "--steps", "1", "--out", str(tmp_path / "p"), "--upright"])
    assert r.exit_code == 2 and "--upright is for keypoints" in r.output, r.output


def test_sequence_frames_bootstrap_labels(capture):
    """Training pairs from a generated capture: ground-truth labels and projected joints."""
    from honnotate.io.cues import read_segmentation

    seg = SequenceFrames([capture], "segmentation", width=128, height=96, augment=AugmentConfig(enabled=False))
    assert len(seg) == 2
    s = seg[0]
    gt = read_segmentation(capture / "ground_truth" / "segmentation" / "0" / "0000.png")
    np.testing.assert_array_equal(s["labels"].numpy(), gt)
    assert s["image"].shape == (3, 96, 128)
    kp = SequenceFrames([capture], "keypoints", crop=CropConfig(size=32), augment=AugmentConfig(enabled=False))
    k = kp[1]
    assert k["heatmaps"].shape == (21, 8, 8)
    gt_kp = np.load(capture / "ground_truth" / "sequence_gt.npz")["keypoints2d"][1, 0]
    np.testing.assert_array_equal(k["keypoints"][:, 2].numpy() > 0, (gt_kp[:, 2] > 0) & (k["weights"].numpy() > 0))
    with pytest.raises(FileNotFoundError, match="rgb"):
        SequenceFrames([capture / "ground_truth"], "segmentation")


def test_sequence_frames_redraws_parents_and_hidden_hands(capture, tmp_path):
    """Index i is frame i % len with its own augmentation; a folder of captures stands for them;
    a keypoint sample of a frame without hand pixels comes from the next frame."""
    import shutil

    from honnotate.io.cues import read_segmentation, write_segmentation

    seg = SequenceFrames([capture], "segmentation", width=128, height=96)
    a, b = seg[1], seg[1 + len(seg)]
    assert not torch.equal(a["image"], b["image"])  # same frame, other augmentation
    plain = SequenceFrames([capture], "segmentation", width=128, height=96, augment=AugmentConfig(enabled=False))
    torch.testing.assert_close(plain[1]["image"], plain[1 + 2 * len(plain)]["image"])
    with pytest.raises(IndexError):
        seg[-1]
    # augmented keypoint samples batch with the composites' (same keys), crops colour-jittered
    from honnotate.perception.data import SyntheticComposites

    crop = CropConfig(size=32)
    kp = SequenceFrames([capture], "keypoints", crop=crop)
    syn = SyntheticComposites(CompositeConfig(width=128, height=96, grasps_per_object=1, objects=("sphere",), crop=crop),
                              "keypoints")
    assert set(kp[0]) == set(syn[0])
    torch.utils.data.default_collate([kp[0], syn[0]])
    assert not torch.equal(kp[0]["image"], kp[len(kp)]["image"])
    parent = tmp_path / "captures"
    for name in ("b", "a"):
        shutil.copytree(capture, parent / name)
    both = SequenceFrames([parent], "keypoints", crop=CropConfig(size=32), augment=AugmentConfig(enabled=False))
    assert len(both) == 4 and [it[0].root.name for it in both.items] == ["a", "a", "b", "b"]
    # hide the hand of frame 0 of capture "a": its sample is frame 1's
    gt0 = parent / "a" / "ground_truth" / "segmentation" / "0" / "0000.png"
    labels = read_segmentation(gt0)
    write_segmentation(gt0, np.where(labels == 2, 0, labels).astype(np.uint8))
    torch.testing.assert_close(both[0]["heatmaps"], both[1]["heatmaps"])
    assert not torch.equal(both[1]["heatmaps"], both[2]["heatmaps"])  # capture b, frame 0
    for name in ("a", "b"):
        for f in ("0000", "0001"):
            p = parent / name / "ground_truth" / "segmentation" / "0" / f"{f}.png"
            write_segmentation(p, np.zeros_like(labels))
    with pytest.raises(ValueError, match="no frame with hand pixels"):
        both[3]


def test_shipped_weights_find_hand_object_and_joints(tmp_path):
    # the weights shipped in the package (trained by `honnotate train` on generated data) load
    # with weights_only, fit the 10 MB budget, and on a held-out generated frame (a seed, object
    # and grasp the training data did not use) find the hand, the object and the visible joints;
    # an untrained network scores IoU ~0.1 and PCK ~0
    from honnotate.io.cues import read_segmentation
    from honnotate.perception.weights import default_weights_dir
    from honnotate.synth.generator import SynthConfig, generate_sequence

    files = sorted(default_weights_dir().glob("*.pt"))
    assert [f.name for f in files] == ["keypoints.pt", "keypoints_fine.pt", "keypoints_upright.pt", "segmentation.pt",
                                       "segmentation_rgb.pt"]
    assert sum(f.stat().st_size for f in files) <= 10e6
    out = tmp_path / "seq"
    generate_sequence(out, SynthConfig(frames=3, cameras=1, object="soup_can", seed=2024, grasp="random"))
    seq = open_sequence(out)
    gt = np.load(out / "ground_truth" / "sequence_gt.npz")
    det = Detector(None, "cpu")
    assert det.seg_needs_depth and det.seg_rgb is not None  # and an RGB network for frames without depth
    assert det.kp_fine is not None and det.kp_upright is not None  # and two more keypoint networks averaged in
    errors = []
    for t, frame in enumerate(seq.frame_ids):
        d = det(seq.rgb("0", frame), seq.depth("0", frame))  # the shipped segmentation sees the depth
        with pytest.warns(UserWarning, match="segmentation_rgb.pt") if t == 0 else contextlib.nullcontext():
            rgb_only = det.segment(seq.rgb("0", frame))
        labels = read_segmentation(out / "ground_truth" / "segmentation" / "0" / f"{frame}.png")
        for cls in (1, 2):
            for pred in (d.labels, rgb_only):
                iou = np.sum((pred == cls) & (labels == cls)) / max(np.sum((pred == cls) | (labels == cls)), 1)
                assert iou > 0.6, (frame, cls, iou)
        kp = gt["keypoints2d"][t, 0]
        vis = gt["keypoints_visible"][t, 0] > 0
        errors.extend(np.linalg.norm(d.keypoints[vis, :2] - kp[vis, :2], axis=1))
    assert len(errors) >= 10 and np.median(errors) < 15.0, np.round(errors, 1)


def test_annotate_runs_the_shipped_detector_when_cues_are_missing(tmp_path):
    # and then reads the cue files the detector wrote (a sequence opened before them listed none)
    from honnotate.annotate.config import AnnotateConfig
    from honnotate.pipeline.annotate import AnnotationInterrupted, annotate_sequence
    from honnotate.synth.generator import SynthConfig, generate_sequence

    out = tmp_path / "seq"
    generate_sequence(out, SynthConfig(frames=1, cameras=1, object="mustard_bottle", seed=3))
    shutil.rmtree(out / "segmentation")
    shutil.rmtree(out / "keypoints2d")
    logs: list[str] = []
    cfg = AnnotateConfig()
    with pytest.raises(AnnotationInterrupted):  # stop after the first stage: the cues are the point here
        annotate_sequence(out, tmp_path / "ann", cfg, log=logs.append, stop=lambda stage, done: True)
    assert any("running honnotate's detector" in m for m in logs)
    seq = open_sequence(out)
    assert seq.has_cues()
    kp = seq.keypoints2d("0", 0)
    hand = seq.segmentation("0", 0) == 2
    assert hand.any() and (kp[:, 2] > 0).all()
    # the detected joints lie on or near the detected hand
    ys, xs = np.nonzero(hand)
    assert np.all((kp[:, 0] > xs.min() - 40) & (kp[:, 0] < xs.max() + 40) & (kp[:, 1] > ys.min() - 40)
                  & (kp[:, 1] < ys.max() + 40)), kp


def test_rgbd_weights_train_detect_and_need_depth(capture, tmp_path):
    """Keypoint weights with depth channels: trained from captures and composites with depth,
    used by detect_sequence with the capture's depth maps, and a clear error without them."""
    from honnotate.perception.train import TrainConfig, train

    arch = {**TINY_KP, "depth": 1}
    syn = CompositeConfig(width=64, height=48, objects=("sphere",), grasps_per_object=1)
    res = train(TrainConfig(task="keypoints", steps=2, batch=2, device="cpu", arch=arch, out=str(tmp_path / "w"),
                            synthetic=replace(syn, crop=replace(syn.crop, size=32)), data=(str(capture),),
                            data_fraction=0.5))
    assert np.isfinite(res.losses).all()
    w = tmp_path / "w"
    torch.manual_seed(0)
    save_weights(w / "segmentation.pt", "segmentation", build_network("segmentation", TINY_SEG),
                 {**default_arch("segmentation"), **TINY_SEG}, {"width": 64, "height": 48})
    det = Detector(w, "cpu")
    assert det.needs_depth and not Detector(w, "cpu", keypoints=False).needs_depth
    seq = open_sequence(capture)
    rgb, depth = seq.rgb("0", 0), seq.depth("0", 0)
    gt = np.asarray(seq.segmentation("0", 0))
    with pytest.raises(ValueError, match="RGB-D crops"):
        det.keypoints(rgb, gt)
    with pytest.raises(ValueError, match="does not match the RGB image"):
        det.keypoints(rgb, gt, depth[:-1])
    kp, box = det.keypoints(rgb, gt, depth)
    assert box is not None and kp.shape == (21, 3) and np.isfinite(kp).all()
    seq_dir = _fresh_copy(capture, tmp_path)
    summary = detect_sequence(seq_dir, w, device="cpu")
    assert summary.written == 4
    np.testing.assert_allclose(open_sequence(seq_dir).keypoints2d("0", 0), det(rgb, depth).keypoints, atol=1e-3)


def test_rgbd_segmentation_trains_detects_and_needs_depth(capture, tmp_path):
    """Segmentation weights with depth channels: trained from captures (the far wall drawn into
    some frames' unmeasured background) and composites with depth, used by detect_sequence with the
    capture's depth maps; without them it runs on a map without measurements, with a warning; a depth
    map of another size is an error."""
    from honnotate.perception.data import SyntheticComposites, far_wall
    from honnotate.perception.train import TrainConfig, train

    arch = {**TINY_SEG, "num_classes": 4, "depth": 1}
    syn = CompositeConfig(width=64, height=48, objects=("sphere",), grasps_per_object=1)
    res = train(TrainConfig(task="segmentation", steps=2, batch=2, device="cpu", arch=arch, out=str(tmp_path / "w"),
                            synthetic=syn, data=(str(capture),), data_fraction=0.5))
    assert np.isfinite(res.losses).all()
    frames = SequenceFrames([capture], "segmentation", width=64, height=48, depth=True, forearm_class=True)
    sample = frames[0]
    assert sample["image"].shape == (5, 48, 64) and set(np.unique(sample["image"][4].numpy())) <= {0.0, 1.0}
    assert SyntheticComposites(syn, "segmentation", depth=True)[0]["image"].shape == (5, 48, 64)
    d = np.zeros((4, 5), np.float32)
    d[2:, :] = 0.5
    where = d == 0
    walls = [far_wall(d, where, 2.0, 1.5, np.random.default_rng(s)) for s in range(40)]
    drawn = [w for w in walls if w[where].any()]
    assert 5 < len(drawn) < 35 and all(np.array_equal(w[~where], d[~where]) for w in walls)
    assert all((w[where] > 0.8).all() for w in drawn)  # 0.4-1.5 m behind the nearest surface
    w = tmp_path / "w"
    torch.manual_seed(0)
    save_weights(w / "keypoints.pt", "keypoints", build_network("keypoints", TINY_KP),
                 {**default_arch("keypoints"), **TINY_KP}, {"crop_size": 32, "margin": 1.3, "stride": 4})
    det = Detector(w, "cpu")
    assert det.seg_needs_depth and not det.needs_depth
    seq = open_sequence(capture)
    rgb, depth = seq.rgb("0", 0), seq.depth("0", 0)
    with pytest.warns(UserWarning, match="RGB-D images"):  # no depth: runs on a map without measurements
        np.testing.assert_array_equal(det.segment_classes(rgb), det.segment_classes(rgb, np.zeros_like(depth)))
    with pytest.raises(ValueError, match="does not match the image"):
        det.segment_classes(rgb, depth[:-1])
    seq_dir = _fresh_copy(capture, tmp_path)
    summary = detect_sequence(seq_dir, w, device="cpu")
    assert summary.written == 4
    np.testing.assert_array_equal(np.asarray(open_sequence(seq_dir).segmentation("0", 0)), det(rgb, depth).labels)
    # a depth map not registered to the colour image: training says which capture, camera and frame
    from honnotate.io.images import read_depth_png, write_depth_png

    bad = tmp_path / "unregistered"
    shutil.copytree(capture, bad)
    png = sorted((bad / "depth" / "0").iterdir())[0]
    write_depth_png(png, read_depth_png(png)[:-2])
    with pytest.raises(ValueError, match=r"unregistered: camera 0 frame .*not registered to the colour image"):
        SequenceFrames([bad], "segmentation", width=64, height=48, depth=True)[0]


def test_rgb_segmentation_fallback_for_frames_without_depth(capture, tmp_path):
    """An RGB-D segmentation folder with an RGB network of the same classes beside it
    (segmentation_rgb.pt): frames without a depth map are segmented by that network, frames with
    one by the RGB-D network; rgb_fallback=False or no such file: the RGB-D network on an
    unmeasured map; a fallback that takes depth or has other classes is refused, named."""
    import warnings

    seg_arch = {**default_arch("segmentation"), **TINY_SEG, "num_classes": 4}
    w, w_rgb = tmp_path / "w", tmp_path / "w_rgb"
    torch.manual_seed(0)
    save_weights(w / "segmentation.pt", "segmentation", build_network("segmentation", {**seg_arch, "depth": 1}),
                 {**seg_arch, "depth": 1}, {"width": 64, "height": 48})
    save_weights(w / "keypoints.pt", "keypoints", build_network("keypoints", TINY_KP),
                 {**default_arch("keypoints"), **TINY_KP}, {"crop_size": 32, "margin": 1.3, "stride": 4})
    torch.manual_seed(1)
    rgb_net = build_network("segmentation", seg_arch)
    for folder, name in ((w, "segmentation_rgb.pt"), (w_rgb, "segmentation.pt")):
        save_weights(folder / name, "segmentation", rgb_net, seg_arch, {"width": 64, "height": 48})
    shutil.copy(w / "keypoints.pt", w_rgb / "keypoints.pt")
    seq = open_sequence(capture)
    rgb, depth = seq.rgb("0", 0), seq.depth("0", 0)
    det, plain, alone = Detector(w, "cpu"), Detector(w, "cpu", rgb_fallback=False), Detector(w_rgb, "cpu")
    assert det.seg_rgb is not None and plain.seg_rgb is None and alone.seg_rgb is None
    with pytest.warns(UserWarning, match="segmentation_rgb.pt"):
        np.testing.assert_array_equal(det.segment_classes(rgb), alone.segment_classes(rgb))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per detector
        det.segment_classes(rgb)
    np.testing.assert_array_equal(det.segment_classes(rgb, depth), plain.segment_classes(rgb, depth))
    with pytest.warns(UserWarning, match="without depth measurements"):
        np.testing.assert_array_equal(plain.segment_classes(rgb), plain.segment_classes(rgb, np.zeros_like(depth)))
    for bad_arch in ({**seg_arch, "depth": 1}, {**seg_arch, "num_classes": 3}):
        save_weights(w / "segmentation_rgb.pt", "segmentation", build_network("segmentation", bad_arch), bad_arch,
                     {"width": 64, "height": 48})
        with pytest.raises(WeightsError, match=r"segmentation_rgb\.pt: the segmentation for frames without depth"):
            Detector(w, "cpu")


@pytest.fixture(scope="module")
def capture3(tmp_path_factory):
    """1 frame x 3 calibrated cameras at 128x96."""
    from honnotate.synth.generator import SynthConfig, generate_sequence
    from honnotate.synth.noise import DepthNoiseConfig

    out = tmp_path_factory.mktemp("perc3") / "seq"
    generate_sequence(out, SynthConfig(frames=1, cameras=3, object="sphere", width=128, height=96, seed=12,
                                       depth_noise=DepthNoiseConfig(kind="none")), contact_sheet=False)
    return out


def test_fuse_sequence_keypoints_rewrites_the_cue_files(capture3, tmp_path):
    from honnotate.io.cues import keypoints2d_fused_views, read_keypoints2d, write_keypoints2d
    from honnotate.io.files import CaptureFormatError
    from honnotate.io.sequence import open_sequence
    from honnotate.perception.multiview import FUSED_RAW_DIR, fuse_sequence_keypoints

    seq_dir = tmp_path / "seq"
    shutil.copytree(capture3, seq_dir)
    seq = open_sequence(seq_dir)
    frame = seq.frame_ids[0]
    gt = np.load(seq_dir / "ground_truth" / "sequence_gt.npz")["keypoints2d"][0]  # (C, 21, 3)
    views = np.concatenate([gt[..., :2], np.full((3, 21, 1), 0.8)], -1).astype(np.float32)
    views[1, 5, :2] += 30.0  # camera 1 puts joint 5 elsewhere
    paths = [seq_dir / "keypoints2d" / c / f"{frame}.json" for c in seq.camera_ids]
    for c, p in enumerate(paths):
        write_keypoints2d(p, views[c])
    s = fuse_sequence_keypoints(seq_dir)
    assert (s.frames, s.skipped, s.keypoints) == (1, 0, 63) and s.replaced >= 1
    fused = np.stack([read_keypoints2d(p) for p in paths])
    np.testing.assert_allclose(fused[1, 5, :2], gt[1, 5, :2], atol=1e-3)
    assert all(keypoints2d_fused_views(p) for p in paths)
    raw = [seq_dir / FUSED_RAW_DIR / c / f"{frame}.json" for c in seq.camera_ids]
    np.testing.assert_array_equal(np.stack([read_keypoints2d(p) for p in raw]), views)
    # a rerun fuses the kept per-view detections again, not the fused ones
    assert fuse_sequence_keypoints(seq_dir).replaced == s.replaced
    np.testing.assert_array_equal(np.stack([read_keypoints2d(p) for p in paths]), fused)
    # new detections written over a fused file are what the next fusion uses
    views[1, 5, :2] -= 30.0
    write_keypoints2d(paths[1], views[1])
    assert fuse_sequence_keypoints(seq_dir).replaced == 0
    np.testing.assert_array_equal(read_keypoints2d(raw[1]), views[1])
    raw[2].unlink()
    with pytest.raises(CaptureFormatError, match="without their per-view detections"):
        fuse_sequence_keypoints(seq_dir)
    with pytest.raises(ValueError, match="at least 3 cameras"):
        fuse_sequence_keypoints(seq_dir, cameras=seq.camera_ids[:2])


def test_detect_command_fuses_views(capture, capture3, weights, tmp_path):
    from honnotate.perception.multiview import FUSED_RAW_DIR

    runner = CliRunner()
    r = runner.invoke(app, ["detect", str(_fresh_copy(capture, tmp_path)), "--weights", str(weights),
                            "--device", "cpu", "--fuse-views"])
    assert r.exit_code == 2 and "at least 3 cameras" in r.output
    seq3 = tmp_path / "seq3"
    shutil.copytree(capture3, seq3)
    r = runner.invoke(app, ["detect", str(seq3), "--weights", str(weights), "--device", "cpu", "--overwrite",
                            "--fuse-views"])
    assert r.exit_code == 0, r.output
    assert "wrote 6 cue files" in r.output and "fused the keypoints of 1 frame across views" in r.output
    assert len(list((seq3 / FUSED_RAW_DIR).glob("*/*.json"))) == 3
    # the default: fused with 3 or more calibrated cameras, not with one
    shutil.rmtree(seq3 / FUSED_RAW_DIR)
    r = runner.invoke(app, ["detect", str(seq3), "--weights", str(weights), "--device", "cpu", "--overwrite"])
    assert r.exit_code == 0 and "fused the keypoints of 1 frame" in r.output
    shutil.rmtree(seq3 / FUSED_RAW_DIR)
    r = runner.invoke(app, ["detect", str(seq3), "--weights", str(weights), "--device", "cpu", "--overwrite",
                            "--no-fuse-views"])
    assert r.exit_code == 0 and "fused" not in r.output and not (seq3 / FUSED_RAW_DIR).exists()
    assert detect_sequence(_fresh_copy(capture, tmp_path / "one"), weights, device="cpu").fused is None


def test_wrist_cut_ends_the_shipped_hand_mask_at_the_wrist(tmp_path):
    """The shipped weights (a forearm class) on a generated frame with a forearm: without the cut
    the hand is the network's hand class; with it (first keypoint pass only) the same keypoints,
    no hand pixel past the cut line, the changes only between hand and background and the new hand
    pixels the network's forearm; with ``redetect`` (the default) a second pass detects again in the
    cut mask's box and the mask is cut again at its wrist."""
    from honnotate.models.joints import FINGER_JOINTS
    from honnotate.synth.generator import SynthConfig, generate_sequence

    out = tmp_path / "seq"
    generate_sequence(out, SynthConfig(frames=1, cameras=1, object="mug", seed=1007, grasp="random"),
                      contact_sheet=False)
    seq = open_sequence(out)
    rgb, depth = seq.rgb("0", seq.frame_ids[0]), seq.depth("0", seq.frame_ids[0])
    det = Detector(None, "cpu", tta=((1.0, 0.0),), redetect=False)  # one keypoint pass, one cut
    assert det.forearm_class
    cut = det(rgb, depth)
    whole = Detector(None, "cpu", tta=((1.0, 0.0),), cut_wrist=False)(rgb, depth)
    np.testing.assert_array_equal(cut.keypoints, whole.keypoints)
    np.testing.assert_array_equal(whole.labels, det.segment(rgb, depth))
    changed = cut.labels != whole.labels
    assert changed.sum() > 30  # this frame's hand and forearm run on past the wrist
    assert set(np.unique(cut.labels[changed])) <= {0, 2} and set(np.unique(whole.labels[changed])) <= {0, 2}
    gained = changed & (cut.labels == 2)
    assert (det.segment_classes(rgb, depth)[gained] == 3).all()
    w, m = cut.keypoints[0, :2], cut.keypoints[FINGER_JOINTS["middle"][0], :2]
    v, u = np.nonzero(cut.labels == 2)
    assert (((u - w[0]) * (w - m)[0] + (v - w[1]) * (w - m)[1]) / np.sum((w - m) ** 2) <= -0.05 + 1e-9).all()
    default = Detector(None, "cpu", tta=((1.0, 0.0),))
    assert default.redetect
    again = default(rgb, depth)
    assert again.box != cut.box  # the box of the cut mask, keypoints found again there
    first, _ = det.keypoints(rgb, cut.labels)
    np.testing.assert_array_equal(again.keypoints, first)
    np.testing.assert_array_equal(again.labels, det.cut_at_wrist(det.segment_classes(rgb, depth), again.keypoints))


def test_forearm_class_ends_hand_and_forearm_together_at_the_wrist(tmp_path):
    """With a forearm class the detector cuts hand and forearm as one at the wrist: forearm
    pixels before the wrist become hand, those past it background; no cut (no confident wrist):
    the forearm is background. Cue labels stay in {0, 1, 2}."""
    d = tmp_path / "w4"
    d.mkdir()
    arch = {**default_arch("segmentation"), **TINY_SEG, "num_classes": 4}
    save_weights(d / "segmentation.pt", "segmentation", build_network("segmentation", arch), arch,
                 {"width": 64, "height": 48})
    det = Detector(d, "cpu", keypoints=False)
    three = tmp_path / "w3"
    three.mkdir()
    save_weights(three / "segmentation.pt", "segmentation", build_network("segmentation", TINY_SEG),
                 {**default_arch("segmentation"), **TINY_SEG}, {"width": 64, "height": 48})
    assert det.forearm_class and not Detector(three, "cpu", keypoints=False).forearm_class
    classes = np.zeros((48, 64), np.uint8)
    classes[5:12, 5:15] = 1
    classes[10:30, 20:36] = 2
    classes[15:25, 36:64] = 3
    kp = np.zeros((21, 3), np.float32)
    kp[:, :2] = (28.0, 20.0)
    kp[0] = (40.0, 20.0, 0.9)  # wrist
    kp[4] = (25.0, 20.0, 0.9)  # middle knuckle (MANO order): the hand axis points to -u, 15 px long
    det.segment_classes = lambda rgb, depth=None: classes
    det.keypoints = lambda rgb, labels, depth=None, fx=None: (kp, (28.0, 20.0, 30.0))
    rgb = np.zeros((48, 64, 3), np.uint8)
    out = det(rgb).labels
    assert set(np.unique(out)) == {0, 1, 2}
    expect = np.where(classes == 3, 2, classes)
    expect[:, 40:][expect[:, 40:] == 2] = 0  # past the cut, 0.05 hand-axis lengths before the wrist
    np.testing.assert_array_equal(out, expect)
    np.testing.assert_array_equal(det.cut_at_wrist(classes, kp), expect)  # the cut alone, any keypoints
    np.testing.assert_array_equal(det.segment(rgb), np.where(classes == 3, 0, classes))
    kp[0, 2] = 0.0  # no confident wrist: no cut, the forearm is background
    np.testing.assert_array_equal(det(rgb).labels, np.where(classes == 3, 0, classes))
    np.testing.assert_array_equal(det.cut_at_wrist(classes, kp), np.where(classes == 3, 0, classes))
    # without a forearm class the hand class alone is cut
    three_det = Detector(three, "cpu", keypoints=False)
    kp[0, 2] = 0.9
    hand_only = np.where(classes == 3, 0, classes).astype(np.uint8)
    hand_only[:, 20:64][classes[:, 20:64] == 3] = 2  # a 3-class network's hand running on into the arm
    cut3 = three_det.cut_at_wrist(hand_only, kp)
    assert (cut3[:, 40:] != 2).all() and (cut3[:, :40] == hand_only[:, :40]).all()


def test_segmentation_averages_the_image_and_its_mirror_image(weights):
    """seg_flip: the logits of the image and of its left-right mirror image (mirrored back) are
    averaged before the arg-max; seg_flip=False is the single pass."""

    class _LeftBright(torch.nn.Module):  # logits that differ between an image and its mirror image
        def forward(self, x):
            b, _, h, w = x.shape
            ramp = torch.linspace(-1.0, 1.0, w).expand(b, h, w)
            bright = x.mean(1)
            return torch.stack([torch.zeros_like(bright), 2 * bright + ramp, 2 * bright - ramp], 1)

    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[:, 40:] = 200
    one = Detector(weights, "cpu", keypoints=False, seg_flip=False, seg_zoom=(1.0,))
    two = Detector(weights, "cpu", keypoints=False, seg_zoom=(1.0,))
    assert two.seg_flip and not one.seg_flip and one.seg_sizes == ((64, 48),)
    one.seg = two.seg = _LeftBright()
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0
    single = _LeftBright()(x)
    both = 0.5 * (single + _LeftBright()(x.flip(-1)).flip(-1))  # the ramp cancels: class 1 and 2 tie
    assert np.array_equal(one.segment_classes(rgb), single.argmax(1)[0].numpy())
    assert np.array_equal(two.segment_classes(rgb), both.argmax(1)[0].numpy())
    assert not np.array_equal(one.segment_classes(rgb), two.segment_classes(rgb))


def test_mirrored_training_images_keep_their_labels():
    from honnotate.perception.train import TrainConfig, mirror_some

    labels = torch.arange(4 * 3 * 5).reshape(4, 3, 5) % 3
    image = torch.stack([labels.float()] * 3, 1)  # the image carries its labels
    lab, img = mirror_some(labels, image, 0.5, (7, 3))
    flipped = [not torch.equal(lab[i], labels[i]) for i in range(4)]
    assert any(flipped) and not all(flipped)  # this draw mirrors some, not all
    for i in range(4):
        assert torch.equal(img[i, 0].long(), lab[i])  # image and labels mirrored together
        assert torch.equal(lab[i], labels[i].flip(-1) if flipped[i] else labels[i])
    lab2, _ = mirror_some(labels, image, 0.5, (7, 3))
    assert torch.equal(lab2, lab)  # the same (seed, step): the same images (resume)
    assert torch.equal(mirror_some(labels, image, 0.0, (7, 3))[0], labels)
    assert torch.equal(labels[0], torch.arange(15).reshape(3, 5) % 3)  # inputs untouched
    with pytest.raises(ValueError, match="segmentation task only"):
        TrainConfig(task="keypoints", flip=0.5)
    with pytest.raises(ValueError, match="probability"):
        TrainConfig(flip=1.5)


def test_segmentation_averages_the_logits_of_several_input_sizes(weights):
    """seg_zoom: the logits at each input size (multiples of the trained 64x48, down to multiples
    of 16), resized to the image, are summed before the arg-max; bad scales are refused."""
    from torch.nn.functional import interpolate

    from honnotate.perception.detect import SEG_ZOOM_DEFAULT, seg_input_size

    assert seg_input_size((320, 240), 1.5) == (480, 352) and seg_input_size((320, 240), 1.0) == (320, 240)
    assert seg_input_size((64, 48), 0.1) == (16, 16)
    assert Detector(weights, "cpu", keypoints=False).seg_zoom == SEG_ZOOM_DEFAULT

    class _SizeAware(torch.nn.Module):  # logits whose arg-max depends on the input size
        def forward(self, x):
            b, _, h, w = x.shape
            u = torch.linspace(0.0, 1.0, w).expand(b, h, w)
            return torch.stack([torch.full_like(u, 0.5), u * (64.0 / w), torch.zeros_like(u)], 1)

    rgb = np.zeros((48, 64, 3), np.uint8)
    det = Detector(weights, "cpu", keypoints=False, seg_flip=False, seg_zoom=(1.0, 2.0))
    assert det.seg_sizes == ((64, 48), (128, 96))
    det.seg = _SizeAware()
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0
    total = sum(interpolate(_SizeAware()(interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)),
                            size=(48, 64), mode="bilinear", align_corners=False) for w, h in det.seg_sizes)
    got = det.segment_classes(rgb)
    np.testing.assert_array_equal(got, total.argmax(1)[0].numpy())
    single = Detector(weights, "cpu", keypoints=False, seg_flip=False, seg_zoom=(1.0,))
    single.seg = _SizeAware()
    assert not np.array_equal(got, single.segment_classes(rgb))  # the second size changed the labels
    for bad in ((), (0.0,), (1.0, -1.0), (float("nan"),)):
        with pytest.raises(ValueError, match="seg_zoom"):
            Detector(weights, "cpu", keypoints=False, seg_zoom=bad)
    from honnotate.perception.detect import parse_seg_zoom

    assert parse_seg_zoom("1,2") == (1.0, 2.0) and parse_seg_zoom("1.5") == (1.5,)
    for text in ("1,x", "", "0", "1,-2", "nan"):
        with pytest.raises(ValueError, match="--seg-zoom.*" + repr(text).replace("(", r"\(")):
            parse_seg_zoom(text)


def test_object_gate_is_validated_and_runs(capture, weights):
    from honnotate.io.sequence import open_sequence

    with pytest.raises(ValueError, match="object_gate_m"):
        Detector(weights, "cpu", object_gate_m=-0.1)
    seq = open_sequence(capture)
    cam, frame = seq.camera_ids[0], seq.frame_ids[0]
    rgb, depth, fx = seq.rgb(cam, frame), seq.depth(cam, frame), float(seq.calibration(cam).K[0, 0])
    gated = Detector(weights, "cpu", object_gate_m=0.15)(rgb, depth, fx)
    assert gated.labels.shape == rgb.shape[:2] and set(np.unique(gated.labels)) <= {0, 1, 2}
    # without depth the gate has nothing to measure with: the detection of the ungated detector
    plain = Detector(weights, "cpu")(rgb)
    assert np.array_equal(Detector(weights, "cpu", object_gate_m=0.15)(rgb).labels, plain.labels)
