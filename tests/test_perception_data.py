"""Synthetic composites: determinism, labels and keypoints consistent with the rendered scene."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from honnotate.perception.crops import decode_heatmaps
from honnotate.perception.data import (
    AugmentConfig,
    CompositeConfig,
    SyntheticComposites,
    draw_plane,
    procedural_background,
    table_plane,
)


@pytest.fixture(scope="module")
def config():
    return CompositeConfig(objects=("sphere",), grasps_per_object=1, width=96, height=80, distance=(0.3, 0.4), seed=5)


@pytest.fixture(scope="module")
def raw(config):
    """Composites without augmentation (one dataset: the grasp bank is made once)."""
    return SyntheticComposites(dataclasses.replace(config, augment=AugmentConfig(enabled=False)))


def test_deterministic_per_seed(config, raw):
    a = SyntheticComposites(config).composite(3)
    ds = SyntheticComposites(config)  # a fresh dataset: grasp bank and sample rebuilt from the seed
    b = ds.composite(3)
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["labels"], b["labels"])
    np.testing.assert_array_equal(a["keypoints"], b["keypoints"])
    c = ds.composite(4)
    assert not np.array_equal(a["image"], c["image"])
    other = SyntheticComposites(dataclasses.replace(config, seed=6))
    assert not np.array_equal(other.composite(3)["image"], a["image"])


def test_labels_and_keypoints_match_an_independent_render(raw):
    """Without augmentation: the sample's mask equals a fresh render of its scene, the keypoints
    are the projected joints, and visible joints lie on hand pixels."""
    from honnotate.geometry import Camera
    from honnotate.render.renderer import Renderer, SceneMesh

    for index in range(3):
        s = raw.composite(index, return_scene=True)
        sc = s["scene"]
        assert s["image"].shape == (80, 96, 3) and s["image"].dtype == np.float32
        assert s["labels"].shape == (80, 96) and s["labels"].dtype == np.uint8
        K = sc["K"]
        cam = Camera.from_intrinsics(K[0, 0], K[1, 1], K[0, 2], K[1, 2], 96, 80)
        meshes = []
        if sc["hand_vertices"] is not None:
            meshes.append(SceneMesh(torch.as_tensor(sc["hand_vertices"], dtype=torch.float32), torch.as_tensor(sc["hand_faces"]), 2))
        if sc["object_vertices"] is not None:
            meshes.append(SceneMesh(torch.as_tensor(sc["object_vertices"], dtype=torch.float32), torch.as_tensor(sc["object_faces"]), 1))
        if sc["table"] is not None:  # the table occludes, and is background in the labels
            tv, tf, _ = sc["table"].mesh()
            meshes.append(SceneMesh(torch.as_tensor(tv, dtype=torch.float32), torch.as_tensor(tf), 3))
        labels = Renderer(antialiased=False).render(meshes, cam, silhouettes=False).labels[0, 0].numpy()
        labels = np.where(labels == 3, 0, labels)
        # the table is drawn by ray-plane intersection, the independent render rasterises its mesh
        assert np.mean(s["labels"] == labels) > 0.998
        assert {1, 2} <= set(np.unique(labels).tolist()) or sc["hand_vertices"] is None or sc["object_vertices"] is None
        uvw = sc["joints"] @ K.T
        np.testing.assert_allclose(s["keypoints"][:, :2], uvw[:, :2] / uvw[:, 2:], atol=1e-3)
        vis = s["keypoints"][:, 2] > 0
        uv = np.round(s["keypoints"][vis, :2]).astype(int)
        near_hand = [(s["labels"][max(v - 1, 0):v + 2, max(u - 1, 0):u + 2] == 2).any() for u, v in uv]
        assert all(near_hand)


def test_table_plane_lies_under_the_scene():
    """The table's normal is a unit vector pitched toward the camera; every scene point lies above
    the plane but for the allowed 1 cm of contact; the plane spans 3 m x 3 m."""
    rng = np.random.default_rng(1)
    for _ in range(20):
        pts = rng.normal([0.0, 0.0, 0.6], 0.08, (200, 3))
        plane = table_plane(rng, pts)
        verts, faces, uv = plane.mesh()
        e1, e2 = verts[faces[:, 1]] - verts[faces[:, 0]], verts[faces[:, 2]] - verts[faces[:, 0]]
        n = np.cross(e1, e2)
        n /= np.linalg.norm(n, axis=1, keepdims=True)
        assert np.allclose(np.abs(n @ plane.up), 1.0, atol=1e-9)  # flat, normal = up
        up = plane.up
        assert np.isclose(np.linalg.norm(up), 1.0) and up[1] < 0 and up[2] <= 1e-12  # up, tilted toward the camera
        height = verts[0] @ up
        assert np.all(pts @ up >= height - 0.01 - 1e-9) and np.min(pts @ up) - height <= 0.12 + 1e-9
        n_side = int(round(np.sqrt(len(verts)))) - 1  # grid corners: 0, n, (n+1)^2 - 1
        assert np.isclose(np.linalg.norm(verts[n_side] - verts[0]), 3.0) and np.isclose(np.linalg.norm(verts[-1] - verts[n_side]), 3.0)
        assert uv.min() == 0.0 and uv.max() == 1.0 and plane.texture.shape == (256, 256, 3)


@pytest.mark.parametrize("light", [None, (0.3, -0.8, -0.52)])
def test_draw_plane_matches_the_renderer(light):
    """The ray-plane drawing of a table equals the renderer's image of its mesh: same coverage,
    depth and (Lambert, textured) colour, with a headlight and with a distant light."""
    from honnotate.geometry import Camera
    from honnotate.render.renderer import Renderer, SceneMesh

    rng = np.random.default_rng(3)
    plane = table_plane(rng, rng.normal([0.05, 0.0, 0.5], 0.05, (50, 3)))
    W, H, f = 160, 120, 150.0
    K = np.array([[f, 0, 79.5], [0, f, 59.5], [0, 0, 1.0]])
    lt = None if light is None else np.asarray(light) / np.linalg.norm(light)
    rgb, depth = draw_plane(plane, K, W, H, ambient=0.3, light=lt)
    verts, faces, uv = plane.mesh(n=32)
    cam = Camera.from_intrinsics(f, f, 79.5, 59.5, W, H)
    r = Renderer(background_depth=0.0, antialiased=False, ambient=0.3).render(
        [SceneMesh(torch.as_tensor(verts, dtype=torch.float32), torch.as_tensor(faces), 3,
                   uv=torch.as_tensor(uv, dtype=torch.float32), texture=torch.as_tensor(plane.texture))],
        cam, rgb=True, light_dir=None if lt is None else torch.as_tensor(lt, dtype=torch.float32))
    hit_r = r.labels[0, 0].numpy() == 3
    hit = depth > 0
    assert hit.mean() > 0.3 and np.mean(hit == hit_r) > 0.998
    both = hit & hit_r
    np.testing.assert_allclose(depth[both], r.depth[0, 0].numpy()[both], rtol=1e-4)
    diff = np.abs(rgb[both] - r.rgb[0, 0].numpy()[both])
    assert np.median(diff) < 0.01 and np.mean(diff < 0.05) > 0.99


def test_table_has_its_own_random_stream(config):
    """Scenes with a table differ from scenes without only by the table: same hand, object,
    keypoints and (where the table does not occlude) labels; table_prob=0 gives no table."""
    plain = SyntheticComposites(dataclasses.replace(config, table_prob=0.0, augment=AugmentConfig(enabled=False)))
    table = SyntheticComposites(dataclasses.replace(config, table_prob=1.0, augment=AugmentConfig(enabled=False)))
    for index in range(3):
        a, b = plain.composite(index, return_scene=True), table.composite(index, return_scene=True)
        assert a["scene"]["table"] is None and b["scene"]["table"] is not None
        assert 3 in b["scene"]["render_labels"] and set(np.unique(b["labels"]).tolist()) <= {0, 1, 2}
        np.testing.assert_array_equal(a["keypoints"][:, :2], b["keypoints"][:, :2])
        fg = a["labels"] > 0
        assert np.mean(a["labels"][fg] == b["labels"][fg]) > 0.97
        assert not np.array_equal(a["image"][~fg], b["image"][~fg])


def test_augmented_samples_stay_consistent(config):
    """With scale/rotation augmentation, visible joints still fall on the (warped) hand mask."""
    ds = SyntheticComposites(config)
    hits = total = 0
    for index in range(4):
        s = ds.composite(index)
        assert 0.0 <= s["image"].min() and s["image"].max() <= 1.0
        assert set(np.unique(s["labels"]).tolist()) <= {0, 1, 2}
        for u, v in np.round(s["keypoints"][s["keypoints"][:, 2] > 0, :2]).astype(int):
            total += 1
            hits += bool((s["labels"][max(v - 1, 0):v + 2, max(u - 1, 0):u + 2] == 2).any())
    assert total > 0 and hits >= 0.9 * total


def test_task_samples(config):
    seg = SyntheticComposites(config, "segmentation")[0]
    assert seg["image"].shape == (3, 80, 96) and seg["image"].dtype == torch.float32
    assert seg["labels"].shape == (80, 96) and seg["labels"].dtype == torch.int64
    crop = dataclasses.replace(config.crop, size=32)
    kp_ds = SyntheticComposites(dataclasses.replace(config, crop=crop), "keypoints")
    kp = kp_ds[1]
    assert kp["image"].shape == (3, 32, 32) and kp["heatmaps"].shape == (21, 8, 8)
    assert kp["weights"].shape == (21,) and kp["keypoints"].shape == (21, 3)
    # The heatmap targets decode back to the crop keypoints (joints well inside the crop).
    dec = decode_heatmaps(kp["heatmaps"][None], 4)[0]
    inner = (kp["weights"] > 0) & (kp["keypoints"][:, :2] > 4).all(1) & (kp["keypoints"][:, :2] < 27).all(1)
    assert inner.any()
    assert torch.allclose(dec[inner, :2], kp["keypoints"][inner, :2], atol=0.3)


def test_backgrounds_and_bad_config(tmp_path):
    rng = np.random.default_rng(0)
    bg = procedural_background(rng, 64, 48)
    assert bg.shape == (48, 64, 3) and bg.dtype == np.float32 and 0 <= bg.min() and bg.max() <= 1
    with pytest.raises(ValueError, match="built-in objects"):
        CompositeConfig(objects=("teapot",))
    with pytest.raises(ValueError, match="multiples of 16"):
        CompositeConfig(width=100)
    with pytest.raises(ValueError, match="task must be"):
        SyntheticComposites(CompositeConfig(), task="depth")
    # The user's own backgrounds: a folder without images is an error naming it.
    ds = SyntheticComposites(CompositeConfig(background_dir=str(tmp_path), user_background_prob=1.0))
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        ds._background(rng)
    from honnotate.io.images import write_image

    write_image(tmp_path / "a.png", (np.ones((30, 40, 3)) * [255, 0, 0]).astype(np.uint8))
    img = SyntheticComposites(CompositeConfig(background_dir=str(tmp_path), user_background_prob=1.0, width=64, height=48))._background(rng)
    assert img.shape == (48, 64, 3) and np.allclose(img[..., 0], 1.0) and np.allclose(img[..., 1:], 0.0)


def test_crops_per_scene_share_one_render(config, monkeypatch):
    """crops_per_scene n: samples n*k .. n*k+n-1 are crops of scene k, each jittered on its own;
    crop 0 of each scene is the sample of crops_per_scene 1, and each scene is rendered once."""
    crop = dataclasses.replace(config.crop, size=32)
    one = SyntheticComposites(dataclasses.replace(config, crop=crop), "keypoints")
    two = SyntheticComposites(dataclasses.replace(config, crop=crop, crops_per_scene=2), "keypoints")
    calls = []
    render = two.composite
    monkeypatch.setattr(two, "composite", lambda i, **kw: calls.append(i) or render(i, **kw))
    for scene in range(2):
        a, b = two[2 * scene], two[2 * scene + 1]
        ref = one[scene]
        for key in ref:
            torch.testing.assert_close(a[key], ref[key], atol=0, rtol=0)
        assert not torch.equal(a["image"], b["image"])  # another box jitter / rotation / colour
        # the same hand: the two crops' joints differ by a similarity (box shift, scale, rotation)
        assert _similarity_residual(a["keypoints"][:, :2], b["keypoints"][:, :2]) < 1e-3
        assert _similarity_residual(a["keypoints"][:, :2], two[2 * (1 - scene)]["keypoints"][:, :2]) > 0.5
    assert calls == [0, 1, 0]
    with pytest.raises(ValueError, match="crops_per_scene must be >= 1"):
        CompositeConfig(crops_per_scene=0)


def _similarity_residual(p: torch.Tensor, q: torch.Tensor) -> float:
    """RMS distance (pixels) of q from the best similarity transform of p (least squares)."""
    p, q = p.double().numpy(), q.double().numpy()
    zp, zq = (p[:, 0] + 1j * p[:, 1]), (q[:, 0] + 1j * q[:, 1])  # similarity: q = a p + b
    M = np.stack([zp, np.ones_like(zp)], 1)
    coef = np.linalg.lstsq(M, zq, rcond=None)[0]
    return float(np.sqrt(np.mean(np.abs(M @ coef - zq) ** 2)))


def test_depth_samples_follow_the_scene_through_the_augmentation(config):
    """RGB-D keypoint samples: the RGB channels are those of the RGB dataset (the depth has its
    own random stream), and the sensed depth at visible joints, after the scale and rotation
    augmentation, is the joint's depth within the finger's half-thickness and the sensor noise."""
    ds = SyntheticComposites(config, "keypoints", depth=True)
    near = total = 0
    for index in range(6):
        s = ds.composite(index, return_scene=True)
        depth, kp, joints = s["depth"], s["keypoints"], s["scene"]["joints"]
        assert depth.shape == s["labels"].shape and depth.dtype == np.float32 and (depth >= 0).all()
        for j in np.flatnonzero(kp[:, 2] > 0):
            u, v = np.round(kp[j, :2]).astype(int)
            patch = depth[max(v - 1, 0):v + 2, max(u - 1, 0):u + 2]
            if (patch > 0).any():
                total += 1
                near += bool(np.min(np.abs(patch[patch > 0] - joints[j, 2])) < 0.03)
    assert total > 10 and near >= 0.85 * total
    rgb = SyntheticComposites(config, "keypoints")
    crop = dataclasses.replace(config.crop, size=32)
    a = SyntheticComposites(dataclasses.replace(config, crop=crop), "keypoints", depth=True)[2]
    b = SyntheticComposites(dataclasses.replace(config, crop=crop), "keypoints")[2]
    assert a["image"].shape == (5, 32, 32) and b["image"].shape == (3, 32, 32)
    torch.testing.assert_close(a["image"][:3], b["image"])
    torch.testing.assert_close(a["heatmaps"], b["heatmaps"])
    assert set(torch.unique(a["image"][4]).tolist()) <= {0.0, 1.0} and a["image"][4].mean() > 0.3
    assert rgb.composite(0).get("depth") is None
    seg = SyntheticComposites(config, "segmentation", depth=True)[0]  # RGB-D segmentation: full images
    assert seg["image"].shape == (5, config.height, config.width) and set(torch.unique(seg["image"][4]).tolist()) <= {0.0, 1.0}


def test_training_crops_take_the_box_floor_like_detection(config):
    """With ``crop.min_box_m`` the composites carry their (augmented) depth and focal length, and
    the keypoint crop's box is at least that many metres at the hand's depth."""
    from honnotate.perception.data import CropConfig, keypoint_crop

    cfg = dataclasses.replace(config, crop=dataclasses.replace(config.crop, min_box_m=0.3))
    ds = SyntheticComposites(cfg, "keypoints")
    near = total = 0
    for index in range(4):
        s = ds.composite(index, return_scene=True)
        depth, fx = s["floor"]
        A, K = s["affine"], s["scene"]["K"]
        assert depth.shape == s["labels"].shape
        assert fx == pytest.approx(K[0, 0] * np.sqrt(abs(np.linalg.det(A[:, :2]))))
        for j in np.flatnonzero(s["keypoints"][:, 2] > 0):  # the depth moved with the image
            u, v = np.round(s["keypoints"][j, :2]).astype(int)
            patch = depth[max(v - 1, 0):v + 2, max(u - 1, 0):u + 2]
            total += 1
            near += bool((patch > 0).any() and np.min(np.abs(patch[patch > 0] - s["scene"]["joints"][j, 2])) < 0.03)
    assert total > 10 and near >= 0.9 * total
    assert "floor" not in SyntheticComposites(config, "keypoints").composite(0)
    labels = np.zeros((80, 96), np.uint8)
    labels[30:40, 40:50] = 2  # a few fingertips
    image = np.zeros((80, 96, 3), np.float32)
    kp = np.zeros((21, 3), np.float32)
    flat = np.full((80, 96), 0.5, np.float32)
    crop = CropConfig(size=32, min_box_m=0.1)
    scale = keypoint_crop(image, labels, kp, crop, floor=(flat, 300.0))["affine"][0, 0]
    assert scale == pytest.approx(32 / (300.0 * 0.1 / 0.5 * crop.margin))  # side 60 px, not 10
    plain = keypoint_crop(image, labels, kp, crop)["affine"][0, 0]
    assert plain == pytest.approx(32 / (10 * crop.margin))


def test_paste_occluders_covers_the_joints_it_reports():
    """The covered joints are those whose pixel an occluder changed; joints far from every
    occluder keep their pixel; the input is not modified; the same stream gives the same result."""
    from honnotate.perception.data import CropConfig, paste_occluders

    S = 64
    rng = np.random.default_rng(3)
    image = rng.uniform(0.2, 0.8, (S, S, 3)).astype(np.float32)
    before = image.copy()
    kp = np.concatenate([rng.uniform(4, 60, (21, 2)), np.ones((21, 1))], 1).astype(np.float32)
    crop = CropConfig(size=S, occluder_prob=1.0)
    seen_cover = seen_free = 0
    for seed in range(30):
        out, covered = paste_occluders(image, kp, np.random.default_rng(seed), crop)
        again, covered2 = paste_occluders(image, kp, np.random.default_rng(seed), crop)
        np.testing.assert_array_equal(out, again)
        np.testing.assert_array_equal(covered, covered2)
        assert out.shape == image.shape and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
        u, v = np.round(kp[:, 0]).astype(int), np.round(kp[:, 1]).astype(int)
        changed = np.abs(out[v, u] - image[v, u]).max(1) > 1e-6
        assert not (covered & ~changed).any()  # a covered joint's pixel was painted over
        seen_cover += covered.sum()
        seen_free += (~changed).sum()
    np.testing.assert_array_equal(image, before)
    assert seen_cover > 30 and seen_free > 30  # they cover some joints, never all


def test_truncate_view_cuts_as_an_image_border():
    """truncate_view: black (image, labels 0) beyond an axis-parallel line, the kept share of the
    hand's pixels within the range, the joints beyond made invisible, the others untouched, the
    inputs unmodified; the crop of a truncated view is boxed on what is left; bad ranges refused."""
    from honnotate.perception.data import (
        CropConfig,
        check_crop_augmentation,
        keypoint_crop,
        truncate_view,
    )

    H, W = 60, 80
    image = np.random.default_rng(0).uniform(0.1, 1.0, (H, W, 3)).astype(np.float32)
    labels = np.zeros((H, W), np.uint8)
    labels[10:50, 20:60] = 2
    kp = np.concatenate([np.random.default_rng(1).uniform([20, 10], [60, 50], (21, 2)), np.ones((21, 1))], 1)
    kp = kp.astype(np.float32)
    before = (image.copy(), labels.copy(), kp.copy())
    sides = set()
    for seed in range(40):
        img, lab, k2, gone = truncate_view(image, labels, kp, np.random.default_rng(seed), (0.4, 0.6))
        assert gone.shape == (H, W) and gone.any() and not gone.all()
        assert (img[gone] == 0).all() and (lab[gone] == 0).all()
        np.testing.assert_array_equal(img[~gone], image[~gone])
        kept = (lab == 2).sum() / (labels == 2).sum()
        assert 0.35 <= kept <= 0.65
        cols, rows = gone.any(0), gone.any(1)
        sides.add((bool(cols[0]), bool(cols[-1]), bool(rows[0]), bool(rows[-1])))
        u, v = np.round(kp[:, 0]).astype(int), np.round(kp[:, 1]).astype(int)
        far = gone[np.clip(v, 0, H - 1), np.clip(u, 0, W - 1)]
        assert (k2[far, 2] == 0).all()  # joints on the cut-away side are invisible
        assert (k2[~far, 2] == kp[~far, 2]).all()  # the others untouched
        np.testing.assert_array_equal(k2[:, :2], kp[:, :2])
    assert len(sides) == 4  # every side is drawn
    for a, b in zip((image, labels, kp), before, strict=True):
        np.testing.assert_array_equal(a, b)
    # no hand pixels: nothing cut
    img, lab, k2, gone = truncate_view(image, np.zeros_like(labels), kp, np.random.default_rng(0))
    assert not gone.any() and img is image
    # the crop of a truncated view: prob 1 boxes the kept part (a smaller box than the whole hand's)
    crop = CropConfig(size=32, jitter_scale=0.0, jitter_shift=0.0, jitter_rotation=0.0, truncate_prob=1.0,
                      truncate_keep=(0.5, 0.5))
    cut = keypoint_crop(image, labels, kp, crop, np.random.default_rng(5))
    whole = keypoint_crop(image, labels, kp, dataclasses.replace(crop, truncate_prob=0.0), np.random.default_rng(5))
    from honnotate.perception.crops import apply_affine, invert_affine

    centre = lambda c: apply_affine(invert_affine(c["affine"]), np.array([[15.5, 15.5]]))[0]  # noqa: E731
    np.testing.assert_allclose(centre(whole), [39.5, 29.5], atol=0.6)  # the whole hand's box centre
    assert np.abs(centre(cut) - centre(whole)).max() > 8  # the kept half's
    assert cut["keypoints"][:, 2].sum() < whole["keypoints"][:, 2].sum()
    for bad, match in (({"truncate_prob": 1.5}, "truncate_prob"), ({"truncate_keep": (0.0, 0.5)}, "truncate_keep")):
        with pytest.raises(ValueError, match=match):
            check_crop_augmentation(CropConfig(**bad))


def test_occluded_samples_mark_the_covered_joints(config):
    """With occluder_prob 1 the covered visible joints become occluded, their heatmap peaks
    scaled to occluded_amplitude; the other joints' targets are untouched; occluder_prob 0 gives
    the samples of before (its own random stream)."""
    from honnotate.perception.data import CropConfig, occlude_sample

    crop = dataclasses.replace(config.crop, size=32)
    plain = SyntheticComposites(dataclasses.replace(config, crop=crop), "keypoints")
    zero = SyntheticComposites(dataclasses.replace(config, crop=dataclasses.replace(crop, occluder_prob=0.0)), "keypoints")
    occ_cfg = dataclasses.replace(crop, occluder_prob=1.0, occluder_size=(0.4, 0.6))
    for k in range(3):
        for key, val in plain[k].items():
            torch.testing.assert_close(zero[k][key], val, atol=0, rtol=0)
    sample = {"image": torch.rand(3, 32, 32), "heatmaps": torch.rand(21, 8, 8),
              "keypoints": torch.cat([torch.rand(21, 2) * 31, torch.ones(21, 1)], 1), "weights": torch.ones(21)}
    sample["keypoints"][:3, 2] = 0
    changed = 0
    for seed in range(10):
        out = occlude_sample(sample, np.random.default_rng(seed), occ_cfg)
        vis0, vis1 = sample["keypoints"][:, 2] > 0, out["keypoints"][:, 2] > 0
        assert not (vis1 & ~vis0).any()
        newly = vis0 & ~vis1
        changed += int(newly.sum())
        torch.testing.assert_close(out["heatmaps"][newly], sample["heatmaps"][newly] * occ_cfg.occluded_amplitude)
        torch.testing.assert_close(out["heatmaps"][~newly], sample["heatmaps"][~newly], atol=0, rtol=0)
        torch.testing.assert_close(out["keypoints"][:, :2], sample["keypoints"][:, :2], atol=0, rtol=0)
    assert changed > 0
    rgbd = {**sample, "image": torch.rand(5, 32, 32)}
    assert occlude_sample(rgbd, np.random.default_rng(0), occ_cfg) is rgbd  # no depth to draw an occluder in
    with pytest.raises(ValueError, match="occluder_prob"):
        CompositeConfig(crop=CropConfig(occluder_prob=1.5))
    with pytest.raises(ValueError, match="occluder_size"):
        CompositeConfig(crop=CropConfig(occluder_size=(0.5, 0.2)))
    with pytest.raises(ValueError, match="occluder_count"):
        CompositeConfig(crop=CropConfig(occluder_count=0))


def test_upright_crops_turn_the_hand_up():
    """CropConfig.upright: the wrist-to-finger-bases line points up in the crop (exactly without
    jitter, within upright_jitter with it, spread over that range), the heatmap targets at the
    turned joints; image-aligned crops are unchanged; a bad jitter is refused."""
    from honnotate.perception.crops import hand_axis_angle
    from honnotate.perception.data import CropConfig, check_crop_augmentation, keypoint_crop

    rng = np.random.default_rng(3)
    image = rng.uniform(0.1, 1.0, (80, 100, 3)).astype(np.float32)
    labels = np.zeros((80, 100), np.uint8)
    labels[15:65, 25:75] = 2
    up = CropConfig(size=32, upright=True, upright_jitter=0.3)
    tilts = []
    for seed in range(30):
        kp = np.concatenate([np.random.default_rng(seed).uniform([25, 15], [75, 65], (21, 2)), np.ones((21, 1))], 1)
        exact = keypoint_crop(image, labels, kp, up, None)
        d = exact["keypoints"][[1, 4, 7, 10], :2].mean(0) - exact["keypoints"][0, :2]
        assert d[0] == pytest.approx(0.0, abs=1e-4) and d[1] < 0  # straight up (float32 crop pixels)
        assert exact["affine"][0, 0] == pytest.approx(np.cos(hand_axis_angle(kp)) * 32 / (50 * up.margin))
        c = keypoint_crop(image, labels, kp, up, np.random.default_rng(seed))
        d = c["keypoints"][[1, 4, 7, 10], :2].mean(0) - c["keypoints"][0, :2]
        tilts.append(np.arctan2(d[0], -d[1]))
        cells = np.unravel_index(c["heatmaps"].reshape(21, -1).argmax(1), (8, 8))
        inside = c["weights"] > 0
        np.testing.assert_allclose(np.stack(cells[::-1], 1)[inside] * 4 + 1.5, c["keypoints"][inside, :2], atol=2.9)
    tilts = np.abs(np.asarray(tilts))
    assert tilts.max() <= 0.3 + 1e-6 and tilts.max() > 0.15
    plain = keypoint_crop(image, labels, kp, CropConfig(size=32), None)
    assert plain["affine"][0, 1] == 0.0  # image-aligned
    with pytest.raises(ValueError, match="upright_jitter"):
        check_crop_augmentation(CropConfig(upright_jitter=-0.1))
