"""Crop geometry and heatmap decoding (pure functions, no rendering)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from honnotate.perception.crops import (
    DEPTH_CLIP,
    DEPTH_UNIT,
    IMAGE_DEPTH_CLIP,
    IMAGE_DEPTH_REF,
    IMAGE_DEPTH_UNIT,
    apply_affine,
    crop_transform,
    decode_heatmaps,
    depth_channels,
    floor_box_side,
    fuse_heatmaps,
    hand_axis_angle,
    hand_box_candidates,
    hand_box_from_mask,
    heatmap_targets,
    image_depth_channels,
    invert_affine,
    resize_crop_map,
    warp_image,
)


@pytest.mark.parametrize("batch", [1, 2, 5])
def test_decode_recovers_subpixel_points(batch):
    """Gaussian heatmaps drawn at known sub-pixel crop points decode to them (< 0.05 px)."""
    rng = np.random.default_rng(batch)
    size, stride = 64, 4
    pts = rng.uniform(6, size - 7, (batch, 21, 2))
    amp = rng.uniform(0.3, 1.0, (batch, 21))
    hm = np.stack([heatmap_targets(p, a, size, stride, sigma=1.3) for p, a in zip(pts, amp, strict=True)])
    assert hm.shape == (batch, 21, 16, 16) and hm.dtype == np.float32
    out = decode_heatmaps(torch.from_numpy(hm), stride)
    assert out.shape == (batch, 21, 3)
    np.testing.assert_allclose(out[..., :2].numpy(), pts, atol=0.05)
    # Confidence = heatmap peak <= the Gaussian's amplitude, close to it.
    assert np.all(out[..., 2].numpy() <= amp + 1e-6) and np.all(out[..., 2].numpy() > 0.6 * amp)


@pytest.mark.parametrize("smooth", [1.0, 2.4])
def test_decode_smoothed_recovers_subpixel_points(smooth):
    """DARK decoding (``smooth`` > 0) recovers Gaussian peaks' sub-pixel places: the smoothed map
    is still a Gaussian about the same point, and the Newton step on its log is exact."""
    rng = np.random.default_rng(7)
    size, stride = 128, 2
    pts = rng.uniform(14, size - 15, (3, 21, 2))
    hm = np.stack([heatmap_targets(p, np.ones(21), size, stride, sigma=2.4) for p in pts])
    out = decode_heatmaps(torch.from_numpy(hm), stride, smooth=smooth)
    np.testing.assert_allclose(out[..., :2].numpy(), pts, atol=0.05)
    np.testing.assert_allclose(out[..., 2].numpy(), hm.reshape(3, 21, -1).max(-1))  # raw peak, unsmoothed


def test_decode_smoothed_rotated_peak_and_bad_smooth():
    """An elongated Gaussian at 45 degrees (correlated axes): the full-Hessian Newton step finds its
    centre, which the per-axis parabolas miss; a negative smoothing is refused."""
    h = w = 32
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    cx, cy = 15.3, 16.6
    a, b = ((xx - cx) + (yy - cy)) / np.sqrt(2), ((xx - cx) - (yy - cy)) / np.sqrt(2)
    hm = torch.from_numpy(np.exp(-0.5 * (a**2 / 4.0**2 + b**2 / 1.0**2))[None, None].astype(np.float32))
    got = decode_heatmaps(hm, 1.0, smooth=1.0)[0, 0, :2].numpy()  # stride 1: cell = pixel
    np.testing.assert_allclose(got, [cx, cy], atol=0.05)
    per_axis = decode_heatmaps(hm, 1.0)[0, 0, :2].numpy()
    assert np.abs(per_axis - [cx, cy]).max() > 0.1
    with pytest.raises(ValueError, match="smooth"):
        decode_heatmaps(hm, 1.0, smooth=-1.0)


def test_decode_integer_point_and_golden_cell_centre():
    """A peak exactly on cell (i, j) decodes to crop pixel (4 j + 1.5, 4 i + 1.5)."""
    hm = torch.zeros(1, 1, 8, 8)
    hm[0, 0, 2, 5] = 1.0
    u, v, c = decode_heatmaps(hm, 4)[0, 0].tolist()
    assert (u, v, c) == pytest.approx((5 * 4 + 1.5, 2 * 4 + 1.5, 1.0))


def test_decode_bad_shape():
    with pytest.raises(ValueError, match=r"\(B, J, h, w\)"):
        decode_heatmaps(torch.zeros(21, 8, 8), 4)


def test_crop_transform_maps_box_to_crop_and_inverts():
    A = crop_transform(100.0, 50.0, 40.0, 128, angle=0.3)
    centre = apply_affine(A, np.array([100.0, 50.0]))
    np.testing.assert_allclose(centre, [63.5, 63.5], atol=1e-9)
    pts = np.random.default_rng(0).uniform(0, 200, (10, 2))
    np.testing.assert_allclose(apply_affine(invert_affine(A), apply_affine(A, pts)), pts, atol=1e-9)
    # Scale: a 40 px box side becomes 128 px.
    d = apply_affine(A, np.array([[80.0, 50.0], [120.0, 50.0]]))
    assert np.linalg.norm(d[1] - d[0]) == pytest.approx(128.0)
    with pytest.raises(ValueError, match="positive"):
        crop_transform(0, 0, 0, 128)


def test_warp_image_agrees_with_apply_affine():
    """A single bright pixel lands where apply_affine maps its centre (pixel-centre convention)."""
    img = np.zeros((60, 80), np.float32)
    img[20, 30] = 1.0
    A = crop_transform(30.0, 20.0, 16.0, 32)
    out = warp_image(img, A, (32, 32), border="constant")
    v, u = np.unravel_index(np.argmax(out), out.shape)
    target = apply_affine(A, np.array([30.0, 20.0]))
    assert abs(u - target[0]) <= 1 and abs(v - target[1]) <= 1


def test_hand_box_from_mask():
    mask = np.zeros((100, 120), bool)
    mask[10:30, 40:80] = True  # 20 x 40
    mask[90:92, 0:2] = True  # tiny speck far away: ignored
    cu, cv, side = hand_box_from_mask(mask)
    assert (cu, cv, side) == pytest.approx((59.5, 19.5, 40.0))
    assert hand_box_from_mask(np.zeros((10, 10), bool)) is None
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        hand_box_from_mask(np.zeros((2, 10, 10), bool))


def test_hand_box_keeps_fingers_beyond_an_occluder_and_drops_far_blobs():
    mask = np.zeros((200, 400), bool)
    mask[80:120, 100:140] = True  # palm, 40 x 40
    mask[90:100, 190:210] = True  # fingertips past an occluding can: 50 px from the palm (1.25 sides)
    cu, cv, side = hand_box_from_mask(mask)
    assert (cu, cv, side) == pytest.approx((154.5, 99.5, 110.0))
    # the old rule (half a side) lost them
    assert hand_box_from_mask(mask, reach=0.5) == pytest.approx((119.5, 99.5, 40.0))
    mask[0:10, 380:400] = True  # a false hand blob 170 px away (> 2 sides): not the same hand
    assert hand_box_from_mask(mask) == pytest.approx((cu, cv, side))


def test_hand_box_candidates_offer_each_large_region_alone_and_with_its_neighbours():
    mask = np.zeros((300, 400), bool)
    mask[100:160, 0:120] = True  # a skin-coloured table edge taken for hand: the largest region, 120 x 60
    mask[110:150, 150:190] = True  # the hand, 40 x 40, within reach of the table
    mask[120:130, 200:210] = True  # fingertips past an occluder, 10 x 10
    first = hand_box_from_mask(mask)
    cands = hand_box_candidates(mask)
    assert cands[0] == pytest.approx(first)  # the default box comes first
    assert (169.5, 129.5, 40.0) in cands  # the hand alone
    assert (179.5, 129.5, 60.0) in cands  # the hand and its fingertips (the table 31 px away: within 2 sides)
    assert (59.5, 129.5, 120.0) in cands  # the table alone
    assert len(cands) == len(set(cands))
    # the fingertips' region is under min_fraction of the largest: never a seed
    assert all(c[2] != 10.0 for c in cands)
    # one region: one candidate, the default box; none: none
    single = np.zeros((50, 50), bool)
    single[10:20, 10:30] = True
    assert hand_box_candidates(single) == [hand_box_from_mask(single)]
    assert hand_box_candidates(np.zeros((10, 10), bool)) == []
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        hand_box_candidates(np.zeros((2, 10, 10), bool))


def _crop_heatmaps(points_img, maps, size=128, stride=4, sigma=1.5):
    return torch.from_numpy(np.stack([heatmap_targets(apply_affine(A, points_img), np.ones(len(points_img)), size,
                                                      stride, sigma) for A in maps]))


def test_fuse_one_crop_decodes_like_its_own_heatmaps():
    """Resampling a crop's heatmaps onto its own 2x finer grid keeps the decoded points (reference twin)."""
    rng = np.random.default_rng(0)
    A = crop_transform(300.0, 200.0, 180.0, 128)
    pts = rng.uniform(230, 270, (21, 2)) + [50, -50]
    hm = _crop_heatmaps(pts, [A])
    direct = apply_affine(invert_affine(A), decode_heatmaps(hm, 4)[0, :, :2].numpy())
    fused = fuse_heatmaps(hm, [A], A, 4, up=2)
    assert fused.shape == (21, 64, 64)
    again = apply_affine(invert_affine(A), decode_heatmaps(fused[None], 2.0)[0, :, :2].numpy())
    np.testing.assert_allclose(again, pts, atol=0.35)
    np.testing.assert_allclose(again, direct, atol=0.35)


def test_fuse_scaled_and_rotated_crops_agree_on_the_image_points():
    """Crops at other scales and rotations, each with its own Gaussians of the same image points,
    fuse into heatmaps of the base crop whose peaks are those points; a crop whose peaks are
    elsewhere (a wrong finger in one view) is outvoted."""
    rng = np.random.default_rng(1)
    pts = rng.uniform(240, 360, (21, 2))
    maps = [crop_transform(300.0, 300.0, 200.0 * s, 128, angle=np.deg2rad(a)) for s, a in
            ((1.0, 0.0), (0.87, 0.0), (1.15, 20.0))]
    hm = _crop_heatmaps(pts, maps)
    fused = fuse_heatmaps(hm, maps, maps[0], 4, up=2)
    out = decode_heatmaps(fused[None], 2.0)[0].numpy()
    # bilinear resampling of the sampled Gaussians: < 0.2 heatmap cells (6.25 image px a cell here)
    np.testing.assert_allclose(apply_affine(invert_affine(maps[0]), out[:, :2]), pts, atol=1.2)
    assert np.all(out[:, 2] > 0.8)  # three peaks on the same spot
    wrong = hm.clone()
    wrong[2] = _crop_heatmaps(pts + [40.0, 0.0], maps[2:])[0]
    out = decode_heatmaps(fuse_heatmaps(wrong, maps, maps[0], 4)[None], 2.0)[0].numpy()
    np.testing.assert_allclose(apply_affine(invert_affine(maps[0]), out[:, :2]), pts, atol=1.2)
    assert np.all(out[:, 2] < 0.7)  # the disagreement lowers the confidence
    with pytest.raises(ValueError, match="K = 2 crops"):
        fuse_heatmaps(hm, maps[:2], maps[0], 4)


def test_resize_crop_map_is_the_crop_of_the_same_square_at_another_size():
    for angle in (0.0, 0.4):
        A = crop_transform(310.0, 190.0, 170.0, 128, angle=angle)
        np.testing.assert_allclose(resize_crop_map(A, 128, 192), crop_transform(310.0, 190.0, 170.0, 192, angle=angle),
                                   atol=1e-9)


def test_fuse_crops_of_another_size_onto_a_base_grid():
    """Heatmaps of 192-pixel crops of the same squares resampled onto the 2x finer grid of the
    128-pixel base crop (``cell``, ``cells``) decode to the image points, as the base's own do."""
    rng = np.random.default_rng(2)
    pts = rng.uniform(250, 350, (21, 2))
    maps = [crop_transform(300.0, 300.0, 200.0, 128, angle=np.deg2rad(a)) for a in (0.0, 20.0)]
    big = [resize_crop_map(A, 128, 192) for A in maps]
    hm = _crop_heatmaps(pts, big, size=192)
    assert hm.shape[-1] == 48
    fused = fuse_heatmaps(hm, big, maps[0], 4, cell=2.0, cells=64)
    assert fused.shape == (21, 64, 64)
    out = decode_heatmaps(fused[None], 2.0)[0].numpy()
    np.testing.assert_allclose(apply_affine(invert_affine(maps[0]), out[:, :2]), pts, atol=1.0)
    same = fuse_heatmaps(_crop_heatmaps(pts, maps), maps, maps[0], 4, up=2)
    np.testing.assert_allclose(decode_heatmaps(same[None], 2.0)[0, :, :2].numpy(), out[:, :2], atol=1.0)


def test_depth_channels_follow_their_definition():
    """Relative depth in 5 cm units about the median of the central half, clipped, 0 and
    invalid where nothing was measured; the reference falls back to the whole crop."""
    rng = np.random.default_rng(3)
    d = rng.uniform(0.5, 0.7, (16, 16)).astype(np.float32)
    d[0, 0], d[15, 15], d[5, 9] = 0.0, 3.0, 0.0  # holes, and a far wall beyond the clip
    out = depth_channels(d)
    assert out.shape == (16, 16, 2) and out.dtype == np.float32
    centre = d[4:12, 4:12]
    ref = np.median(centre[centre > 0])
    valid = d > 0
    want = np.clip((d - ref) / DEPTH_UNIT, -DEPTH_CLIP, DEPTH_CLIP)
    np.testing.assert_allclose(out[..., 0][valid], want[valid], rtol=1e-5, atol=1e-5)
    assert out[15, 15, 0] == DEPTH_CLIP and out[0, 0, 0] == 0 and out[5, 9, 0] == 0
    np.testing.assert_array_equal(out[..., 1], valid.astype(np.float32))
    # no measurement in the central half: the whole crop's median
    d2 = d.copy()
    d2[4:12, 4:12] = 0
    ref2 = np.median(d2[d2 > 0])
    np.testing.assert_allclose(depth_channels(d2)[0, 1, 0], np.clip((d2[0, 1] - ref2) / DEPTH_UNIT, -3, 3), rtol=1e-5)
    assert not depth_channels(np.zeros((8, 8))).any()
    with pytest.raises(ValueError, match="must be"):
        depth_channels(np.zeros((8, 6)))


def test_image_depth_channels_follow_their_definition():
    """Absolute depth about 0.6 m in 0.2 m units, clipped to 0-1.6 m, 0 and invalid where
    nothing was measured."""
    d = np.array([[0.6, 0.8, 0.0], [0.1, 2.5, np.nan]], np.float32)
    out = image_depth_channels(d)
    assert out.shape == (2, 3, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[..., 0], [[0.0, 1.0, 0.0], [-2.5, 5.0, 0.0]], atol=1e-6)
    np.testing.assert_array_equal(out[..., 1], [[1, 1, 0], [1, 1, 0]])
    assert (IMAGE_DEPTH_REF, IMAGE_DEPTH_UNIT, IMAGE_DEPTH_CLIP) == (0.6, 0.2, (-3.0, 5.0))
    with pytest.raises(ValueError, match="must be"):
        image_depth_channels(np.zeros((2, 2, 2)))


def test_floor_box_side_widens_small_boxes_to_the_hands_metric_size():
    mask = np.zeros((100, 120), bool)
    mask[40:50, 50:60] = True  # a few fingertips, 10 px
    depth = np.zeros((100, 120), np.float32)
    depth[mask] = 0.5
    depth[45, 55] = np.nan  # invalid measurements are ignored
    depth[0:5, 0:5] = 9.0  # depth far from the box: not the hand's
    box = (54.5, 44.5, 10.0)
    cu, cv, side = floor_box_side(box, mask, depth, 600.0, 0.114)
    assert (cu, cv) == box[:2] and side == pytest.approx(600.0 * 0.114 / 0.5)  # 136.8 px
    assert floor_box_side((54.5, 44.5, 200.0), mask, depth, 600.0, 0.114)[2] == 200.0  # large boxes unchanged
    assert floor_box_side(box, mask, depth, 600.0, 0.0) == box  # off
    assert floor_box_side(box, mask, np.zeros_like(depth), 600.0, 0.114) == box  # no depth on the hand
    few = np.zeros_like(mask)
    few[40:44, 50:54] = True  # 16 pixels < min_pixels
    assert floor_box_side(box, few, depth, 600.0, 0.114) == box


def test_wrist_cut_ends_a_mask_running_into_the_forearm():
    """A hand along +u with its wrist at u = 100 (knuckle at u = 60: axis 40 px): the pixels past
    u = 100 - 0.05 * 40 = 98 become background when many lie past the gate, u > 106."""
    from honnotate.perception.crops import wrist_cut

    labels = np.zeros((60, 200), np.uint8)
    labels[20:40, 40:100] = 2  # the hand
    labels[5:10, 10:30] = 1  # an object, never touched
    kp = np.zeros((21, 3), np.float32)
    kp[:, 2] = 0.5
    kp[0, :2], kp[4, :2] = (100, 30), (60, 30)
    # a hand mask that ends at the wrist is left whole (the same array back)
    assert wrist_cut(labels, kp) is labels
    arm = labels.copy()
    arm[22:38, 100:180] = 2  # the forearm taken for hand
    cut = wrist_cut(arm, kp)
    u = np.nonzero(cut == 2)[1]
    assert u.max() == 98 and u.min() == 40
    np.testing.assert_array_equal(cut[:20], arm[:20])  # object and background unchanged
    assert np.count_nonzero(cut == 2) == 20 * 59
    # no cut without a direction: low confidence, or a hand seen along its axis
    low = kp.copy()
    low[4, 2] = 0.05
    assert wrist_cut(arm, low) is arm
    short = kp.copy()
    short[4, :2] = (95, 30)
    assert wrist_cut(arm, short) is arm
    # without the gate even the whole hand's wrist end goes: offset 0.5 axis lengths toward the elbow
    u = np.nonzero(wrist_cut(labels, kp, offset=-0.5, gate=None) == 2)[1]
    assert u.max() == 80


def test_far_from_object_returns_the_hand_pixels_beyond_the_distance():
    from honnotate.perception.crops import far_from_object

    H, W, fx = 60, 80, 100.0
    depth = np.full((H, W), 0.5)
    obj = np.zeros((H, W), bool)
    obj[20:40, 10:20] = True  # columns 10-19
    hand = np.zeros((H, W), bool)
    hand[20:40, 20:60] = True  # touching the object, running 40 px (20 cm at 0.5 m, fx 100) away
    far = far_from_object(hand, obj, depth, fx, 0.10)
    # the distance of column u to the object's nearest column 19, in metres: (u - 19) * 0.5 / 100
    cols = np.arange(W)
    expect = hand & ((cols - 19) * 0.5 / fx > 0.10)[None, :]
    assert np.array_equal(far, expect) and far.sum() == 20 * 20  # columns 40-59
    # the depth counts: the hand's far half 30 cm behind the object is far even at 10 px
    deeper = depth.copy()
    deeper[:, 40:] = 0.8
    assert far_from_object(hand, obj, deeper, fx, 0.25)[:, 40:][hand[:, 40:]].all()
    # a hand that does not touch the object (reaching for it) keeps its mask
    apart = np.zeros((H, W), bool)
    apart[20:40, 40:60] = True
    assert not far_from_object(apart, obj, depth, fx, 0.05).any()
    # no depth on the object: nothing to measure from
    assert not far_from_object(hand, obj, np.where(obj, 0.0, depth), fx, 0.10).any()
    with pytest.raises(ValueError, match="must match"):
        far_from_object(hand[:10], obj, depth, fx, 0.10)


def test_bone_targets_follow_their_definition():
    """Bone maps: a Gaussian of the distance (cells) from each cell centre to the segment between
    the bone's joints (brute force over the cells); amplitude 1 with both joints visible, the
    occluded amplitude otherwise; weight 0 (and an empty map) with a joint outside the crop."""
    from honnotate.perception.crops import bone_targets, pixels_to_cells

    rng = np.random.default_rng(3)
    pts = torch.as_tensor(rng.uniform(0, 64, (2, 4, 2)), dtype=torch.float32)
    vis = torch.tensor([[1, 1, 0, 1], [1, 1, 1, 1]])
    inside = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    bones = ((0, 1), (1, 2), (2, 3))
    maps, w = bone_targets(pts, vis, inside, bones, 16, 4, 1.5, occluded_amplitude=0.4)
    assert maps.shape == (2, 3, 16, 16) and w.tolist() == [[1, 1, 1], [1, 1, 0]]
    cells = pixels_to_cells(pts.double().numpy(), 4)
    for n in range(2):
        for k, (a, b) in enumerate(bones):
            amp = 1.0 if vis[n, a] and vis[n, b] else 0.4
            p, q = cells[n, a], cells[n, b]
            for i in range(16):
                for j in range(16):
                    c = np.array([j, i], float)  # column, row
                    t = np.clip(np.dot(c - p, q - p) / np.dot(q - p, q - p), 0, 1)
                    d2 = np.sum((c - p - t * (q - p)) ** 2)
                    want = amp * np.exp(-0.5 * d2 / 1.5 ** 2) * float(w[n, k])
                    assert abs(float(maps[n, k, i, j]) - want) < 1e-5
    assert float(maps[0, 1].max()) <= 0.4 + 1e-6 and float(maps[0, 0].max()) > 0.9


def test_hand_axis_angle_turns_the_hand_up():
    """The crop angle puts the mean of the four finger bases straight above the wrist; a hand
    pointing up already needs 0, one pointing right a quarter turn; degenerate hands give 0;
    bad shapes are refused."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        kp = rng.uniform(0, 600, (21, 3))
        A = crop_transform(300.0, 200.0, 150.0, 128, angle=hand_axis_angle(kp))
        uv = apply_affine(A, kp[:, :2])
        d = uv[[1, 4, 7, 10]].mean(0) - uv[0]
        assert d[0] == pytest.approx(0.0, abs=1e-6) and d[1] < 0
    kp = np.zeros((21, 2))
    assert hand_axis_angle(kp) == 0.0
    kp[[1, 4, 7, 10]] = [0.0, -10.0]  # fingers up (v down in images)
    assert hand_axis_angle(kp) == pytest.approx(0.0, abs=1e-12)
    kp[[1, 4, 7, 10]] = [10.0, 0.0]  # fingers to the right
    assert abs(hand_axis_angle(kp)) == pytest.approx(np.pi / 2)
    with pytest.raises(ValueError, match="21"):
        hand_axis_angle(np.zeros((20, 2)))
