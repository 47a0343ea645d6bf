"""Energy terms of honnotate.annotate: golden values, shapes, gradients (float64), bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from honnotate.annotate.correspondence import (
    ObjectSurfaceQuery,
    SurfaceCorrespondences,
    barycentric_coordinates,
    pad_clouds,
    point_to_surface_energy,
    segmented_point_clouds,
)
from honnotate.annotate.robust import ROBUST_KINDS, irls_weight_sq, robust, robust_sq
from honnotate.annotate.terms import (
    acceleration_energy,
    depth_energy,
    gaussian_pyramid,
    interpenetration_energy,
    joint_limit_energy,
    keypoints2d_energy,
    mask_energy,
    mask_targets,
    occlusion_energy,
    project_to_cameras,
    temporal_energy,
    velocity_energy,
)
from honnotate.annotate.weights import (
    MULTI_CAMERA_WEIGHTS,
    REFINEMENT_WEIGHTS,
    TermSettings,
    TermWeights,
    total_energy,
)
from honnotate.models.mano import mano_data_from_dict, random_mano_dict

D = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _cube():
    v = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64) * 0.05
    f = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                  [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
    return v, f


class TestRobust:
    def test_golden(self):
        r = torch.tensor([0.0, 0.01, 1.0], dtype=D)
        torch.testing.assert_close(robust(r, "l2"), r * r)
        torch.testing.assert_close(robust(r, "truncated_l1", 0.5), torch.tensor([0.0, 0.01, 0.5], dtype=D))
        # Tukey: c^2/3 (1 - (1 - s/c^2)^3), constant c^2/3 beyond c
        c = 0.02
        s = 0.01 ** 2 / c ** 2
        torch.testing.assert_close(robust(r, "tukey", c), torch.tensor([0.0, c * c / 3 * (1 - (1 - s) ** 3), c * c / 3], dtype=D))
        torch.testing.assert_close(robust(r, "geman_mcclure", 1.0), torch.tensor([0.0, 1e-4 / (1 + 1e-4), 0.5], dtype=D))
        torch.testing.assert_close(robust(r, "huber", 0.1), torch.tensor([0.0, 1e-4, 2 * 0.1 * 1.0 - 0.01], dtype=D))

    @pytest.mark.parametrize("kind", ROBUST_KINDS)
    def test_finite_gradient_at_zero_and_fd(self, kind):
        r = torch.tensor([0.0, 1e-7, -0.003, 0.02, 0.7], dtype=D, requires_grad=True)
        robust(r, kind, 0.05).sum().backward()
        assert torch.isfinite(r.grad).all()
        x = torch.tensor([-0.003, 0.021, 0.3, 0.04], dtype=D, requires_grad=True)
        assert gradcheck(lambda y: robust(y, kind, 0.05), (x,))

    def test_irls_weight_is_derivative(self):
        s = torch.tensor([1e-4, 0.5, 3.0], dtype=D, requires_grad=True)
        for kind in ("l2", "tukey", "geman_mcclure", "huber"):
            (g,) = torch.autograd.grad(robust_sq(s, kind, 1.2).sum(), s)
            torch.testing.assert_close(irls_weight_sq(s, kind, 1.2), g)

    def test_bad_kind(self):
        with pytest.raises(ValueError, match="kind"):
            robust(torch.zeros(2), "cauchy")
        with pytest.raises(ValueError, match="scale"):
            robust(torch.zeros(2), "tukey", 0.0)


class TestPyramid:
    @pytest.mark.parametrize("B", [1, 2, 5])
    def test_shapes_and_constant(self, B):
        x = torch.full((B, 3, 9, 12), 0.7, dtype=D)
        pyr = gaussian_pyramid(x, 2)
        assert [tuple(p.shape) for p in pyr] == [(B, 3, 9, 12), (B, 3, 5, 6), (B, 3, 3, 3)]
        # weight-normalised pyramid of a constant image stays constant, even at the borders
        for p in gaussian_pyramid(x, 2, torch.ones_like(x)):
            torch.testing.assert_close(p, torch.full_like(p, 0.7))

    def test_ignored_pixels_do_not_leak(self):
        x = torch.ones(1, 8, 8, dtype=D)
        x[:, :, 4:] = 100.0  # garbage in the ignored half
        w = torch.ones(1, 8, 8, dtype=D)
        w[:, :, 4:] = 0
        lvl1 = gaussian_pyramid(x, 1, w)[1]
        torch.testing.assert_close(lvl1[:, :, :2], torch.ones(1, 4, 2, dtype=D))

    def test_bad(self):
        with pytest.raises(ValueError, match="levels"):
            gaussian_pyramid(torch.zeros(4, 4), -1)
        with pytest.raises(ValueError, match=r"\(\.\.\., H, W\)"):
            gaussian_pyramid(torch.zeros(4), 1)


def _silhouettes(B, C, H, W, seed=0):
    g = _gen(seed)
    logits = torch.randn(B, C, 3, H, W, generator=g, dtype=D)
    return torch.softmax(logits, dim=2)


class TestMask:
    def test_golden_full_resolution(self):
        sil = torch.zeros(1, 1, 3, 2, 2, dtype=D)
        sil[0, 0, 0] = 1.0
        sil[0, 0, 2, 0, 0], sil[0, 0, 0, 0, 0] = 1.0, 0.0  # hand rendered at (0, 0)
        seg = torch.tensor([[[[2, 1], [0, 0]]]])  # hand at (0, 0), object at (0, 1)
        # only the object pixel differs: (0 - 1)^2 over 4 pixels
        torch.testing.assert_close(mask_energy(sil, seg, pyramid_levels=0), torch.tensor([[0.25]], dtype=D))
        valid = torch.tensor([[[[1, 0], [1, 1]]]])
        torch.testing.assert_close(mask_energy(sil, seg, valid, pyramid_levels=0), torch.zeros(1, 1, dtype=D))

    @pytest.mark.parametrize("B", [1, 2, 5])
    def test_zero_on_match_and_shapes(self, B):
        seg = torch.randint(0, 3, (B, 2, 8, 10), generator=_gen(1))
        sil = torch.nn.functional.one_hot(seg, 3).permute(0, 1, 4, 2, 3).to(D)
        e = mask_energy(sil, seg)
        assert e.shape == (B, 2)
        torch.testing.assert_close(e, torch.zeros(B, 2, dtype=D))
        assert (mask_energy(_silhouettes(B, 2, 8, 10), seg) > 0).all()

    @pytest.mark.parametrize("levels", [1, 3])
    def test_matches_the_weighted_pyramid_definition(self, levels):
        # reference twin: the normalised-convolution pyramids of rendered and target silhouettes
        # (gaussian_pyramid with the valid mask as weights), compared level by level
        seg = torch.randint(0, 3, (2, 3, 13, 17), generator=_gen(4))
        valid = torch.rand(2, 3, 13, 17, generator=_gen(5)) > 0.3
        sil = _silhouettes(2, 3, 13, 17)
        rendered = sil[:, :, [1, 2]]
        target = torch.stack([(seg == k) for k in (1, 2)], 2).to(D)
        w = valid.to(D)
        w5 = w[:, :, None].expand_as(rendered)
        ref = torch.zeros(2, 3, dtype=D)
        for r, t, wl in zip(gaussian_pyramid(rendered, levels, w5), gaussian_pyramid(target, levels, w5),
                            gaussian_pyramid(w, levels), strict=True):
            ref += (wl[:, :, None] * (r - t) ** 2).sum((2, 3, 4)) / wl.sum((2, 3))
        torch.testing.assert_close(mask_energy(sil, seg, valid, pyramid_levels=levels), ref, rtol=1e-12, atol=1e-15)
        # the cue side computed once (an optimisation loop) gives the same energy
        tg = mask_targets(seg, valid, (1, 2), levels, D)
        torch.testing.assert_close(mask_energy(sil, seg, valid, pyramid_levels=levels, targets=tg), ref,
                                   rtol=1e-12, atol=1e-15)
        with pytest.raises(ValueError, match="targets"):
            mask_energy(sil, seg, valid, pyramid_levels=levels + 1, targets=tg)

    def test_gradient(self):
        seg = torch.randint(0, 3, (2, 1, 6, 7), generator=_gen(2))
        valid = torch.rand(2, 1, 6, 7, generator=_gen(3)) > 0.2
        sil = _silhouettes(2, 1, 6, 7).requires_grad_()
        assert gradcheck(lambda s: mask_energy(s, seg, valid, pyramid_levels=2), (sil,))

    def test_bad(self):
        with pytest.raises(ValueError, match=r"\(B, C, L\+1, H, W\)"):
            mask_energy(torch.zeros(1, 3, 4, 4), torch.zeros(1, 1, 4, 4))
        with pytest.raises(ValueError, match="segmentation"):
            mask_energy(torch.zeros(1, 1, 3, 4, 4), torch.zeros(1, 1, 4, 5))
        with pytest.raises(ValueError, match="labels"):
            mask_energy(torch.zeros(1, 1, 3, 4, 4), torch.zeros(1, 1, 4, 4), labels=(3,))


class TestDepth:
    def test_golden(self):
        rend = torch.tensor([[[[0.50, 0.60], [2.0, 0.40]]]], dtype=D)
        obs = torch.tensor([[[[0.51, 0.0], [0.55, 0.90]]]], dtype=D)  # 0: no data, 0.9 > 0.75: ignored
        # truncated L1: |0.5-0.51| + min(|2.0-0.55|, 0.5) over 4 pixels
        e = depth_energy(rend, obs, kind="truncated_l1", threshold=0.5)
        torch.testing.assert_close(e, torch.tensor([[(0.01 + 0.5) / 4]], dtype=D))
        c = 0.02
        e = depth_energy(rend, obs, kind="tukey", threshold=c)
        s = (0.01 / c) ** 2
        torch.testing.assert_close(e, torch.tensor([[(c * c / 3 * (1 - (1 - s) ** 3) + c * c / 3) / 4]], dtype=D))
        region = torch.tensor([[[[1, 1], [0, 1]]]])
        torch.testing.assert_close(depth_energy(rend, obs, region, kind="truncated_l1", threshold=0.5),
                                   torch.tensor([[0.01 / 4]], dtype=D))

    @pytest.mark.parametrize("B", [1, 2, 5])
    def test_shapes(self, B):
        d = torch.full((B, 3, 5, 6), 0.5, dtype=D)
        assert depth_energy(d, d, pyramid_levels=2).shape == (B, 3)

    @pytest.mark.parametrize("kind", ["tukey", "truncated_l1"])
    def test_gradient(self, kind):
        g = _gen(4)
        obs = 0.5 + 0.05 * torch.rand(2, 2, 6, 5, generator=g, dtype=D)
        obs[0, 0, 0, 0] = 0.0
        rend = (obs + 0.03 * torch.randn(2, 2, 6, 5, generator=g, dtype=D)).requires_grad_()
        region = torch.rand(2, 2, 6, 5, generator=g) > 0.3
        assert gradcheck(lambda r: depth_energy(r, obs, region, kind=kind, threshold=0.04, pyramid_levels=1), (rend,))

    def test_bad(self):
        with pytest.raises(ValueError, match="observed_depth"):
            depth_energy(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 3))


class TestOcclusion:
    def test_golden(self):
        # pixel values: object rendered 2 cm in front of the seen hand (penalised beyond the 1 cm
        # margin), 5 cm behind it (free), no observed depth, outside the region
        rend = torch.tensor([[[[0.48, 0.55], [0.40, 0.30]]]], dtype=D)
        obs = torch.tensor([[[[0.50, 0.50], [0.0, 0.50]]]], dtype=D)
        region = torch.tensor([[[[1, 1], [1, 0]]]], dtype=torch.bool)
        e = occlusion_energy(rend, obs, region, kind="truncated_l1", threshold=0.5, margin=0.01)
        torch.testing.assert_close(e, torch.tensor([[0.01 / 4]], dtype=D))
        assert float(occlusion_energy(rend + 1.0, obs, region, kind="truncated_l1", threshold=0.5)) == 0.0

    def test_gradient(self):
        g = _gen(5)
        obs = 0.5 + 0.05 * torch.rand(2, 2, 6, 5, generator=g, dtype=D)
        rend = (obs - 0.03 + 0.01 * torch.randn(2, 2, 6, 5, generator=g, dtype=D)).requires_grad_()
        region = torch.rand(2, 2, 6, 5, generator=g) > 0.3
        assert gradcheck(lambda r: occlusion_energy(r, obs, region, kind="tukey", threshold=0.04), (rend,))
        e = occlusion_energy(rend, obs, region, kind="tukey", threshold=0.04).sum()
        (grad,) = torch.autograd.grad(e, rend)
        assert (grad[region] <= 0).all() and (grad[region] < 0).any()  # pushed back, behind the hand
        assert (grad[~region] == 0).all()

    def test_bad(self):
        with pytest.raises(ValueError, match="region"):
            occlusion_energy(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 3))


def _cameras(C):
    K = torch.tensor([[500.0, 0, 160], [0, 500.0, 120], [0, 0, 1]], dtype=D).expand(C, 3, 3).clone()
    T = torch.eye(4, dtype=D).expand(C, 4, 4).clone()
    T[:, 0, 3] = 0.05 * torch.arange(C, dtype=D)
    return K, T


class TestKeypoints2d:
    def test_golden(self):
        K, T = _cameras(1)
        joints = torch.zeros(1, 21, 3, dtype=D)
        joints[..., 2] = 0.5
        uv, _ = project_to_cameras(joints, K, T)
        torch.testing.assert_close(uv[0, 0, 0], torch.tensor([160.0, 120.0], dtype=D))
        kp = torch.cat([uv, torch.ones(1, 1, 21, 1, dtype=D)], -1)
        kp[0, 0, 3, 0] += 3.0  # 3 px off, confidence 0.5
        kp[0, 0, 3, 2] = 0.5
        kp[0, 0, 5, :2] = float("nan")  # missing
        torch.testing.assert_close(keypoints2d_energy(joints, kp, K, T), torch.tensor([[4.5]], dtype=D))
        assert keypoints2d_energy(joints, kp, K, T, conf_threshold=0.6).item() == 0.0

    @pytest.mark.parametrize("B", [1, 2, 5])
    def test_shapes_and_gradient(self, B):
        K, T = _cameras(3)
        g = _gen(5)
        joints = (torch.randn(B, 21, 3, generator=g, dtype=D) * 0.05 + torch.tensor([0, 0, 0.5], dtype=D))
        kp = torch.cat([torch.rand(B, 3, 21, 2, generator=g, dtype=D) * 300, torch.rand(B, 3, 21, 1, generator=g,
                                                                                           dtype=D)], -1)
        assert keypoints2d_energy(joints, kp, K, T).shape == (B, 3)
        j = joints.requires_grad_()
        assert gradcheck(lambda x: keypoints2d_energy(x, kp, K, T, kind="geman_mcclure", scale=30.0), (j,))

    def test_bad(self):
        K, T = _cameras(2)
        with pytest.raises(ValueError, match=r"\(B, C, J, 3\)"):
            keypoints2d_energy(torch.zeros(1, 21, 3), torch.zeros(1, 3, 21, 3), K, T)


class TestLimitsPhyTemporal:
    def test_joint_limits_wrapper(self):
        data = mano_data_from_dict(random_mano_dict(num_vertices=40, num_faces=10, seed=2), "right",
                                   tip_vertex_ids=(0, 1, 2, 3, 4))
        pose = torch.zeros(2, 45, dtype=D)
        e = joint_limit_energy(pose, data)
        assert e.shape == (2,) and (e > 0).all()  # the flat hand violates index1 z >= 0.1 etc.

    def test_interpenetration_golden_and_gradient(self):
        closest = torch.zeros(1, 3, 3, dtype=D)
        normals = torch.tensor([[[0.0, 0, 1]] * 3], dtype=D)
        pts = torch.tensor([[[0, 0, 0.01], [0, 0, -0.002], [0, 0, 0.003]]], dtype=D)
        # paper: only the second point penetrates by 2 mm
        torch.testing.assert_close(interpenetration_energy(pts, closest, normals, 5.0, 0.0),
                                   torch.tensor([np.expm1(5 * 0.002)], dtype=D))
        # reference: 5 mm margin, w = 10: points 2 and 3 count
        exp = np.expm1(10 * 0.007) + np.expm1(10 * 0.002)
        torch.testing.assert_close(interpenetration_energy(pts, closest, normals, 10.0, 0.005),
                                   torch.tensor([exp], dtype=D))
        p = (pts + 1e-4).requires_grad_()
        assert gradcheck(lambda x: interpenetration_energy(x, closest, normals, 50.0, 0.005), (p,))

    def test_temporal_golden(self):
        p = torch.tensor([[0.0], [1.0], [3.0], [3.0]], dtype=D)
        torch.testing.assert_close(velocity_energy(p), torch.tensor([0.0, 1.0, 4.0, 0.0], dtype=D))
        torch.testing.assert_close(acceleration_energy(p), torch.tensor([0.0, 0.0, 1.0, 4.0], dtype=D))
        torch.testing.assert_close(temporal_energy(p, 2 * p), 5 * torch.tensor([0.0, 1.0, 5.0, 4.0], dtype=D))
        torch.testing.assert_close(velocity_energy(torch.cat([p, p], 1), [1.0, 0.0]), velocity_energy(p))

    @pytest.mark.parametrize("T", [1, 2, 5])
    def test_temporal_shapes_and_gradient(self, T):
        x = torch.randn(T, 6, generator=_gen(6), dtype=D, requires_grad=True)
        assert velocity_energy(x).shape == acceleration_energy(x).shape == (T,)
        assert gradcheck(lambda y: temporal_energy(y[:, :3], y[:, 3:]), (x,))

    def test_bad(self):
        with pytest.raises(ValueError, match=r"\(T, D\)"):
            velocity_energy(torch.zeros(3))
        with pytest.raises(ValueError, match="closest"):
            interpenetration_energy(torch.zeros(1, 2, 3), torch.zeros(1, 3, 3), torch.zeros(1, 2, 3))


class TestPointToSurface:
    def test_barycentric(self):
        tri = np.array([[[0, 0, 0], [1, 0, 0], [0, 1, 0.0]]])
        np.testing.assert_allclose(barycentric_coordinates(np.array([[0.25, 0.5, 0.0]]), tri), [[0.25, 0.25, 0.5]])

    def test_golden_and_gating(self):
        v, f = _cube()
        verts = torch.as_tensor(v)[None]
        pts = torch.tensor([[[0.06, 0.0, 0.0], [0.0, 0.0, 0.052], [0.3, 0.0, 0.0]]], dtype=D)
        corr = SurfaceCorrespondences(f, refresh_every=3, gate=0.02)
        e = corr(verts, pts)
        # inliers 1 cm and 2 mm off the faces; the far point is gated; mean over the 2 inliers
        torch.testing.assert_close(e, torch.tensor([(0.01 ** 2 + 0.002 ** 2) / 2], dtype=D))
        torch.testing.assert_close(corr.inlier_weights, torch.tensor([[1.0, 1.0, 0.0]], dtype=D))

    def test_gradient_moves_with_mesh(self):
        v, f = _cube()
        g = _gen(7)
        pts = torch.as_tensor(v)[None] * 1.1 + 0.002 * torch.randn(1, 8, 3, generator=g, dtype=D)
        corr = SurfaceCorrespondences(f, refresh_every=100, gate=0.05)
        corr(torch.as_tensor(v)[None], pts)  # fix correspondences
        face_ids, bary, w = corr._cache
        verts = (torch.as_tensor(v)[None] + 1e-3 * torch.randn(1, 8, 3, generator=g, dtype=D)).requires_grad_()
        assert gradcheck(lambda x: point_to_surface_energy(x, torch.as_tensor(f), pts, face_ids, bary, w), (verts,))
        # translating the mesh by the residual offset lowers the energy (the matches follow the mesh)
        e0 = corr(torch.as_tensor(v)[None], pts)
        e1 = corr(torch.as_tensor(v)[None] * 1.1, pts)
        assert e1 < e0

    @pytest.mark.parametrize("B", [1, 2, 5])
    def test_batch_shapes(self, B):
        v, f = _cube()
        clouds = [torch.as_tensor(v[: 3 + b]) * 1.05 for b in range(B)]
        pts, mask = pad_clouds(clouds)
        corr = SurfaceCorrespondences(f)
        assert corr(torch.as_tensor(v)[None].expand(B, 8, 3), pts, mask).shape == (B,)

    def test_object_query_normals(self):
        v, f = _cube()
        closest, normals, found = ObjectSurfaceQuery(v, f)(torch.tensor([[[0.0, 0.0, 0.04]]], dtype=D))
        torch.testing.assert_close(closest, torch.tensor([[[0.0, 0.0, 0.05]]], dtype=D), atol=1e-6, rtol=0)
        torch.testing.assert_close(normals, torch.tensor([[[0.0, 0.0, 1.0]]], dtype=D), atol=1e-6, rtol=0)
        pts = torch.tensor([[[0.0, 0.0, 0.04]]], dtype=D)
        assert interpenetration_energy(pts, closest, normals).item() == pytest.approx(np.expm1(5 * 0.01))

    def test_bad(self):
        v, f = _cube()
        with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
            SurfaceCorrespondences(f)(torch.as_tensor(v)[None], torch.zeros(5, 3))


class TestPointClouds:
    def test_unprojection_and_fusion(self):
        K, T = _cameras(2)
        c2w = torch.linalg.inv(T)
        depth = torch.full((2, 4, 5), 0.5, dtype=D)
        depth[1, 0, 0] = 0.9  # beyond max range
        seg = torch.zeros(2, 4, 5, dtype=torch.long)
        seg[:, 1:3, 1:3] = 2
        seg[:, 0, 0] = 1
        clouds = segmented_point_clouds(depth, seg, K, c2w)
        assert clouds[2].shape == (8, 3) and clouds[1].shape == (1, 3)
        # pixel (0, 0) of camera 0 at 0.5 m, world = camera 0 frame shifted by -T translation
        expected = torch.tensor([(0 - 160) / 500 * 0.5, (0 - 120) / 500 * 0.5, 0.5], dtype=D) - T[0, :3, 3]
        torch.testing.assert_close(clouds[1][0], expected)

    def test_bad(self):
        K, T = _cameras(1)
        with pytest.raises(ValueError, match="segmentation"):
            segmented_point_clouds(torch.zeros(1, 4, 4), torch.zeros(1, 4, 5), K, T)


class TestWeights:
    def test_total_and_per_frame(self):
        terms = {"mask": torch.tensor([[1.0, 2.0], [0.0, 1.0]]), "depth": torch.tensor([[1.0, 1.0], [1.0, 1.0]]),
                 "joint_limits": torch.tensor([0.5, 0.0]), "temporal": torch.tensor([3.0, 3.0])}
        w = TermWeights(mask=2.0, depth=0.5, joint_limits=10.0)
        total, per = total_energy(terms, w)
        torch.testing.assert_close(per["mask"], torch.tensor([6.0, 2.0]))
        torch.testing.assert_close(per["joint_limits"], torch.tensor([5.0, 0.0]))
        assert "temporal" not in per
        assert total.item() == pytest.approx(6 + 2 + 2 + 5)

    def test_presets_follow_reference(self):
        assert (REFINEMENT_WEIGHTS.mask, REFINEMENT_WEIGHTS.depth, REFINEMENT_WEIGHTS.object_trans_vel) == (10, 5, 5e2)
        assert (MULTI_CAMERA_WEIGHTS.keypoints2d, MULTI_CAMERA_WEIGHTS.temporal) == (5e-5, 100)
        s = TermSettings()
        assert s.depth_threshold == 0.02 and TermSettings(depth_kind="truncated_l1").depth_threshold == 0.5
        assert TermSettings(phy_mode="joints").phy_parameters == (10.0, 0.005)

    def test_bad(self):
        with pytest.raises(ValueError, match="unknown term"):
            total_energy({"silhouette": torch.zeros(1)}, TermWeights(mask=1.0))
        with pytest.raises(ValueError, match=">= 0"):
            TermWeights(mask=-1.0)
        with pytest.raises(ValueError, match="phy_mode"):
            TermSettings(phy_mode="mesh")
