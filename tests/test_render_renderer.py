"""Renderer: labels with mutual occlusion, depth, RGB, gradients vs finite differences, pose recovery."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import roma
import torch
import trimesh

from honnotate.render import HAND_LABEL, OBJECT_LABEL, Renderer, SceneMesh

H, W = 36, 48


@dataclass(frozen=True)
class _Cam:  # duck-typed like honnotate.geometry.Camera
    K: torch.Tensor
    cam_to_world: torch.Tensor
    width: int
    height: int

    def world_to_cam(self) -> torch.Tensor:
        return torch.linalg.inv(self.cam_to_world)


def _cam(dtype=torch.float64, yaw: float = 0.0) -> _Cam:
    K = torch.tensor([[50.0, 0, 23.5], [0, 50.0, 17.5], [0, 0, 1]], dtype=dtype)
    c2w = torch.eye(4, dtype=dtype)
    if yaw:
        # orbit around the point (0, 0, 0.35) looking at it
        R = roma.rotvec_to_rotmat(torch.tensor([0.0, yaw, 0.0], dtype=dtype))
        c2w[:3, :3] = R
        c2w[:3, 3] = torch.tensor([0.0, 0.0, 0.35], dtype=dtype) - R @ torch.tensor([0.0, 0.0, 0.35], dtype=dtype)
    return _Cam(K, c2w, W, H)


def _box(dtype=torch.float64):
    m = trimesh.creation.box(extents=(0.07, 0.045, 0.03)).subdivide()
    return torch.tensor(m.vertices, dtype=dtype), torch.tensor(m.faces)


def _sphere(dtype=torch.float64, radius=0.02):
    m = trimesh.creation.icosphere(2, radius=radius)
    return torch.tensor(m.vertices, dtype=dtype), torch.tensor(m.faces)


def test_mutual_occlusion_and_depth():
    box_v, box_f = _box()
    sph_v, sph_f = _sphere()
    cam = _cam()
    r = Renderer(background_depth=3.0)
    # "hand" sphere behind the box's left edge, second sphere in front of its right edge
    hand = SceneMesh(torch.cat([sph_v + torch.tensor([-0.035, 0, 0.40]), sph_v + torch.tensor([0.035, 0, 0.30])]),
                     torch.cat([sph_f, sph_f + sph_v.shape[0]]), HAND_LABEL)
    obj = SceneMesh(box_v + torch.tensor([0.0, 0.0, 0.35]), box_f, OBJECT_LABEL)
    out = r.render([obj, hand], [cam])
    alone_hand = r.render([hand], [cam])
    alone_obj = r.render([obj], [cam])
    lab = out.labels[0, 0]
    hand_alone = alone_hand.labels[0, 0] == HAND_LABEL
    obj_alone = alone_obj.labels[0, 0] == OBJECT_LABEL
    # pixels where both project: nearer wins, per sphere
    left = torch.arange(W)[None, :] < W // 2
    both = hand_alone & obj_alone
    assert (both & left).sum() > 5 and (both & ~left).sum() > 5
    assert torch.all(lab[both & left] == OBJECT_LABEL)  # object hides the back sphere
    assert torch.all(lab[both & ~left] == HAND_LABEL)  # front sphere hides the object
    # the hand silhouette excludes hidden pixels; label silhouettes partition the image
    sil = out.silhouettes[0, 0]
    assert sil.shape == (3, H, W)
    assert float(sil[HAND_LABEL][both & left].max()) < 0.51
    torch.testing.assert_close(sil.sum(0), torch.ones(H, W, dtype=torch.float64))
    # depth: background value, and camera z of the nearer surface
    bg = lab == 0
    assert torch.all(out.depth[0, 0][bg & (sil[0] > 0.999)] == 3.0)
    front = both & ~left & (sil[HAND_LABEL] > 0.999)
    assert torch.all(out.depth[0, 0][front] < 0.31)


@pytest.mark.parametrize("b,c", [(1, 1), (2, 3), (5, 2)])
def test_shapes_frames_by_cameras(b, c):
    box_v, box_f = _box(torch.float32)
    verts = box_v[None] + torch.tensor([0.0, 0.0, 0.35]) + 0.005 * torch.randn(b, 1, 3)
    cams = [_cam(torch.float32, yaw=0.1 * i) for i in range(c)]
    out = Renderer().render([SceneMesh(verts, box_f, OBJECT_LABEL)], cams, rgb=True, width=32, height=24)
    assert out.labels.shape == (b, c, 24, 32) and out.labels.dtype == torch.int64
    assert out.silhouettes.shape == (b, c, 2, 24, 32) and out.silhouettes.dtype == torch.float32
    assert out.depth.shape == (b, c, 24, 32) and out.rgb.shape == (b, c, 24, 32, 3)
    assert out.rgb.min() >= 0 and out.rgb.max() <= 1 and out.rgb.sum() > 0
    # each (frame, camera) image equals rendering it alone
    single = Renderer().render([SceneMesh(verts[-1], box_f, OBJECT_LABEL)], [cams[-1]], width=32, height=24)
    assert torch.equal(single.labels[0, 0], out.labels[-1, -1])


def test_texture_and_vertex_colors():
    v, f = _box(torch.float32)
    uv = (v[:, :2] - v[:, :2].min(0).values) / (v[:, :2].max(0).values - v[:, :2].min(0).values)
    tex = torch.zeros(8, 8, 3)
    tex[..., 0] = 1.0  # pure red texture
    red = Renderer(ambient=1.0).render(
        [SceneMesh(v + torch.tensor([0, 0, 0.35]), f, OBJECT_LABEL, uv=uv, texture=tex)], [_cam(torch.float32)], rgb=True
    )
    inside = red.labels[0, 0] == OBJECT_LABEL
    torch.testing.assert_close(red.rgb[0, 0][inside & (red.silhouettes[0, 0, 1] > 0.999)].mean(0), torch.tensor([1.0, 0, 0]))
    green = Renderer(ambient=1.0).render(
        [SceneMesh(v + torch.tensor([0, 0, 0.35]), f, OBJECT_LABEL, vertex_colors=torch.tensor([0.0, 1.0, 0.0]).expand(v.shape[0], 3))],
        [_cam(torch.float32)], rgb=True,
    )
    assert float(green.rgb[0, 0][inside][:, 1].min()) > 0.0 and float(green.rgb[0, 0][inside][:, 0].max()) < 1e-6


def _pose_losses(v0, f, cams, target, rotvec, transl, renderer):
    verts = v0 @ roma.rotvec_to_rotmat(rotvec).T + transl
    out = renderer.render([SceneMesh(verts, f, OBJECT_LABEL)], cams)
    sil = ((out.silhouettes[:, :, 1] - target.silhouettes[:, :, 1]) ** 2).sum()
    depth = ((out.depth - target.depth) ** 2).sum()
    return sil, depth


def _ellipsoid(dtype=torch.float64):
    m = trimesh.creation.icosphere(3, radius=1.0)
    return torch.tensor(m.vertices, dtype=dtype) * torch.tensor([0.04, 0.025, 0.018], dtype=dtype), torch.tensor(m.faces)


def test_silhouette_and_depth_gradients_match_finite_differences():
    # a smooth mesh: silhouette corners are obtuse, where the pixel-pair blend is most accurate
    v0, f = _ellipsoid()
    cams = [_cam()]
    r = Renderer(background_depth=0.6)
    target = r.render([SceneMesh(v0 + torch.tensor([0.012, 0.004, 0.35]), f, OBJECT_LABEL)], cams)
    rotvec = torch.tensor([0.05, -0.08, 0.1], dtype=torch.float64, requires_grad=True)
    transl = torch.tensor([0.0, 0.0, 0.36], dtype=torch.float64, requires_grad=True)
    for which in (0, 1):
        loss = _pose_losses(v0, f, cams, target, rotvec, transl, r)[which]
        g_rot, g_tr = torch.autograd.grad(loss, (rotvec, transl))
        with torch.no_grad():
            # steps of ~0.01 px: the antialiased loss is piecewise smooth, with rare jumps where a
            # pixel centre crosses an edge next to a silhouette vertex (see render.antialias)
            for var, grad, h in ((rotvec, g_rot, 5e-4), (transl, g_tr, 5e-5)):
                for i in range(3):
                    d = torch.zeros(3, dtype=torch.float64)
                    d[i] = h
                    args_p = (rotvec + d, transl) if var is rotvec else (rotvec, transl + d)
                    args_m = (rotvec - d, transl) if var is rotvec else (rotvec, transl - d)
                    fd = (_pose_losses(v0, f, cams, target, *args_p, r)[which]
                          - _pose_losses(v0, f, cams, target, *args_m, r)[which]) / (2 * h)
                    scale = grad.abs().max()
                    # sign right and magnitude within 10% (components small relative to the
                    # largest one are compared with that 10% of the largest as tolerance)
                    assert float(grad[i]) == pytest.approx(float(fd), rel=0.1, abs=0.1 * float(scale)), (which, i)


def test_recovers_object_pose_from_its_own_render():
    torch.manual_seed(0)
    v0, f = _box(torch.float32)
    cams = [_cam(torch.float32), _cam(torch.float32, yaw=0.6)]
    r = Renderer(background_depth=0.6)
    rot_true = torch.tensor([0.3, -0.2, 0.4])
    tr_true = torch.tensor([0.005, -0.003, 0.35])
    target = r.render([SceneMesh(v0 @ roma.rotvec_to_rotmat(rot_true).T + tr_true, f, OBJECT_LABEL)], cams)
    # start 2 cm and 15 degrees away
    d_axis = torch.nn.functional.normalize(torch.tensor([1.0, -2.0, 0.5]), dim=0)
    rot_start = roma.rotmat_to_rotvec(roma.rotvec_to_rotmat(d_axis * math.radians(15)) @ roma.rotvec_to_rotmat(rot_true))
    tr_start = tr_true + 0.02 * torch.nn.functional.normalize(torch.tensor([1.0, 1.0, -1.0]), dim=0)
    rotvec = rot_start.clone().requires_grad_(True)
    transl = tr_start.clone().requires_grad_(True)
    opt = torch.optim.Adam([rotvec, transl], lr=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 200, eta_min=1e-5)
    for _ in range(200):
        opt.zero_grad()
        sil, depth = _pose_losses(v0, f, cams, target, rotvec, transl, r)
        (sil + 100.0 * depth).backward()
        opt.step()
        sched.step()
    err_t = float((transl.detach() - tr_true).norm())
    R_err = roma.rotvec_to_rotmat(rotvec.detach()) @ roma.rotvec_to_rotmat(rot_true).T
    err_r = math.degrees(float(roma.rotmat_to_rotvec(R_err).norm()))
    assert err_t < 1e-3 and err_r < 0.5, (err_t, err_r)


def test_bad_inputs():
    v, f = _box(torch.float32)
    r = Renderer()
    with pytest.raises(ValueError, match="label"):
        r.render([SceneMesh(v, f, 0)], [_cam(torch.float32)])
    with pytest.raises(ValueError, match=r"\(V, 3\)"):
        r.render([SceneMesh(v[:, :2], f, 1)], [_cam(torch.float32)])
    with pytest.raises(ValueError, match="width and height"):
        r.render([SceneMesh(v, f, 1)], [_cam(torch.float32)], width=10)
    with pytest.raises(ValueError, match="at least one"):
        r.render([], [_cam(torch.float32)])


def test_mesh_crossing_the_image_border():
    """Regression: antialiasing must not index past the image when silhouettes leave it."""
    from honnotate.geometry import Camera

    cam = Camera.from_intrinsics(300.0, 300.0, 159.5, 119.5, 320, 240)
    s = trimesh.creation.icosphere(subdivisions=3, radius=0.1)
    for shift in ([0.2, 0.0, 0.5], [-0.2, 0.15, 0.5], [0.25, -0.1, 0.5]):
        v = (torch.as_tensor(s.vertices, dtype=torch.float32) + torch.tensor(shift)).requires_grad_(True)
        r = Renderer().render([SceneMesh(v, torch.as_tensor(s.faces), 1)], [cam])
        (r.silhouettes[:, :, 1].sum() + r.depth.sum()).backward()
        assert torch.isfinite(v.grad).all()
        assert 0 < float(r.silhouettes[0, 0, 1].sum()) < 320 * 240


def test_directional_light():
    """A distant light (world frame) brightens the side facing it and leaves the side away from
    it at ambient; it follows the world, not the camera; faces lit from either side; per frame."""
    v, f = _sphere(radius=0.03)
    centre = torch.tensor([0.0, 0.0, 0.35], dtype=torch.float64)
    albedo, ambient = 0.8, 0.2
    r = Renderer(antialiased=False, ambient=ambient)

    def render(verts, faces, light, cam=None):
        mesh = SceneMesh(verts, faces, OBJECT_LABEL, vertex_colors=torch.full((v.shape[0], 3), albedo, dtype=torch.float64))
        out = r.render([mesh], [cam or _cam()], rgb=True, light_dir=light)
        return out.rgb[0, 0].mean(-1), out.labels[0, 0] == OBJECT_LABEL

    from_right, inside = render(v + centre, f, torch.tensor([1.0, 0.0, 0.0]))  # world +x: image right
    from_left, _ = render(v + centre, f, torch.tensor([-1.0, 0.0, 0.0]))
    cols = torch.arange(W)[None].expand(H, W)
    mid = cols[inside].double().mean()
    right, left = inside & (cols > mid + 2), inside & (cols < mid - 2)
    assert from_right[right].mean() > from_right[left].mean() + 0.3
    assert from_left[left].mean() > from_left[right].mean() + 0.3
    # Facing away from the light: ambient only (golden value); the side facing it reaches albedo.
    assert torch.allclose(from_right[left], torch.full_like(from_right[left], albedo * ambient))
    back, _ = render(v + centre, f, torch.tensor([0.0, 0.0, 2.0]))  # behind the sphere, any length
    torch.testing.assert_close(back[inside], torch.full_like(back[inside], albedo * ambient))
    front, _ = render(v + centre, f, torch.tensor([0.6, 0.0, -0.8]))  # toward the camera, from the right
    assert float(front[inside].max()) > 0.97 * albedo
    # Two-sided: flipped faces (inward normals) shade the same.
    flipped, _ = render(v + centre, f[:, [0, 2, 1]], torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(flipped, from_right)
    # World frame: turning sphere, camera and light together about the centre changes nothing.
    R = roma.rotvec_to_rotmat(torch.tensor([0.0, 0.7, 0.0], dtype=torch.float64))
    turned, _ = render((v @ R.T) + centre, f, R @ torch.tensor([1.0, -0.5, -0.3], dtype=torch.float64), _cam(yaw=0.7))
    same, _ = render(v + centre, f, torch.tensor([1.0, -0.5, -0.3]))
    torch.testing.assert_close(turned, same, atol=1e-6, rtol=0)
    # Per-frame directions (B, 3).
    mesh2 = SceneMesh((v + centre)[None].expand(2, -1, -1), f, OBJECT_LABEL,
                      vertex_colors=torch.full((v.shape[0], 3), albedo, dtype=torch.float64))
    both = r.render([mesh2], [_cam()], rgb=True, light_dir=torch.tensor([[1.0, 0, 0], [-1.0, 0, 0]])).rgb.mean(-1)
    torch.testing.assert_close(both[0, 0], from_right)
    torch.testing.assert_close(both[1, 0], from_left)
    with pytest.raises(ValueError, match="light_dir"):
        r.render([mesh2], [_cam()], rgb=True, light_dir=torch.zeros(3, 3))
