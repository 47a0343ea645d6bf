"""Tests of honnotate.models.joints (orders, skeleton, HO-3D hand parameters)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from honnotate.models.hand import HandModel
from honnotate.models.hand_data import MANO_PARENTS
from honnotate.models.joints import (
    FINGER_JOINTS,
    KEYPOINT_PARENTS,
    MANO_JOINT_NAMES,
    MANO_TO_OPENPOSE,
    OPENPOSE_JOINT_NAMES,
    OPENPOSE_SKELETON_BONES,
    OPENPOSE_TO_MANO,
    SKELETON_BONES,
    finger_of,
    from_ho3d_hand,
    mano_to_openpose,
    openpose_to_mano,
    pose_index,
    to_ho3d_hand,
)
from honnotate.models.mano import mano_data_from_dict, random_mano_dict


class TestOrders:
    def test_openpose_names_golden(self):
        assert OPENPOSE_JOINT_NAMES[:9] == ("wrist", "thumb1", "thumb2", "thumb3", "thumb_tip",
                                            "index1", "index2", "index3", "index_tip")
        assert OPENPOSE_JOINT_NAMES[13:17] == ("ring1", "ring2", "ring3", "ring_tip")
        assert OPENPOSE_JOINT_NAMES[17:] == ("pinky1", "pinky2", "pinky3", "pinky_tip")
        assert MANO_TO_OPENPOSE.tolist() == [0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20]

    def test_maps_are_inverse(self):
        assert MANO_TO_OPENPOSE[OPENPOSE_TO_MANO].tolist() == list(range(21))
        assert OPENPOSE_TO_MANO[MANO_TO_OPENPOSE].tolist() == list(range(21))

    @pytest.mark.parametrize("lead", [(), (1,), (2,), (5, 3)])
    def test_roundtrip_numpy_torch(self, lead):
        x = np.random.default_rng(0).normal(size=(*lead, 21, 2))
        op = mano_to_openpose(x)
        assert isinstance(op, np.ndarray) and op.shape == x.shape
        np.testing.assert_array_equal(openpose_to_mano(op), x)
        t = torch.as_tensor(x)
        assert torch.equal(openpose_to_mano(mano_to_openpose(t)), t)
        # names follow the data
        np.testing.assert_array_equal(op[..., OPENPOSE_JOINT_NAMES.index("ring2"), :],
                                      x[..., MANO_JOINT_NAMES.index("ring2"), :])

    def test_bad_shape(self):
        with pytest.raises(ValueError, match=r"\(\.\.\., 21, D\)"):
            mano_to_openpose(np.zeros((20, 3)))

    def test_skeleton(self):
        assert KEYPOINT_PARENTS[:16] == MANO_PARENTS
        assert len(SKELETON_BONES) == 20 and len(OPENPOSE_SKELETON_BONES) == 20
        for f, ids in FINGER_JOINTS.items():  # each finger is a chain ending at its tip
            assert all(KEYPOINT_PARENTS[c] == p for p, c in zip(ids[:-1], ids[1:], strict=True))
            assert MANO_JOINT_NAMES[ids[-1]] == f"{f}_tip"
        # OpenPose bones: each finger chain consecutive, rooted at the wrist
        assert (0, 1) in OPENPOSE_SKELETON_BONES and (3, 4) in OPENPOSE_SKELETON_BONES
        assert (0, 17) in OPENPOSE_SKELETON_BONES and (19, 20) in OPENPOSE_SKELETON_BONES

    def test_helpers(self):
        assert finger_of(0) is None and finger_of("ring_tip") == "ring" and finger_of(8) == "pinky"
        assert pose_index("index1", "x") == 0 and pose_index("thumb3", "z") == 44
        assert pose_index("middle2", "z") + 3 == 17  # mano_joint_limits.md row "middle2 z"
        with pytest.raises(ValueError):
            finger_of(21)
        with pytest.raises(ValueError):
            pose_index("wrist", "x")


@pytest.fixture(scope="module")
def data():
    return mano_data_from_dict(random_mano_dict(num_vertices=60, num_faces=20, num_betas=10, seed=8),
                               "right", tip_vertex_ids=(0, 1, 2, 3, 4))


class TestHO3D:
    @pytest.mark.parametrize("flat", [True, False])
    def test_roundtrip(self, data, flat):
        rng = np.random.default_rng(1)
        d = {"handPose": rng.normal(size=48), "handTrans": rng.normal(size=3), "handBeta": rng.normal(size=10)}
        params = from_ho3d_hand(d, flat_hand_mean=flat, hands_mean=data.hands_mean, dtype=torch.float64)
        assert params["hand_pose"].shape == (1, 45) and params["betas"].shape == (1, 10)
        back = to_ho3d_hand(params["global_orient"], params["hand_pose"], params["betas"], params["transl"],
                            flat_hand_mean=flat, hands_mean=data.hands_mean)
        for k in d:
            np.testing.assert_allclose(back[k], d[k], atol=1e-12)
        if not flat:
            np.testing.assert_allclose(params["hand_pose"][0].numpy(), d["handPose"][3:] - data.hands_mean)

    def test_same_vertices(self, data):
        """Parameters of a non-flat-mean model -> HO-3D -> a flat-mean model: same mesh."""
        torch.manual_seed(0)
        src = HandModel(data, flat_hand_mean=False, dtype=torch.float64)
        dst = HandModel(data, flat_hand_mean=True, dtype=torch.float64)
        go, hp = torch.randn(1, 3, dtype=torch.float64), torch.randn(1, 45, dtype=torch.float64) * 0.5
        betas, transl = torch.randn(1, 10, dtype=torch.float64), torch.randn(1, 3, dtype=torch.float64)
        ho3d = to_ho3d_hand(go, hp, betas, transl, flat_hand_mean=False, hands_mean=data.hands_mean)
        np.testing.assert_allclose(ho3d["handPose"], src(go, hp, betas, transl).full_pose[0].numpy())
        p = from_ho3d_hand(ho3d, flat_hand_mean=True, dtype=torch.float64)
        a = src(go, hp, betas, transl).vertices
        b = dst(p["global_orient"], p["hand_pose"], p["betas"], p["transl"]).vertices
        torch.testing.assert_close(a, b)

    def test_betas_pad_truncate_warn(self):
        with pytest.warns(UserWarning, match="padded"):
            out = to_ho3d_hand(np.zeros(3), np.zeros(45), np.ones(4), np.zeros(3), flat_hand_mean=True)
        np.testing.assert_array_equal(out["handBeta"], [1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
        with pytest.warns(UserWarning, match="truncated"):
            out = to_ho3d_hand(np.zeros(3), np.zeros(45), np.arange(12.0), np.zeros(3), flat_hand_mean=True)
        np.testing.assert_array_equal(out["handBeta"], np.arange(10.0))

    def test_bad_inputs(self):
        with pytest.raises(ValueError, match="hands_mean"):
            to_ho3d_hand(np.zeros(3), np.zeros(45), np.zeros(10), np.zeros(3), flat_hand_mean=False)
        with pytest.raises(ValueError, match=r"hand_pose_axis_angle: expected \(45,\)"):
            to_ho3d_hand(np.zeros(3), np.zeros(44), np.zeros(10), np.zeros(3), flat_hand_mean=True)
        with pytest.raises(ValueError, match="global_orient"):
            to_ho3d_hand(np.zeros((2, 3)), np.zeros(45), np.zeros(10), np.zeros(3), flat_hand_mean=True)
        with pytest.raises(ValueError, match="handBeta"):
            from_ho3d_hand({"handPose": np.zeros(48), "handTrans": np.zeros(3)}, flat_hand_mean=True)
