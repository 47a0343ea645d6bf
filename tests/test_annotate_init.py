"""Automatic initialisation: hand from 2D keypoints (LM), grasp conversions, object from depth."""

from __future__ import annotations

import numpy as np
import pytest
import roma
import torch

from honnotate.annotate.correspondence import segmented_point_clouds
from honnotate.annotate.grasp import grasp_to_world, mean_rotation, world_to_grasp
from honnotate.annotate.init_hand import (
    KeypointModel,
    _attached_cost,
    fit_grasp_to_keypoints,
    fit_hand_to_keypoints,
    kabsch,
    select_grasp_frames,
    triangulate_points,
)
from honnotate.annotate.init_object import (
    align_object_to_cloud,
    object_pose_from_meta,
    refine_object_pose_icp,
)
from honnotate.annotate.lm import levenberg_marquardt
from honnotate.annotate.terms import project_to_cameras
from honnotate.geometry import Camera, look_at
from honnotate.models.hand import HandModel
from honnotate.models.limits import model_joint_limits
from honnotate.models.object import make_object
from honnotate.models.open_hand import load_open_hand

D = torch.float64


@pytest.fixture(scope="module")
def hand():
    return HandModel(load_open_hand("right"), dtype=D)


@pytest.fixture(scope="module")
def kpmodel(hand):
    return KeypointModel(hand)


def _look_at(eye, target=(0.0, 0.0, 0.5)):
    """World-to-camera (4, 4) of a camera at ``eye`` looking at ``target``."""
    return np.linalg.inv(look_at(eye, target))


def _rig(C):
    eyes = [(0, 0, 0), (0.4, 0, 0.2), (-0.4, 0, 0.2), (0, -0.4, 0.25), (0.3, 0.3, 0.1)][:C]
    w2c = torch.tensor(np.stack([_look_at(e) for e in eyes]))
    K = torch.tensor([[600.0, 0, 320], [0, 600.0, 240], [0, 0, 1]], dtype=D).expand(C, 3, 3).clone()
    return K, w2c


def _random_hands(model, hand, B, seed):
    g = torch.Generator().manual_seed(seed)
    lim = torch.as_tensor(model_joint_limits(hand.data)).reshape(45, 2)
    anat = lim[:, 0] + (lim[:, 1] - lim[:, 0]) * torch.rand(B, 45, generator=g, dtype=D)
    go = roma.rotmat_to_rotvec(_seeded_rotmats(B, g))
    tr = torch.tensor([0.0, 0.0, 0.5], dtype=D) + 0.03 * torch.randn(B, 3, generator=g, dtype=D)
    return go, anat, tr


def _seeded_rotmats(B, g):
    q = torch.randn(B, 4, generator=g, dtype=D)
    return roma.unitquat_to_rotmat(q / q.norm(dim=-1, keepdim=True))


def _mpjpe(a, b):
    return (a - b).norm(dim=-1).mean(-1)


class TestKeypointModel:
    def test_equals_full_model(self, hand, kpmodel):
        go, anat, tr = _random_hands(kpmodel, hand, 2, 0)
        full = hand(go, kpmodel.finger_pose(anat), None, tr).joints
        torch.testing.assert_close(kpmodel(go, anat, tr), full, atol=1e-12, rtol=0)


class TestLM:
    def test_rosenbrock_batch(self):
        def res(x):
            return torch.stack([10 * (x[:, 1] - x[:, 0] ** 2), 1 - x[:, 0]], 1)

        out = levenberg_marquardt(res, torch.tensor([[-1.2, 1.0], [2.0, 2.0]], dtype=D), iterations=100)
        torch.testing.assert_close(out.x, torch.ones(2, 2, dtype=D), atol=1e-6, rtol=0)

    def test_bad(self):
        with pytest.raises(ValueError, match=r"\(B, P\)"):
            levenberg_marquardt(lambda x: x, torch.zeros(3))


class TestHandInit:
    @pytest.mark.parametrize("C", [2, 5])
    def test_exact_keypoints(self, hand, kpmodel, C):
        K, w2c = _rig(C)
        go, anat, tr = _random_hands(kpmodel, hand, 2, 1)
        joints = kpmodel(go, anat, tr)
        uv, _ = project_to_cameras(joints, K, w2c)
        kp = torch.cat([uv, torch.ones(*uv.shape[:-1], 1, dtype=D)], -1)
        fit = fit_hand_to_keypoints(kpmodel, kp, K, w2c)
        assert fit.joints.shape == (2, 21, 3) and fit.global_orient.shape == (2, 3)
        assert _mpjpe(fit.joints, joints).max() < 0.002

    def test_noisy_keypoints_with_outliers(self, hand, kpmodel):
        C = 5
        K, w2c = _rig(C)
        go, anat, tr = _random_hands(kpmodel, hand, 2, 2)
        joints = kpmodel(go, anat, tr)
        uv, _ = project_to_cameras(joints, K, w2c)
        g = torch.Generator().manual_seed(3)
        uv = uv + 2.0 * torch.randn(uv.shape, generator=g, dtype=D)
        outliers = torch.rand(uv.shape[:-1], generator=g) < 0.1
        uv = uv + outliers[..., None] * (40 + 120 * torch.rand(uv.shape, generator=g, dtype=D))
        conf = 0.5 + 0.5 * torch.rand(*uv.shape[:-1], 1, generator=g, dtype=D)
        conf[0, 0, 5] = float("nan")  # a missing keypoint
        fit = fit_hand_to_keypoints(kpmodel, torch.cat([uv, conf], -1), K, w2c)
        assert _mpjpe(fit.joints, joints).max() < 0.010

    @staticmethod
    def _grasp_capture(kpmodel, hand, T_=4):
        K, w2c = _rig(1)
        g = torch.Generator().manual_seed(4)
        _, anat, _ = _random_hands(kpmodel, hand, 1, 4)
        rel_r = torch.tensor([[0.3, -0.2, 0.1]], dtype=D)
        rel_t = torch.tensor([[0.05, 0.0, -0.08]], dtype=D)
        obj_r = roma.rotmat_to_rotvec(_seeded_rotmats(T_, g)) * 0.5
        obj_t = torch.tensor([0.0, 0.0, 0.5], dtype=D) + 0.02 * torch.randn(T_, 3, generator=g, dtype=D)
        go, tr = grasp_to_world(rel_r, rel_t, obj_r, obj_t, kpmodel.rest_wrist)
        joints = kpmodel(go, anat.expand(T_, 45), tr)
        uv, z = project_to_cameras(joints, K, w2c)
        kp = torch.cat([uv, torch.ones(*uv.shape[:-1], 1, dtype=D)], -1)
        return K, w2c, rel_r, rel_t, anat, obj_r, obj_t, joints, kp, z - 0.008

    def test_attached_cost(self, hand, kpmodel):
        """The candidate score of the multi-start grasp fit: zero at the true grasp, positive
        elsewhere, summed over frames, independent of the chunking."""
        K, w2c, rel_r, rel_t, anat, obj_r, obj_t, joints, kp, _ = self._grasp_capture(kpmodel, hand)
        cand_r = torch.cat([rel_r, rel_r + 0.05, rel_r])
        cand_t = torch.cat([rel_t, rel_t, rel_t + 0.01])
        a = anat.expand(3, 45)
        c = _attached_cost(kpmodel, cand_r, cand_t, a, obj_r, obj_t, kp, K, w2c, 0.1, "l2", 1.0)
        assert c[0] < 1e-12 and (c[1:] > 1.0).all()
        # l2: the sum of squared reprojection residuals of the attached hand over all frames
        go, tr = grasp_to_world(cand_r[1:2], cand_t[1:2], obj_r, obj_t, kpmodel.rest_wrist)
        uv, _ = project_to_cameras(kpmodel(go, anat.expand(len(obj_r), 45), tr), K, w2c)
        torch.testing.assert_close(c[1], ((uv - kp[..., :2]) ** 2).sum())
        c1 = _attached_cost(kpmodel, cand_r, cand_t, a, obj_r, obj_t, kp, K, w2c, 0.1, "geman_mcclure", 10.0, chunk=1)
        c3 = _attached_cost(kpmodel, cand_r, cand_t, a, obj_r, obj_t, kp, K, w2c, 0.1, "geman_mcclure", 10.0)
        torch.testing.assert_close(c1, c3)

    def test_grasp_starts(self, hand, kpmodel):
        """More starts never end at a worse attached-hand cost (the selection criterion), and
        recover the grasp under noise and outliers."""
        K, w2c, rel_r, rel_t, anat, obj_r, obj_t, joints, kp, depth = self._grasp_capture(kpmodel, hand, 6)
        g = torch.Generator().manual_seed(5)
        kp = kp.clone()
        kp[..., :2] += 2.0 * torch.randn(kp[..., :2].shape, generator=g, dtype=D)
        out = torch.rand(kp.shape[:-1], generator=g) < 0.1
        kp[..., :2] += out[..., None] * 80.0
        costs = []
        for starts in (1, 3):
            fit = fit_grasp_to_keypoints(kpmodel, kp, K, w2c, obj_r, obj_t, depth_at_keypoints=depth, starts=starts)
            costs.append(float(_attached_cost(kpmodel, fit.rel_rotvec[None], fit.rel_transl[None], fit.anatomical[None],
                                              obj_r, obj_t, kp, K, w2c, 0.1, "geman_mcclure", 10.0)))
            go2, tr2 = grasp_to_world(fit.rel_rotvec[None], fit.rel_transl[None], obj_r, obj_t, kpmodel.rest_wrist)
            assert _mpjpe(kpmodel(go2, fit.anatomical.expand(len(obj_r), 45), tr2), joints).mean() < 0.01
        assert costs[1] <= costs[0] * 1.001
        with pytest.raises(ValueError, match="starts"):
            fit_grasp_to_keypoints(kpmodel, kp, K, w2c, obj_r, obj_t, starts=0)

    def test_single_camera_grasp(self, hand, kpmodel):
        """Eq. 12: one finger pose shared over frames, wrist free per frame; grasp relative to the object."""
        T_ = 4
        # depth at the keypoints (a depth camera sees the skin ~8 mm in front of the joint) fixes the
        # scale ambiguity of one view
        K, w2c, _, _, _, obj_r, obj_t, joints, kp, depth = self._grasp_capture(kpmodel, hand, T_)
        fit = fit_grasp_to_keypoints(kpmodel, kp, K, w2c, obj_r, obj_t, depth_at_keypoints=depth)
        assert fit.global_orient.shape == (T_, 3) and fit.anatomical.shape == (45,)
        assert _mpjpe(fit.joints, joints).max() < 0.003
        go2, tr2 = grasp_to_world(fit.rel_rotvec[None], fit.rel_transl[None], obj_r, obj_t, kpmodel.rest_wrist)
        j2 = kpmodel(go2, fit.anatomical.expand(T_, 45), tr2)
        assert _mpjpe(j2, joints).max() < 0.005

    def test_bad(self, kpmodel):
        K, w2c = _rig(2)
        with pytest.raises(ValueError, match=r"\(B, C, 21, 3\)"):
            fit_hand_to_keypoints(kpmodel, torch.zeros(1, 21, 3, dtype=D), K, w2c)
        with pytest.raises(ValueError, match=r"\(2, 3, 3\)"):
            fit_hand_to_keypoints(kpmodel, torch.zeros(1, 2, 21, 3, dtype=D), K[:1], w2c)


class TestGeometryHelpers:
    def test_triangulate_and_kabsch(self):
        K, w2c = _rig(3)
        pts = torch.tensor([[0.0, 0.0, 0.5], [0.05, -0.02, 0.52], [-0.03, 0.04, 0.47]], dtype=D)
        uv, _ = project_to_cameras(pts[None], K, w2c)
        X, ok = triangulate_points(uv[0], torch.ones(3, 3, dtype=D), K, w2c)
        assert ok.all()
        torch.testing.assert_close(X, pts, atol=1e-9, rtol=0)
        R = roma.rotvec_to_rotmat(torch.tensor([0.1, 0.2, -0.3], dtype=D))
        R2, t2 = kabsch(pts, pts @ R.T + 1.0)
        torch.testing.assert_close(R2, R)
        torch.testing.assert_close(t2, torch.ones(3, dtype=D))

    def test_select_grasp_frames(self):
        T_ = 10
        kp = np.ones((T_, 21, 3))
        kp[3, :15, 2] = 0.1  # only 6 confident joints
        rv = np.zeros((T_, 3))
        rv[:, 2] = np.linspace(0, 3, T_)
        frames = select_grasp_frames(kp, rv, mask_fraction=np.full(T_, 0.05), count=3)
        assert 3 not in frames and len(frames) == 3
        # farthest-point sampling spreads over the rotations: both ends are chosen
        assert frames[0] == 0 and frames[-1] == T_ - 1
        with pytest.raises(ValueError, match=r"\(T, 21, 3\)"):
            select_grasp_frames(np.ones((3, 20, 3)), np.zeros((3, 3)))
        # frames not eligible (object tracking lost) are never chosen: the far end moves inwards
        el = np.ones(T_, bool)
        el[-2:] = False
        frames = select_grasp_frames(kp, rv, mask_fraction=np.full(T_, 0.05), count=3, eligible=el)
        assert frames[-1] == T_ - 3 and not set(frames) & {3, T_ - 2, T_ - 1}
        with pytest.raises(ValueError, match="eligible"):
            select_grasp_frames(kp, rv, eligible=np.ones(T_ - 1, bool))

    def test_object_fit_gate(self):
        from honnotate.annotate.stages import object_fit_gate

        e = np.array([0.1, 0.12, np.nan, 0.11, 0.5, 0.09])
        # median of the known energies 0.11: 0.5 > 2 x 0.11 is out, unknown (NaN) passes
        np.testing.assert_array_equal(object_fit_gate(e, 2.0, 6), [True, True, True, True, False, True])
        assert object_fit_gate(e, 0.0, 6) is None and object_fit_gate(None, 2.0, 6) is None
        assert object_fit_gate(np.full(6, np.nan), 2.0, 6) is None
        with pytest.raises(ValueError, match="object energies"):
            object_fit_gate(e, 2.0, 5)


class TestGraspConversions:
    @pytest.mark.parametrize("B", [1, 2, 5])
    def test_round_trip_and_same_mesh(self, hand, B):
        g = torch.Generator().manual_seed(5)
        hr, orr = (roma.rotmat_to_rotvec(_seeded_rotmats(B, g)) for _ in range(2))
        ht, ot = (torch.randn(B, 3, generator=g, dtype=D) * 0.1 for _ in range(2))
        j0 = hand(torch.zeros(1, 3, dtype=D), torch.zeros(1, 45, dtype=D)).rest_joints[0, 0]
        for wrist in (j0 + 0.01, j0):  # the round trip holds for any J0
            rr, rt = world_to_grasp(hr, ht, orr, ot, wrist)
            hr2, ht2 = grasp_to_world(rr, rt, orr, ot, wrist)
            torch.testing.assert_close(roma.rotvec_to_rotmat(hr2), roma.rotvec_to_rotmat(hr))
            torch.testing.assert_close(ht2, ht)
        # relative pose = the hand posed in the object frame: x_o = R_o^T (x_w - t_o)
        pose = torch.zeros(B, 45, dtype=D)
        vw = hand(hr, pose, None, ht).vertices
        vo = hand(rr, pose, None, rt).vertices
        Ro = roma.rotvec_to_rotmat(orr)
        torch.testing.assert_close(vo, (vw - ot[:, None]) @ Ro, atol=1e-10, rtol=0)

    def test_mean_rotation(self):
        r = torch.tensor([[0.0, 0.0, 0.1], [0.0, 0.0, 0.3]], dtype=D)
        torch.testing.assert_close(mean_rotation(r), torch.tensor([0.0, 0.0, 0.2], dtype=D))

    def test_bad(self):
        with pytest.raises(ValueError, match=r"\(B, 3\)"):
            world_to_grasp(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3, 3), torch.zeros(2, 3), torch.zeros(3))
        with pytest.raises(ValueError, match="rest_wrist"):
            grasp_to_world(torch.zeros(1, 3), torch.zeros(1, 3), torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2))


def _render_object_depth(obj, rotvec, transl, cam):
    from honnotate.render.renderer import Renderer, SceneMesh

    R = roma.rotvec_to_rotmat(torch.as_tensor(rotvec)).numpy()
    V = obj.vertices @ R.T + transl
    out = Renderer().render([SceneMesh(torch.tensor(V, dtype=torch.float32)[None], torch.tensor(obj.faces), 1)],
                            cam, silhouettes=False)
    labels = out.labels[0, 0]
    depth = torch.where(labels > 0, out.depth[0, 0], torch.zeros_like(out.depth[0, 0]))
    return V, depth, labels


def _pose_errors(obj, V_true, rotvec, transl, rotvec_true):
    R = roma.rotvec_to_rotmat(torch.as_tensor(rotvec)).numpy()
    Rt = roma.rotvec_to_rotmat(torch.as_tensor(rotvec_true)).numpy()
    err = np.linalg.norm(obj.vertices @ R.T + transl - V_true, axis=1).mean()
    ang = np.degrees(np.arccos(np.clip((np.trace(R.T @ Rt) - 1) / 2, -1, 1)))
    return err, ang


class TestObjectInit:
    def test_align_from_depth_then_track(self):
        obj = make_object("mustard_bottle")
        cam = Camera.from_intrinsics(500, 500, 159.5, 119.5, 320, 240)
        rv, tr = np.array([0.4, -1.2, 0.7]), np.array([0.03, -0.02, 0.5])
        V, depth, labels = _render_object_depth(obj, rv, tr, cam)
        cloud = segmented_point_clouds(depth[None], labels[None], cam.K[None], cam.cam_to_world[None])[1]
        al = align_object_to_cloud(obj.vertices, obj.faces, cloud, cam.world_to_cam(), cam.K, depth)
        err, ang = _pose_errors(obj, V, al.rotvec, al.transl, rv)
        assert err < 0.005 and ang < 5.0, (err, ang)
        # next frame: small motion, tracked by ICP from the previous pose
        rv2, tr2 = rv + np.array([0.05, 0.03, -0.04]), tr + np.array([0.01, 0.0, -0.008])
        V2, depth2, labels2 = _render_object_depth(obj, rv2, tr2, cam)
        cloud2 = segmented_point_clouds(depth2[None], labels2[None], cam.K[None], cam.cam_to_world[None])[1]
        tracked = refine_object_pose_icp(obj.vertices, obj.faces, cloud2, al.rotvec, al.transl)
        err2, ang2 = _pose_errors(obj, V2, tracked.rotvec, tracked.transl, rv2)
        assert err2 < 0.002 and ang2 < 2.0, (err2, ang2)

    def test_meta_pose_and_bad(self):
        class Meta:
            object_rotvec_init = (0.1, 0.2, 0.3)
            object_trans_init = (0.0, 0.0, 0.5)

        rv, tr = object_pose_from_meta(Meta())
        np.testing.assert_allclose(rv, [0.1, 0.2, 0.3])
        assert object_pose_from_meta(object()) is None
        obj = make_object("sphere")
        with pytest.raises(ValueError, match="empty"):
            align_object_to_cloud(obj.vertices, obj.faces, np.zeros((3, 3)), np.eye(4))
        with pytest.raises(ValueError, match=r"\(N, 3\)"):
            refine_object_pose_icp(obj.vertices, obj.faces, np.zeros((30, 2)), np.zeros(3), np.zeros(3))
