"""Scene renderer: labelled meshes (hand = 2, object = 1) seen by several cameras, in one call.

:func:`render_packed` is the pure core on raw tensors; :class:`Renderer` is the shell that
packs :class:`SceneMesh` objects and reads cameras (a ``CameraBatch``, a ``Camera`` or a list
of them, duck-typed on ``.K``, ``.world_to_cam`` (attribute or method), ``.width``, ``.height``).

Outputs (B frames x C cameras, one rasterisation of all B*C images):
- ``labels`` (B, C, H, W) int64: label of the visible face, 0 background. Mutual occlusion is
  exact: a hand pixel hidden by the object is object, and the other way round. No gradient.
- ``silhouettes`` (B, C, L + 1, H, W): channel k is the soft silhouette of label k (channel 0 is
  background), antialiased across visible silhouette edges; gradients w.r.t. vertices.
- ``depth`` (B, C, H, W) metres, camera z, ``background_depth`` where nothing is visible;
  gradients w.r.t. vertices (interior: interpolation; contours: antialiasing).
- ``rgb`` (B, C, H, W, 3) in [0, 1], Lambert shading over vertex colours or a texture
  (optional): ambient plus a headlight, or plus a directional light given in the world frame
  (``light_dir``); gradients w.r.t. colours and vertices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from honnotate.render.antialias import MeshTopology, antialias, mesh_topology
from honnotate.render.interpolate import foreground_index
from honnotate.render.rasterize import Fragments, project_to_screen, rasterize, rescale_intrinsics

__all__ = ["SceneMesh", "RenderOutput", "Renderer", "render_packed", "vertex_normals", "HAND_LABEL", "OBJECT_LABEL"]

OBJECT_LABEL = 1
HAND_LABEL = 2
_DEFAULT_COLORS = {OBJECT_LABEL: (0.55, 0.62, 0.80), HAND_LABEL: (0.93, 0.72, 0.60)}


@dataclass(frozen=True)
class SceneMesh:
    """One labelled mesh of a scene.

    Attributes:
        vertices: (B, V, 3) or (V, 3) float, metres, world frame (pose already applied).
        faces: (F, 3) integer.
        label: integer >= 1 (hand 2, object 1).
        vertex_colors: optional (V, 3) or (B, V, 3) in [0, 1] (RGB only).
        uv: optional (V, 2) texture coordinates in [0, 1], v up (OpenGL/OBJ); with ``texture``.
        texture: optional (Ht, Wt, 3) float in [0, 1] or uint8.
    """

    vertices: torch.Tensor
    faces: torch.Tensor
    label: int
    vertex_colors: torch.Tensor | None = None
    uv: torch.Tensor | None = None
    texture: torch.Tensor | None = None


@dataclass(frozen=True)
class RenderOutput:
    """See the module docstring for shapes, units and gradients."""

    labels: torch.Tensor
    silhouettes: torch.Tensor | None
    depth: torch.Tensor | None
    rgb: torch.Tensor | None
    fragments: Fragments


def vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals.

    Args:
        verts: (N, V, 3) float, any frame. faces: (F, 3) integer.

    Returns:
        (N, V, 3) unit normals in the same frame (counter-clockwise faces seen from outside
        give outward normals); 0 for unreferenced vertices.
    """
    faces = faces.long()
    tri = verts[:, faces]  # (N, F, 3, 3)
    fn = torch.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1)
    vn = torch.zeros_like(verts)
    for k in range(3):
        vn = vn.index_add(1, faces[:, k], fn)
    return F.normalize(vn, dim=-1, eps=1e-12)


def _project(verts_world, K, world_to_cam):
    """(B, V, 3) world x C cameras -> camera-frame (B*C, V, 3) and screen (B*C, V, 3)."""
    b, v, _ = verts_world.shape
    c = K.shape[0]
    rot = world_to_cam[:, :3, :3].to(verts_world.dtype)
    trans = world_to_cam[:, :3, 3].to(verts_world.dtype)
    cam = torch.einsum("cij,bvj->bcvi", rot, verts_world) + trans[None, :, None, :]
    cam = cam.reshape(b * c, v, 3)
    Kn = K.to(verts_world.dtype)[None].expand(b, c, 3, 3).reshape(b * c, 3, 3)
    return cam, project_to_screen(cam, Kn)


def render_packed(
    verts_world: torch.Tensor,
    faces: torch.Tensor,
    face_labels: torch.Tensor,
    K: torch.Tensor,
    world_to_cam: torch.Tensor,
    height: int,
    width: int,
    *,
    num_labels: int,
    background_depth: float = 2.0,
    near: float = 1e-3,
    backend: str = "auto",
    topology: MeshTopology | None = None,
    vertex_colors: torch.Tensor | None = None,
    textures: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = (),
    with_silhouettes: bool = True,
    with_depth: bool = True,
    with_rgb: bool = False,
    antialiased: bool = True,
    ambient: float = 0.35,
    light_dir: torch.Tensor | None = None,
) -> RenderOutput:
    """Render one packed mesh with per-face labels for B frames x C cameras.

    Args:
        verts_world: (B, V, 3) float, metres, world frame.
        faces: (F, 3) integer; face_labels: (F,) integer in [1, num_labels].
        K: (C, 3, 3) intrinsics for ``height`` x ``width`` pixel images.
        world_to_cam: (C, 4, 4) rigid transforms, world -> camera (OpenCV).
        num_labels: L, the largest label (silhouettes have L + 1 channels).
        background_depth: depth in metres written where nothing is visible.
        vertex_colors: (V, 3) or (B, V, 3) albedo in [0, 1] (RGB only).
        textures: (face_mask (F,) bool, uv (V, 2), texture (Ht, Wt, 3)) per textured part.
        antialiased: blend silhouettes / depth / RGB across visible silhouette edges (the
            source of silhouette gradients); False gives hard images.
        ambient: ambient fraction of the Lambert shading (RGB only).
        light_dir: None for a headlight (light from each camera's centre), else (3,) or (B, 3)
            direction toward a distant light, world frame (any length; normalised), per frame:
            RGB = albedo * (ambient + (1 - ambient) * max(0, n . l)) with the surface normal n
            turned toward the camera (two-sided).

    Returns:
        :class:`RenderOutput` with (B, C, ...) images.
    """
    if verts_world.ndim != 3 or verts_world.shape[-1] != 3:
        raise ValueError(f"verts_world must be (B, V, 3), got {tuple(verts_world.shape)}")
    if K.ndim != 3 or K.shape[1:] != (3, 3):
        raise ValueError(f"K must be (C, 3, 3), got {tuple(K.shape)}")
    if world_to_cam.shape != (K.shape[0], 4, 4):
        raise ValueError(f"world_to_cam must be (C={K.shape[0]}, 4, 4), got {tuple(world_to_cam.shape)}")
    if face_labels.shape != (faces.shape[0],):
        raise ValueError(f"face_labels must be (F={faces.shape[0]},), got {tuple(face_labels.shape)}")
    device, dtype = verts_world.device, verts_world.dtype
    b, c = verts_world.shape[0], K.shape[0]
    light_cam = None
    if light_dir is not None and with_rgb:
        light = torch.as_tensor(light_dir, dtype=dtype, device=device)
        if light.shape not in ((3,), (b, 3)):
            raise ValueError(f"light_dir must be (3,) or (B={b}, 3), got {tuple(light.shape)}")
        light = F.normalize(light.expand(b, 3), dim=-1, eps=1e-12)
        rot = world_to_cam[:, :3, :3].to(device, dtype)
        light_cam = torch.einsum("cij,bj->bci", rot, light).reshape(b * c, 3)  # per image, camera frame
    faces = faces.long().to(device)
    face_labels = face_labels.long().to(device)
    cam, screen = _project(verts_world, K.to(device), world_to_cam.to(device))
    frags = rasterize(screen, faces, height, width, near=near, backend=backend)
    frags = Fragments(frags.face_id.to(device), frags.bary.to(device), frags.depth.to(device))
    n = b * c
    hw = height * width
    fid = frags.face_id
    labels = torch.where(fid >= 0, face_labels[fid.clamp(min=0)], torch.zeros_like(fid))

    pix, img, face = foreground_index(frags)
    channels = []
    if with_silhouettes:
        channels.append(F.one_hot(labels, num_labels + 1).to(dtype))
    if with_depth or with_rgb:
        from honnotate.render.interpolate import _bary_at

        bary_fg = _bary_at(screen, faces, pix, img, face, height, width)  # (M, 3) with grad
        vid = faces[face]
    if with_depth:
        z_fg = (bary_fg * cam[img[:, None], vid, 2]).sum(-1)
        depth = torch.full((n * hw,), float(background_depth), dtype=dtype, device=device)
        channels.append(depth.index_copy(0, pix, z_fg).reshape(n, height, width, 1))
    if with_rgb:
        channels.append(
            _shade(cam, faces, vid, img, pix, face, bary_fg, b, height, width, vertex_colors, textures, ambient,
                   light_cam)
        )
    sizes = [t.shape[-1] for t in channels]
    image = torch.cat(channels, dim=-1)
    if antialiased:
        if topology is None:
            topology = mesh_topology(faces)
        image = antialias(image, frags, screen, faces, topology, near=near)
    parts = list(image.split(sizes, dim=-1))
    sil = dep = rgb = None
    if with_silhouettes:
        sil = parts.pop(0).reshape(b, c, height, width, num_labels + 1).permute(0, 1, 4, 2, 3)
    if with_depth:
        dep = parts.pop(0).reshape(b, c, height, width)
    if with_rgb:
        rgb = parts.pop(0).reshape(b, c, height, width, 3)
    return RenderOutput(
        labels=labels.reshape(b, c, height, width), silhouettes=sil, depth=dep, rgb=rgb, fragments=frags
    )


def _shade(cam, faces, vid, img, pix, face, bary_fg, b, height, width, vertex_colors, textures, ambient,
           light_cam=None):
    """(N, H, W, 3) Lambert shading with a headlight, or with the directional light ``light_cam``
    (N, 3) (unit, toward the light, camera frame per image); background black."""
    n, v, _ = cam.shape
    c = n // b
    device, dtype = cam.device, cam.dtype
    if vertex_colors is None:
        vertex_colors = torch.full((v, 3), 0.7, dtype=dtype, device=device)
    vc = vertex_colors.to(device, dtype)
    if vc.ndim == 3:  # (B, V, 3) -> per image
        vc = vc[:, None].expand(b, c, v, 3).reshape(n, v, 3)
        albedo = (bary_fg[..., None] * vc[img[:, None], vid]).sum(1)
    else:
        albedo = (bary_fg[..., None] * vc[vid]).sum(1)
    hw = height * width
    for mask, uv, tex in textures:
        sel = mask.to(device)[face]
        if not bool(sel.any()):
            continue
        uv_px = (bary_fg[sel, :, None] * uv.to(device, dtype)[vid[sel]]).sum(1)  # (S, 2)
        tex_t = tex.to(device)
        tex_t = tex_t.to(dtype) / 255.0 if not tex_t.dtype.is_floating_point else tex_t.to(dtype)
        grid = torch.stack([uv_px[:, 0] * 2 - 1, 1 - uv_px[:, 1] * 2], -1)  # v up in uv
        sampled = F.grid_sample(
            tex_t.permute(2, 0, 1)[None], grid[None, None], mode="bilinear", align_corners=False
        )[0, :, 0].T
        albedo = albedo.index_put((sel.nonzero().squeeze(1),), sampled)
    normals = vertex_normals(cam, faces)
    nrm = F.normalize((bary_fg[..., None] * normals[img[:, None], vid]).sum(1), dim=-1, eps=1e-12)
    pos = (bary_fg[..., None] * cam[img[:, None], vid]).sum(1)
    view = F.normalize(pos, dim=-1, eps=1e-12)
    if light_cam is None:
        lambert = (nrm * view).sum(-1).abs()
    else:  # two-sided: the normal of the side the camera sees
        facing = torch.where((nrm * view).sum(-1, keepdim=True) > 0, -nrm, nrm)
        lambert = (facing * light_cam.to(dtype)[img]).sum(-1).clamp(min=0.0)
    shaded = albedo * (ambient + (1.0 - ambient) * lambert)[:, None]
    out = torch.zeros(n * hw, 3, dtype=dtype, device=device)
    return out.index_copy(0, pix, shaded.clamp(0, 1)).reshape(n, height, width, 3)


class Renderer:
    """Renders scenes of labelled meshes for several frames and cameras in one call.

    Args:
        background_depth: metres written where nothing is visible (2.0 as in HOnnotate).
        near: near plane in metres; faces crossing it are culled.
        backend: rasteriser backend, ``"auto"`` (numba on CPU, torch on CUDA), ``"numba"``, ``"torch"``.
        antialiased: soft silhouette edges (needed for silhouette gradients).
        ambient: ambient fraction of the Lambert shading.
    """

    def __init__(
        self,
        *,
        background_depth: float = 2.0,
        near: float = 1e-3,
        backend: str = "auto",
        antialiased: bool = True,
        ambient: float = 0.35,
    ) -> None:
        self.background_depth = float(background_depth)
        self.near = float(near)
        self.backend = backend
        self.antialiased = antialiased
        self.ambient = float(ambient)
        self._topology_cache: dict[tuple, MeshTopology] = {}

    def render(
        self,
        meshes: Sequence[SceneMesh],
        cameras,
        *,
        width: int | None = None,
        height: int | None = None,
        silhouettes: bool = True,
        depth: bool = True,
        rgb: bool = False,
        light_dir: torch.Tensor | None = None,
    ) -> RenderOutput:
        """Render ``meshes`` (B frames each) seen by ``cameras`` (C of them).

        Args:
            meshes: :class:`SceneMesh` list; vertices (B, V_i, 3) or (V_i, 3), metres, world frame.
            cameras: a CameraBatch, a Camera or a list of Cameras (intrinsics in pixels for
                their own ``width`` x ``height``).
            width, height: output resolution in pixels (both or neither); the intrinsics are
                rescaled from each camera's size. Default: the cameras' size.
            light_dir: RGB lighting, None for a headlight, else (3,) or (B, 3) direction toward a
                distant light in the world frame (see :func:`render_packed`).

        Returns:
            :class:`RenderOutput` with (B, C, ...) tensors on the vertices' device.
        """
        if not meshes:
            raise ValueError("render needs at least one SceneMesh")
        device = meshes[0].vertices.device
        dtype = meshes[0].vertices.dtype if meshes[0].vertices.dtype.is_floating_point else torch.float32
        K, w2c, width, height = _camera_tensors(cameras, width, height, device, dtype)
        verts, faces, labels, colors, textures = self._pack(meshes, device, dtype)
        key = tuple((m.faces.data_ptr(), tuple(m.faces.shape)) for m in meshes)
        topo = self._topology_cache.get(key) if self.antialiased else None
        if topo is None and self.antialiased:  # only the antialiasing needs the edge topology
            topo = mesh_topology(faces)
            self._topology_cache = {key: topo}
        return render_packed(
            verts,
            faces,
            labels,
            K,
            w2c,
            height,
            width,
            num_labels=int(labels.max()),
            background_depth=self.background_depth,
            near=self.near,
            backend=self.backend,
            topology=topo,
            vertex_colors=colors,
            textures=textures,
            with_silhouettes=silhouettes,
            with_depth=depth,
            with_rgb=rgb,
            antialiased=self.antialiased,
            ambient=self.ambient,
            light_dir=light_dir,
        )

    @staticmethod
    def _pack(meshes: Sequence[SceneMesh], device, dtype):
        batch = 1
        for m in meshes:
            if m.vertices.ndim == 3:
                batch = max(batch, m.vertices.shape[0])
        verts, faces, labels, colors, textures = [], [], [], [], []
        offset = 0
        n_faces_total = sum(int(m.faces.shape[0]) for m in meshes)
        face_start = 0
        for i, m in enumerate(meshes):
            v = m.vertices.to(device, dtype)
            if v.ndim == 2:
                v = v[None]
            if v.ndim != 3 or v.shape[-1] != 3 or v.shape[0] not in (1, batch):
                raise ValueError(f"mesh {i} (label {m.label}): vertices must be (V, 3) or (B={batch}, V, 3), got {tuple(m.vertices.shape)}")
            if int(m.label) < 1:
                raise ValueError(f"mesh {i}: label must be >= 1 (0 is background), got {m.label}")
            f = m.faces.long().to(device)
            if f.ndim != 2 or f.shape[-1] != 3:
                raise ValueError(f"mesh {i} (label {m.label}): faces must be (F, 3), got {tuple(m.faces.shape)}")
            nv = v.shape[1]
            verts.append(v.expand(batch, nv, 3))
            faces.append(f + offset)
            labels.append(torch.full((f.shape[0],), int(m.label), dtype=torch.long, device=device))
            col = m.vertex_colors
            if col is None:
                col = torch.tensor(_DEFAULT_COLORS.get(int(m.label), (0.7, 0.7, 0.7)), dtype=dtype, device=device)
                col = col.expand(nv, 3)
            col = col.to(device, dtype)
            colors.append(col[None].expand(batch, nv, 3) if col.ndim == 2 else col.expand(batch, nv, 3))
            if m.texture is not None and m.uv is not None:
                mask = torch.zeros(n_faces_total, dtype=torch.bool, device=device)
                mask[face_start : face_start + f.shape[0]] = True
                uv_full = torch.zeros(offset + nv, 2, dtype=dtype, device=device)
                uv_full[offset:] = m.uv.to(device, dtype)
                textures.append((mask, uv_full, m.texture))
            offset += nv
            face_start += f.shape[0]
        # pad textured uv tables to the packed vertex count
        textures = [(mk, F.pad(uv, (0, 0, 0, offset - uv.shape[0])), tex) for mk, uv, tex in textures]
        return torch.cat(verts, 1), torch.cat(faces, 0), torch.cat(labels, 0), torch.cat(colors, 1), textures


def _camera_tensors(cameras, width, height, device, dtype):
    """K (C, 3, 3), world_to_cam (C, 4, 4), width, height from camera-like objects."""
    if (width is None) != (height is None):
        raise ValueError("give both width and height, or neither")
    cams = list(cameras) if isinstance(cameras, (list, tuple)) else [cameras]
    if not cams:
        raise ValueError("render needs at least one camera")
    Ks, w2cs = [], []
    sizes = {(int(cm.width), int(cm.height)) for cm in cams}
    if width is None:
        if len(sizes) != 1:
            raise ValueError(f"cameras have different sizes {sorted(sizes)}; pass width and height")
        width, height = next(iter(sizes))
    for cm in cams:
        w2c = cm.world_to_cam() if callable(cm.world_to_cam) else cm.world_to_cam
        K = torch.as_tensor(cm.K)
        w2c = torch.as_tensor(w2c)
        if K.ndim == 2:
            K, w2c = K[None], w2c[None]
        if K.shape[1:] != (3, 3) or w2c.shape != (K.shape[0], 4, 4):
            raise ValueError(f"camera K must be (3, 3)/(C, 3, 3) and world_to_cam (4, 4)/(C, 4, 4), got {tuple(K.shape)}, {tuple(w2c.shape)}")
        K = K.to(device, dtype)
        if (int(cm.width), int(cm.height)) != (width, height):
            K = rescale_intrinsics(K, (int(cm.width), int(cm.height)), (width, height))
        Ks.append(K)
        w2cs.append(w2c.to(device, dtype))
    return torch.cat(Ks), torch.cat(w2cs), int(width), int(height)
