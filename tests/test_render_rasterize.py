"""Rasteriser: numba and torch backends against the per-pixel ray-casting reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from honnotate.render import (
    Fragments,
    project_to_screen,
    rasterize,
    rasterize_reference,
    rescale_intrinsics,
)

K = torch.tensor([[55.0, 0.0, 31.3], [0.0, 57.0, 23.6], [0.0, 0.0, 1.0]])
H, W = 48, 64


def _scene(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two overlapping spheres and a slanted box: occlusion, slivers, shared edges."""
    rng = np.random.default_rng(seed)
    parts = [
        trimesh.creation.icosphere(2, radius=0.05).apply_translation([0.01, -0.005, 0.32]),
        trimesh.creation.icosphere(1, radius=0.03).apply_translation([-0.03, 0.01, 0.27]),
        trimesh.creation.box(extents=(0.06, 0.02, 0.04)).apply_transform(
            trimesh.transformations.rotation_matrix(rng.uniform(0.3, 1.0), [1, 1, 0], [0, 0, 0])
        ).apply_translation([0.04, 0.03, 0.30]),
    ]
    mesh = trimesh.util.concatenate(parts)
    return torch.tensor(mesh.vertices, dtype=torch.float32), torch.tensor(mesh.faces)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_matches_ray_casting_reference(backend):
    verts, faces = _scene()
    frags = rasterize(project_to_screen(verts[None], K), faces, H, W, backend=backend)
    ref_id, ref_depth, margin = rasterize_reference(verts, faces, K, H, W)
    fid = frags.face_id[0].numpy()
    differ = fid != ref_id
    # only numerically tied pixels (centre on an edge, or equal depth) may differ
    tied = margin < 1e-4
    assert (differ & ~tied).sum() == 0
    assert differ.sum() <= 3
    both = (fid >= 0) & (ref_id >= 0) & ~differ
    assert both.sum() > 300
    np.testing.assert_allclose(frags.depth[0].numpy()[both], ref_depth[both], rtol=1e-5)
    assert np.isinf(frags.depth[0].numpy()[ref_id < 0]).all()


def test_backends_agree_and_batches():
    verts, faces = _scene(1)
    screens = torch.stack([verts, verts + torch.tensor([0.01, 0.0, 0.02]), verts * 1.1])
    for n in (1, 2, 5):
        scr = project_to_screen(screens[torch.arange(n) % 3], K)
        a = rasterize(scr, faces, H, W, backend="numba")
        b = rasterize(scr, faces, H, W, backend="torch")
        assert a.face_id.shape == (n, H, W) and a.bary.shape == (n, H, W, 3) and a.depth.shape == (n, H, W)
        assert a.face_id.dtype == torch.int64 and a.bary.dtype == torch.float32
        assert torch.equal(a.face_id, b.face_id)
        torch.testing.assert_close(a.depth, b.depth)
        torch.testing.assert_close(a.bary, b.bary, atol=1e-5, rtol=0)
    assert torch.equal(a.face_id[0], rasterize(scr[:1], faces, H, W).face_id[0])


def test_golden_single_triangle_barycentrics():
    # a triangle at constant depth 2 m covering a known pixel region
    verts = torch.tensor([[[2.0, 2.0, 2.0], [10.0, 2.0, 2.0], [2.0, 10.0, 2.0]]])
    faces = torch.tensor([[0, 1, 2]])
    frags = rasterize(verts, faces, 12, 12)  # screen space directly
    assert frags.face_id[0, 2, 2] == 0 and frags.face_id[0, 6, 6] == 0 and frags.face_id[0, 7, 7] == -1
    torch.testing.assert_close(frags.bary[0, 4, 6], torch.tensor([0.0, 0.5, 0.25]) + torch.tensor([0.25, 0, 0]))
    assert frags.mask.sum() == sum(range(1, 10))  # pixels with u + v <= 12 inside the 2..10 square
    assert torch.all(frags.depth[frags.mask] == 2.0)


def test_perspective_correct_depth_on_slanted_plane():
    # plane z = 0.5 + 0.5 x: depth at the pixel centre must lie on the plane exactly
    verts = torch.tensor([[-0.2, -0.2, 0.4], [0.2, -0.2, 0.6], [0.0, 0.3, 0.5]])
    faces = torch.tensor([[0, 1, 2]])
    frags = rasterize(project_to_screen(verts[None], K), faces, H, W)
    v, u = torch.nonzero(frags.mask[0], as_tuple=True)
    z = frags.depth[0, v, u]
    x = (u.float() - K[0, 2]) / K[0, 0] * z
    torch.testing.assert_close(z, 0.5 + 0.5 * x, atol=1e-5, rtol=0)


def test_culls_triangles_behind_camera():
    verts = torch.tensor([[[-0.1, -0.1, 0.5], [0.1, -0.1, 0.5], [0.0, 0.1, -0.2]]])
    frags = rasterize(project_to_screen(verts, K), torch.tensor([[0, 1, 2]]), H, W)
    assert not frags.mask.any()


def test_rescale_intrinsics_pixel_centres():
    K2 = rescale_intrinsics(K, (64, 48), (128, 96))
    # the centre of the image maps to the centre: (W-1)/2 -> (2W-1)/2
    assert float(K2[0, 2]) == pytest.approx((31.3 + 0.5) * 2 - 0.5)
    assert float(K2[0, 0]) == pytest.approx(110.0)


def test_bad_inputs():
    verts, faces = _scene()
    scr = project_to_screen(verts[None], K)
    with pytest.raises(ValueError, match=r"\(N, V, 3\)"):
        rasterize(scr[0], faces, H, W)
    with pytest.raises(ValueError, match="faces"):
        rasterize(scr, faces.float(), H, W)
    with pytest.raises(ValueError, match="outside"):
        rasterize(scr, faces + 10_000, H, W)
    with pytest.raises(ValueError, match="backend"):
        rasterize(scr, faces, H, W, backend="opengl")
    with pytest.raises(ValueError, match="positive"):
        rasterize(scr, faces, 0, W)
    with pytest.raises(ValueError, match=r"\(N, 3, 3\)"):
        project_to_screen(verts[None], torch.eye(3)[None].repeat(2, 1, 1))
    assert isinstance(rasterize(scr, faces, H, W), Fragments)
