"""Closest points / signed distances (warp BVH) against analytic shapes."""

import numpy as np
import pytest
import trimesh

from honnotate.geometry.mesh_query import MeshQuery


def test_box_signed_distance_matches_analytic():
    box = trimesh.creation.box(extents=(0.2, 0.1, 0.05))
    q = MeshQuery(box.vertices, box.faces)
    rng = np.random.default_rng(0)
    pts = rng.uniform(-0.2, 0.2, (500, 3))
    half = np.array([0.1, 0.05, 0.025])
    d = np.abs(pts) - half
    outside = np.linalg.norm(np.maximum(d, 0), axis=1)
    inside = np.minimum(d.max(1), 0)
    analytic = -(outside + inside)  # > 0 inside
    res = q.closest(pts)
    np.testing.assert_allclose(res.signed_distance, analytic, atol=1e-5)
    # Closest points lie on the surface, normals are unit and outward.
    on = np.abs(np.abs(res.points) - half).min(1)
    assert np.all(on < 1e-5)
    np.testing.assert_allclose(np.linalg.norm(res.normal, axis=1), 1, atol=1e-5)
    out = res.signed_distance < -1e-3
    assert np.all(np.einsum("ij,ij->i", pts[out] - res.points[out], res.normal[out]) >= -1e-4)  # corners: any adjacent face


def test_sphere_sign_and_empty():
    s = trimesh.creation.icosphere(subdivisions=4, radius=0.05)
    q = MeshQuery(s.vertices, s.faces)
    sd = q.signed_distance(np.array([[0, 0, 0], [0, 0, 0.1], [0.03, 0, 0]]))
    np.testing.assert_allclose(sd, [0.05, -0.05, 0.02], atol=5e-4)
    assert q.closest(np.zeros((0, 3))).points.shape == (0, 3)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"\(V, 3\)"):
        MeshQuery(np.zeros((4, 2)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"\(F, 3\)"):
        MeshQuery(np.zeros((4, 3)), np.zeros((0, 3)))
