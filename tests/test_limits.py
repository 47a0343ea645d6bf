"""Tests of honnotate.models.limits (joint-angle limits, paper Eq. 8)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import roma
import torch

from honnotate.models.hand import HandModel
from honnotate.models.limits import (
    MANO_FROZEN_POSE_INDICES,
    anatomical_limit_energy,
    limit_energy,
    mano_free_dof_mask,
    mano_joint_limits,
    model_joint_limits,
)
from honnotate.models.mano import mano_data_from_dict, random_mano_dict


@pytest.fixture(scope="module")
def data():
    return mano_data_from_dict(random_mano_dict(num_vertices=40, num_faces=10, seed=2), "right",
                               tip_vertex_ids=(0, 1, 2, 3, 4))


class TestMANOTable:
    def test_golden_entries(self):
        lower, upper = mano_joint_limits()
        assert lower.shape == upper.shape == (45,)
        assert (lower[0], upper[0]) == (0.0, 0.45)  # pose index 3: index1 x
        assert (lower[44], upper[44]) == (-1.57, 1.08)  # pose index 47: thumb3 z
        assert (lower[27], upper[27]) == (-0.5, -0.4)  # pose index 30: ring1 x
        assert np.all(lower <= upper)

    def test_frozen(self):
        lower, upper = mano_joint_limits()
        mask = mano_free_dof_mask()
        assert mask.sum() == 30 and len(MANO_FROZEN_POSE_INDICES) == 15
        frozen = np.asarray(MANO_FROZEN_POSE_INDICES) - 3
        assert not mask[frozen].any()
        assert np.all(lower[frozen] == 0) and np.all(upper[frozen] == 0)
        # every free DOF has a real range
        assert np.all(upper[mask] > lower[mask])


class TestLimitEnergy:
    def test_golden_l1_and_squared(self):
        pose = torch.tensor([[-0.5, 0.3, 2.0], [0.0, 0.0, 0.0]])
        lower = torch.tensor([0.0, 0.0, -1.0])
        upper = torch.tensor([1.0, 0.2, 1.5])
        # sample 0: 0.5 below, 0.1 above, 0.5 above; sample 1: inside except dof 1 (0 in [0, 0.2])
        torch.testing.assert_close(limit_energy(pose, lower, upper), torch.tensor([1.1, 0.0]))
        torch.testing.assert_close(limit_energy(pose, lower, upper, kind="squared"), torch.tensor([0.51, 0.0]))
        torch.testing.assert_close(limit_energy(pose, lower, upper, mask=[True, False, True]), torch.tensor([1.0, 0.0]))
        torch.testing.assert_close(limit_energy(pose, lower, upper, mask=[0.5, 1.0, 2.0]),
                                   torch.tensor([0.25 + 0.1 + 1.0, 0.0]))

    @pytest.mark.parametrize("B", [1, 2, 5])
    def test_shapes_and_zero_inside(self, B):
        lower, upper = mano_joint_limits()
        inside = torch.as_tensor((lower + upper) / 2).expand(B, 45)
        e = limit_energy(inside, lower, upper)
        assert e.shape == (B,) and torch.all(e == 0)
        # the flat hand (zero pose) violates some MANO limits (e.g. index1 z >= 0.1)
        assert limit_energy(torch.zeros(B, 45), lower, upper)[0] > 0
        # frozen DOFs masked out: moving them costs nothing
        moved = inside.clone()
        moved[:, np.asarray(MANO_FROZEN_POSE_INDICES) - 3] = 0.7
        assert torch.all(limit_energy(moved, lower, upper, mask=mano_free_dof_mask()) == 0)
        assert torch.all(limit_energy(moved, lower, upper) > 0)

    @pytest.mark.parametrize("kind", ["l1", "squared"])
    def test_gradient_vs_finite_differences(self, kind):
        lower, upper = mano_joint_limits()
        g = torch.Generator().manual_seed(0)
        pose = torch.randn(3, 45, generator=g, dtype=torch.float64)
        # keep away from the kinks, where the hinge is not differentiable
        lo, hi = torch.as_tensor(lower), torch.as_tensor(upper)
        near = ((pose - lo).abs() < 1e-3) | ((pose - hi).abs() < 1e-3)
        pose = torch.where(near, pose + 0.01, pose).requires_grad_(True)
        assert torch.autograd.gradcheck(lambda p: limit_energy(p, lower, upper, kind=kind), (pose,), eps=1e-6)

    def test_dtype_device_follow_pose(self):
        lower, upper = mano_joint_limits()
        e = limit_energy(torch.zeros(2, 45, dtype=torch.float64), lower, upper)
        assert e.dtype == torch.float64

    def test_bad_inputs(self):
        lower, upper = mano_joint_limits()
        with pytest.raises(ValueError, match=r"lower: expected shape \(44,\)"):
            limit_energy(torch.zeros(1, 44), lower, upper)
        with pytest.raises(ValueError, match=r"\(B, N\)"):
            limit_energy(torch.zeros(45), lower, upper)
        with pytest.raises(ValueError, match="kind"):
            limit_energy(torch.zeros(1, 45), lower, upper, kind="l2")


class TestAnatomical:
    def test_mano_equals_table(self, data):
        lower, upper = mano_joint_limits()
        lim = model_joint_limits(data)
        assert lim.shape == (15, 3, 2)
        np.testing.assert_array_equal(lim[..., 0].reshape(45), lower)
        pose = torch.randn(4, 45, dtype=torch.float64)
        torch.testing.assert_close(anatomical_limit_energy(pose, data, kind="squared"),
                                   limit_energy(pose, lower, upper, kind="squared"))

    def test_with_frames(self, data):
        """A pose built from anatomical angles is judged on those angles."""
        frames = roma.rotvec_to_rotmat(torch.randn(15, 3, dtype=torch.float64)).numpy()
        limits = np.zeros((15, 3, 2))
        limits[..., 0], limits[..., 1] = -0.1, 0.2
        d = replace(data, joint_frames=frames, joint_limits=limits)
        r_anat = torch.zeros(2, 15, 3, dtype=torch.float64)
        r_anat[0, 3, 0] = 0.5  # 0.3 above upper
        r_anat[1, 7, 2] = -0.4  # 0.3 below lower
        pose = HandModel(d, dtype=torch.float64).anatomical_to_pose(r_anat)
        e = anatomical_limit_energy(pose, d)
        torch.testing.assert_close(e, torch.tensor([0.3, 0.3], dtype=torch.float64))
        # the same pose judged in model axes would differ: the frames matter
        assert not torch.allclose(limit_energy(pose, limits[..., 0].reshape(45), limits[..., 1].reshape(45)), e)
        pose.requires_grad_(True)
        assert torch.autograd.gradcheck(lambda p: anatomical_limit_energy(p, d), (pose,), eps=1e-6)

    def test_bad_inputs(self, data):
        with pytest.raises(ValueError, match=r"\(B, 45\)"):
            anatomical_limit_energy(torch.zeros(1, 15, 3), data)
        with pytest.raises(ValueError, match="joint_limits"):
            model_joint_limits(replace(data, joint_limits=np.zeros((15, 3))))
