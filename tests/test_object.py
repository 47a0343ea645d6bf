"""Tests of honnotate.models.object: ObjectMesh, loading/writing, built-in procedural objects."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest
import torch

from honnotate.geometry import apply_rotvec
from honnotate.models.object import (
    HO3D_CORNER_EDGES,
    ObjectMesh,
    list_builtin_objects,
    load_object_mesh,
    make_object,
    write_object_mesh,
)

# name -> expected bounding-box extent (x, y, z), metres
EXPECTED_EXTENT = {
    "cracker_box": (0.060, 0.158, 0.210),
    "soup_can": (0.067, 0.067, 0.102),
    "mustard_bottle": (0.090, 0.060, 0.190),
    "mug": (0.040 + 0.038 + 0.028 + 0.0055, 0.080, 0.090),
    "sphere": (0.096, 0.096, 0.096),
}


@pytest.fixture(scope="module")
def objects() -> dict[str, ObjectMesh]:
    return {name: make_object(name) for name in list_builtin_objects()}


def _winding_number(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Generalised winding number (Van Oosterom-Strackee solid angles): ~1 inside, ~0 outside."""
    tri = vertices[faces]
    out = np.zeros(len(points))
    for s in range(0, len(points), 128):
        d = tri[None] - points[s:s + 128, None, None, :]  # (n, F, 3, 3)
        a, b, c = d[:, :, 0], d[:, :, 1], d[:, :, 2]
        la, lb, lc = (np.linalg.norm(x, axis=-1) for x in (a, b, c))
        num = np.einsum("nfi,nfi->nf", a, np.cross(b, c))
        den = la * lb * lc + (a * b).sum(-1) * lc + (a * c).sum(-1) * lb + (b * c).sum(-1) * la
        out[s:s + 128] = 2.0 * np.arctan2(num, den).sum(1) / (4 * np.pi)
    return out


def _point_mesh_distance(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Exact unsigned point-to-triangle-mesh distance, brute force (Ericson's regions)."""
    tri = vertices[faces]
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    ab, ac = b - a, c - a
    out = np.empty(len(points))
    for s in range(0, len(points), 128):
        p = points[s:s + 128, None, :]
        ap, bp, cp = p - a, p - b, p - c
        d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
        d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
        d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
        va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
        with np.errstate(divide="ignore", invalid="ignore"):
            v_ab, w_ac = d1 / (d1 - d3), d2 / (d2 - d6)
            w_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
            denom = 1.0 / (va + vb + vc)
        conds = [(d1 <= 0) & (d2 <= 0), (d3 >= 0) & (d4 <= d3), (vc <= 0) & (d1 >= 0) & (d3 <= 0),
                 (d6 >= 0) & (d5 <= d6), (vb <= 0) & (d2 >= 0) & (d6 <= 0),
                 (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0)]
        zero = np.zeros_like(d1)
        v = np.select(conds, [zero, zero + 1, v_ab, zero, zero, 1 - w_bc], vb * denom)
        w = np.select(conds, [zero, zero, zero, zero + 1, w_ac, w_bc], vc * denom)
        closest = a + v[..., None] * ab + w[..., None] * ac
        out[s:s + 128] = np.sqrt(((p - closest) ** 2).sum(-1)).min(1)
    return out


def _unit_cube(scale: float = 1.0) -> ObjectMesh:
    v = np.array(list(np.ndindex(2, 2, 2)), dtype=float) * scale
    f = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                  [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
    return ObjectMesh("cube", v, f, vertex_colors=np.tile([[10, 200, 30]], (8, 1)).astype(np.uint8))


# ----------------------------------------------------------------------------------------
# helpers sanity
# ----------------------------------------------------------------------------------------
def test_test_helpers_on_cube():
    cube = _unit_cube()
    w = _winding_number(np.array([[0.5, 0.5, 0.5], [1.5, 0.5, 0.5]]), cube.vertices, cube.faces)
    np.testing.assert_allclose(w, [1.0, 0.0], atol=1e-9)
    d = _point_mesh_distance(np.array([[0.5, 0.5, 0.5], [2.0, 0.5, 0.5], [2.0, 2.0, 0.5]]), cube.vertices, cube.faces)
    np.testing.assert_allclose(d, [0.5, 1.0, math.sqrt(2)])


# ----------------------------------------------------------------------------------------
# built-in objects
# ----------------------------------------------------------------------------------------
class TestBuiltin:
    def test_list(self):
        assert list_builtin_objects() == ["cracker_box", "soup_can", "mustard_bottle", "mug", "sphere"]
        with pytest.raises(ValueError, match="soup_can"):
            make_object("banana")

    @pytest.mark.parametrize("name", list(EXPECTED_EXTENT))
    def test_watertight_volume_size(self, objects, name):
        obj = objects[name]
        closed = obj.to_trimesh(textured=False)
        assert closed.is_watertight
        assert closed.volume > 0
        for part in closed.split(only_watertight=False):
            assert part.is_watertight and part.volume > 0  # every closed component oriented outward
        np.testing.assert_allclose(obj.extent, EXPECTED_EXTENT[name], atol=0.002)
        np.testing.assert_allclose(obj.vertices.min(0) + obj.vertices.max(0), 0.0, atol=1e-12)
        assert 1000 <= obj.num_faces <= 5000

    def test_volumes_golden(self, objects):
        assert objects["cracker_box"].to_trimesh(False).volume == pytest.approx(0.060 * 0.158 * 0.210, rel=1e-9)
        assert objects["soup_can"].to_trimesh(False).volume == pytest.approx(math.pi * 0.0335**2 * 0.102, rel=0.005)
        assert objects["sphere"].to_trimesh(False).volume == pytest.approx(4 / 3 * math.pi * 0.048**3, rel=0.01)

    @pytest.mark.parametrize("name", list(EXPECTED_EXTENT))
    def test_normals_point_outward(self, objects, name):
        closed = objects[name].to_trimesh(textured=False)
        for k, part in enumerate(closed.split(only_watertight=False)):
            mesh = ObjectMesh("part", np.asarray(part.vertices), np.asarray(part.faces))
            s = mesh.sample_surface(300, seed=k)
            outside = _winding_number(s.points + 2e-4 * s.normals, mesh.vertices, mesh.faces)
            inside = _winding_number(s.points - 2e-4 * s.normals, mesh.vertices, mesh.faces)
            assert (outside < 0.5).all(), f"{name}: {(outside >= 0.5).sum()} outward offsets are inside"
            assert (inside > 0.5).all(), f"{name}: {(inside <= 0.5).sum()} inward offsets are outside"

    @pytest.mark.parametrize("name", list(EXPECTED_EXTENT))
    def test_textures_and_colours(self, objects, name):
        obj = objects[name]
        assert obj.texture.dtype == np.uint8 and obj.texture.ndim == 3 and obj.texture.shape[2] == 3
        assert obj.uv.shape == (obj.num_vertices, 2) and (obj.uv >= 0).all() and (obj.uv <= 1).all()
        assert obj.vertex_colors.shape == (obj.num_vertices, 3)
        assert len(np.unique(obj.texture.reshape(-1, 3), axis=0)) >= 2  # a pattern, not a flat colour

    def test_deterministic(self, objects):
        again = make_object("mug")
        np.testing.assert_array_equal(again.vertices, objects["mug"].vertices)
        np.testing.assert_array_equal(again.texture, objects["mug"].texture)

    def test_vertex_normals(self, objects):
        sphere = objects["sphere"]
        n = sphere.vertex_normals()
        np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0)
        radial = sphere.vertices / np.linalg.norm(sphere.vertices, axis=1, keepdims=True)
        assert (np.einsum("ij,ij->i", n, radial) > 0.995).all()
        # Seam duplicates (same position) share one normal.
        rep = sphere.weld_map()
        dup = np.nonzero(rep != np.arange(len(rep)))[0]
        assert len(dup) > 0
        np.testing.assert_allclose(n[dup], n[rep[dup]])
        fn = sphere.face_normals()
        assert fn.shape == (sphere.num_faces, 3)

    def test_diameter(self, objects):
        assert objects["cracker_box"].diameter == pytest.approx(math.sqrt(0.06**2 + 0.158**2 + 0.21**2))
        assert objects["sphere"].diameter == pytest.approx(0.096, abs=1e-4)


# ----------------------------------------------------------------------------------------
# ObjectMesh methods
# ----------------------------------------------------------------------------------------
class TestObjectMesh:
    def test_bbox_corners_order(self, objects):
        obj = objects["mustard_bottle"]
        corners = obj.bbox_corners()
        lo, hi = obj.vertices.min(0), obj.vertices.max(0)
        assert corners.shape == (8, 3)
        for i in range(8):
            bits = ((i >> 2) & 1, (i >> 1) & 1, i & 1)  # x, y, z
            np.testing.assert_array_equal(corners[i], [(lo, hi)[b][k] for k, b in enumerate(bits)])
        np.testing.assert_array_equal(corners[0], lo)
        np.testing.assert_array_equal(corners[7], hi)

    def test_ho3d_edges_are_box_edges(self, objects):
        corners = objects["cracker_box"].bbox_corners()
        edges = {tuple(sorted(e)) for line in HO3D_CORNER_EDGES for e in zip(line[:-1], line[1:], strict=True)}
        assert len(edges) == 12
        for i, j in edges:
            assert int((corners[i] != corners[j]).sum()) == 1  # an edge changes one coordinate

    def test_transformed(self, objects):
        obj = objects["soup_can"]
        rv, t = np.array([0.3, -0.2, 1.0]), np.array([0.1, 0.0, 0.5])
        moved = obj.transformed(rv, t)
        ref = apply_rotvec(torch.from_numpy(obj.vertices), torch.from_numpy(rv), torch.from_numpy(t)).numpy()
        np.testing.assert_allclose(moved.vertices, ref)
        assert moved.texture is obj.texture and moved.name == obj.name
        with pytest.raises(ValueError, match=r"\(3,\)"):
            obj.transformed(np.zeros(4), t)

    def test_mustard_bottle_has_no_half_turn_symmetry(self, objects):
        # the cap leans to one side as on the YCB bottle, so a half turn about the axis is a
        # different pose (ADD is meaningful); the body alone would be symmetric
        from scipy.spatial import cKDTree

        v = objects["mustard_bottle"].vertices
        turned = v * np.array([-1.0, -1.0, 1.0])
        gap = cKDTree(v).query(turned)[0]
        assert gap.max() > 0.03
        body = v[:, 2] < v[:, 2].min() + 0.1
        assert cKDTree(v[body]).query(turned[body])[0].max() < 1e-3

    @pytest.mark.parametrize("name", ["soup_can", "mustard_bottle"])
    def test_decimated_keeps_surface(self, objects, name):
        obj = objects[name]
        target = obj.num_faces // 2
        dec = obj.decimated(target)
        assert 0.8 * target <= dec.num_faces <= 1.05 * target
        assert dec.to_trimesh(textured=False).is_watertight
        assert dec.uv is None and dec.vertex_colors.shape == (dec.num_vertices, 3)
        closed = obj.welded()
        d1 = _point_mesh_distance(obj.sample_surface(600, seed=1).points, dec.vertices, dec.faces)
        d2 = _point_mesh_distance(dec.sample_surface(600, seed=2).points, closed.vertices, closed.faces)
        assert max(d1.max(), d2.max()) < 1.5e-3

    def test_decimated_small_mesh_and_bad_target(self):
        cube = _unit_cube()
        assert cube.decimated(100).num_faces == 12
        with pytest.raises(ValueError, match="target_faces"):
            cube.decimated(0)

    def test_welded(self, objects):
        obj = objects["cracker_box"]
        w = obj.welded()
        assert w.num_vertices < obj.num_vertices and w.num_faces == obj.num_faces
        assert w.uv is None and w.vertex_colors is not None

    def test_to_trimesh_textured(self, objects):
        tm = objects["sphere"].to_trimesh()
        assert tm.visual.kind == "texture" and len(tm.vertices) == objects["sphere"].num_vertices
        assert _unit_cube().to_trimesh().visual.kind == "vertex"

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            (dict(vertices=np.zeros((4, 2))), r"\(V, 3\)"),
            (dict(faces=np.array([[0, 1, 9]])), "indices"),
            (dict(faces=np.zeros((2, 3))), "integer"),
            (dict(vertex_colors=np.zeros((3, 3), np.uint8)), "vertex_colors"),
            (dict(uv=np.zeros((8, 2))), "together"),
            (dict(uv=np.zeros((8, 2)), texture=np.zeros((4, 4), np.uint8)), "texture"),
            (dict(vertices=np.full((8, 3), np.nan)), "NaN"),
        ],
    )
    def test_validation(self, kwargs, match):
        cube = _unit_cube()
        with pytest.raises(ValueError, match=match):
            dataclasses.replace(cube, **kwargs)


# ----------------------------------------------------------------------------------------
# I/O
# ----------------------------------------------------------------------------------------
class TestIO:
    def test_obj_texture_roundtrip(self, objects, tmp_path):
        obj = objects["mustard_bottle"]
        path = tmp_path / "006_mustard_bottle" / "textured_simple.obj"
        write_object_mesh(obj, path)
        assert path.with_suffix(".mtl").is_file() and path.with_suffix(".png").is_file()
        back = load_object_mesh(path)
        assert back.name == "006_mustard_bottle"
        np.testing.assert_allclose(back.vertices, obj.vertices, atol=1e-8)
        np.testing.assert_array_equal(back.faces, obj.faces)
        np.testing.assert_allclose(back.uv, obj.uv, atol=1e-8)
        np.testing.assert_array_equal(back.texture, obj.texture)
        np.testing.assert_array_equal(back.vertex_colors, obj.vertex_colors)

    def test_obj_vertex_colour_roundtrip(self, tmp_path):
        cube = _unit_cube(0.1)
        write_object_mesh(cube, tmp_path / "cube.obj")
        back = load_object_mesh(tmp_path / "cube.obj", name="c")
        assert back.name == "c"
        np.testing.assert_allclose(back.vertices, cube.vertices, atol=1e-9)
        np.testing.assert_array_equal(back.vertex_colors, cube.vertex_colors)

    def test_ply_roundtrip(self, objects, tmp_path):
        obj = objects["soup_can"]
        write_object_mesh(obj, tmp_path / "can.ply")
        back = load_object_mesh(tmp_path / "can.ply")
        assert back.name == "can"
        np.testing.assert_allclose(back.vertices, obj.vertices, atol=1e-6)  # float32 in the ply
        np.testing.assert_array_equal(back.faces, obj.faces)
        np.testing.assert_array_equal(back.vertex_colors, obj.vertex_colors)

    def test_millimetre_mesh_warns_and_auto_scales(self, tmp_path):
        path = tmp_path / "box_mm.obj"
        write_object_mesh(_unit_cube(150.0), path)  # a 150 mm cube written in millimetres
        with pytest.warns(UserWarning, match=r"box_mm\.obj.*scale=0\.001"):
            raw = load_object_mesh(path)
        assert raw.extent.max() == pytest.approx(150.0)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            auto = load_object_mesh(path, scale="auto")
            explicit = load_object_mesh(path, scale=0.001)
        np.testing.assert_allclose(auto.extent, [0.15] * 3)
        np.testing.assert_allclose(explicit.vertices, auto.vertices)

    def test_metre_mesh_does_not_warn(self, tmp_path):
        write_object_mesh(_unit_cube(0.2), tmp_path / "box.obj")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            obj = load_object_mesh(tmp_path / "box.obj", scale="auto")
        np.testing.assert_allclose(obj.extent, [0.2] * 3)

    def test_errors(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="missing.obj"):
            load_object_mesh(tmp_path / "missing.obj")
        bad = tmp_path / "bad.ply"
        bad.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 99\nproperty float x\nend_header\n\x00")
        with pytest.raises(ValueError, match="bad.ply"):
            load_object_mesh(bad)
        points = tmp_path / "points.obj"
        points.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
        with pytest.raises(ValueError, match="points.obj"):
            load_object_mesh(points)
        write_object_mesh(_unit_cube(0.1), tmp_path / "ok.obj")
        with pytest.raises(ValueError, match="scale"):
            load_object_mesh(tmp_path / "ok.obj", scale=-1)
        with pytest.raises(ValueError, match=r"\.obj or \.ply"):
            write_object_mesh(_unit_cube(), tmp_path / "x.stl")


def test_make_object_accepts_ycb_ids():
    from honnotate.models.object import make_object

    assert make_object("006_mustard_bottle").name == make_object("mustard_bottle").name
    with pytest.raises(ValueError, match="unknown built-in object"):
        make_object("999_toaster")
