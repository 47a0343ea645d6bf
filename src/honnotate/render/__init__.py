"""honnotate.render: differentiable rasteriser for silhouettes, depth and shaded RGB.

nvdiffrast-style split, CPU (numba) and any torch device (vectorised torch):

- :func:`rasterize` -> :class:`Fragments` (visible face id, barycentrics, depth): no gradient.
- :func:`screen_barycentrics` / :func:`interpolate`: differentiable w.r.t. vertex positions
  (with the visible face fixed) and attributes.
- :func:`antialias`: blends images across visible silhouette edges; gradients w.r.t. the
  edge vertices' screen positions (the source of silhouette gradients).
- :class:`Renderer` / :func:`render_packed`: labelled meshes x frames x cameras -> labels,
  per-label silhouettes with mutual occlusion, depth, shaded RGB.
- :func:`rasterize_reference`: slow per-pixel ray casting, the reference twin in tests.
"""

from honnotate.render.antialias import MeshTopology, antialias, mesh_topology
from honnotate.render.interpolate import foreground_index, interpolate, screen_barycentrics
from honnotate.render.rasterize import Fragments, project_to_screen, rasterize, rescale_intrinsics
from honnotate.render.reference import rasterize_reference
from honnotate.render.renderer import (
    HAND_LABEL,
    OBJECT_LABEL,
    Renderer,
    RenderOutput,
    SceneMesh,
    render_packed,
    vertex_normals,
)

__all__ = [
    "Fragments",
    "project_to_screen",
    "rasterize",
    "rescale_intrinsics",
    "screen_barycentrics",
    "interpolate",
    "foreground_index",
    "MeshTopology",
    "mesh_topology",
    "antialias",
    "rasterize_reference",
    "SceneMesh",
    "RenderOutput",
    "Renderer",
    "render_packed",
    "vertex_normals",
    "HAND_LABEL",
    "OBJECT_LABEL",
]
