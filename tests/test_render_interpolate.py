"""Differentiable barycentrics / interpolation and silhouette-edge antialiasing."""

from __future__ import annotations

import pytest
import torch
import trimesh

from honnotate.render import (
    antialias,
    interpolate,
    mesh_topology,
    project_to_screen,
    rasterize,
    screen_barycentrics,
)

K = torch.tensor([[40.0, 0.0, 11.5], [0.0, 40.0, 9.5], [0.0, 0.0, 1.0]], dtype=torch.float64)
H, W = 20, 24


def _mesh():
    m = trimesh.creation.icosphere(1, radius=0.05)
    v = torch.tensor(m.vertices, dtype=torch.float64) + torch.tensor([0.005, -0.003, 0.3], dtype=torch.float64)
    return v, torch.tensor(m.faces)


def test_screen_barycentrics_equal_fragments():
    v, f = _mesh()
    scr = project_to_screen(v[None], K)
    frags = rasterize(scr, f, H, W)
    b = screen_barycentrics(scr, f, frags)
    torch.testing.assert_close(b.float(), frags.bary, atol=1e-5, rtol=0)
    torch.testing.assert_close(b.sum(-1)[frags.mask], torch.ones(int(frags.mask.sum()), dtype=torch.float64))


def test_interpolated_depth_matches_rasterised_depth():
    v, f = _mesh()
    scr = project_to_screen(v[None], K)
    frags = rasterize(scr, f, H, W)
    z = interpolate(scr[..., 2:], f, frags, screen_barycentrics(scr, f, frags))[..., 0]
    torch.testing.assert_close(z[frags.mask].float(), frags.depth[frags.mask], rtol=1e-5, atol=0)
    assert torch.all(z[~frags.mask] == 0)


@pytest.mark.parametrize("n", [1, 2, 5])
def test_interpolate_shapes(n):
    v, f = _mesh()
    scr = project_to_screen(v[None].repeat(n, 1, 1) + 0.001 * torch.arange(n, dtype=torch.float64)[:, None, None], K)
    frags = rasterize(scr, f, H, W)
    assert interpolate(torch.rand(v.shape[0], 4, dtype=torch.float64), f, frags).shape == (n, H, W, 4)
    assert interpolate(torch.rand(n, v.shape[0], 2, dtype=torch.float64), f, frags).shape == (n, H, W, 2)


def test_interpolate_gradcheck_attrs_and_positions():
    v, f = _mesh()
    scr0 = project_to_screen(v[None], K)
    frags = rasterize(scr0, f, 8, 8)  # small crop of the image keeps gradcheck fast
    frags = rasterize(scr0 - torch.tensor([8.0, 6.0, 0.0], dtype=torch.float64), f, 8, 8)
    attrs = torch.rand(1, v.shape[0], 2, dtype=torch.float64, requires_grad=True)
    scr = (scr0 - torch.tensor([8.0, 6.0, 0.0], dtype=torch.float64)).requires_grad_(True)

    def fn(a, s):
        return interpolate(a, f, frags, screen_barycentrics(s, f, frags))

    assert torch.autograd.gradcheck(fn, (attrs, scr), eps=1e-6, atol=1e-6)


def test_antialias_gradcheck_and_continuity():
    v, f = _mesh()
    topo = mesh_topology(f)
    t = torch.zeros(3, dtype=torch.float64, requires_grad=True)

    def area(shift):
        scr = project_to_screen((v + shift)[None], K)
        frags = rasterize(scr, f, H, W)
        color = frags.mask[..., None].to(torch.float64)
        return antialias(color, frags, scr, f, topo).sum()

    # the soft area of a disc moves continuously and tracks the projected area
    a0 = area(t)
    a0.backward()
    proj_area = torch.pi * (0.05 * 40 / 0.3) ** 2
    assert float(a0.detach()) == pytest.approx(proj_area, rel=0.08)
    # d(area)/dz = -2 area / z for a fronto-parallel disc
    assert float(t.grad[2]) == pytest.approx(-2 * float(a0.detach()) / 0.3, rel=0.1)
    with torch.no_grad():
        for i in range(3):
            d = torch.zeros(3, dtype=torch.float64)
            d[i] = 2e-3
            fd = (area(d) - area(-d)) / 4e-3
            assert float(t.grad[i]) == pytest.approx(float(fd), rel=0.1, abs=0.15 * abs(float(t.grad[2])))
    with torch.no_grad():
        zs = torch.linspace(0.0, 0.01, 41, dtype=torch.float64)
        vals = torch.stack([area(torch.tensor([0.0, 0.0, float(z)], dtype=torch.float64)) for z in zs])
    steps = vals[1:] - vals[:-1]
    assert (steps[1:] - steps[:-1]).abs().max() < 0.05  # smooth: no pixel-sized jumps (a flip is 0.5)


def test_topology_of_closed_mesh():
    _, f = _mesh()
    topo = mesh_topology(f)
    assert topo.edges.shape[0] == f.shape[0] * 3 // 2
    assert (topo.edge_faces >= 0).all()
    assert topo.face_edges.shape == (f.shape[0], 3) and topo.face_neighbors.shape == (f.shape[0], 3)
    assert not (topo.face_neighbors == torch.arange(f.shape[0])[:, None]).any()


def test_bad_inputs():
    v, f = _mesh()
    scr = project_to_screen(v[None], K)
    frags = rasterize(scr, f, H, W)
    with pytest.raises(ValueError, match=r"\(V, C\)"):
        interpolate(torch.rand(3, v.shape[0], 2), f, frags)
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        interpolate(torch.rand(v.shape[0], 2), f, frags, torch.rand(1, H, W, 2))
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        antialias(torch.rand(1, H + 1, W, 1), frags, scr, f)
    with pytest.raises(ValueError, match=r"\(F, 3\)"):
        mesh_topology(f[:, :2])
