"""Synthetic RGB-D captures of a hand holding an object, with exact ground truth.

:func:`generate_sequence` writes a capture in honnotate's layout (``docs/design.md``) that
the annotator reads like a real one, plus the ground truth:

* a grasp of the object (:mod:`honnotate.synth.grasp`) by a random hand shape, drifting
  slowly over the sequence (:func:`honnotate.synth.motion.grasp_drift`), carried along a smooth
  6D object trajectory in a 40 cm workspace 0.4-0.8 m in front of the cameras;
* 1-5 RGB-D cameras (640x480, fx about 615) around the workspace, a textured table and
  background, skin tone variation, and lighting: ambient plus a distant light whose direction
  is drawn per sequence and drifts over the frames (:class:`LightingConfig`), shading hand,
  object and table;
* depth with a structured-light / time-of-flight noise model (:mod:`honnotate.synth.noise`);
* cue files: exact segmentation and 2D keypoints, or degraded ones imitating detectors;
* ground truth: HO-3D annotation pickles per camera and frame (OpenGL), the exact cues with
  keypoint visibility, and one ``ground_truth/sequence_gt.npz`` with world-frame parameters;
* a contact sheet PNG for a person, and the resolved config (``synth_config.json``).

Frames: world = camera 0's OpenCV frame.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import roma
import torch

from honnotate.synth.motion import MotionConfig, grasp_drift, object_trajectory
from honnotate.synth.noise import (
    CueNoiseConfig,
    DepthNoiseConfig,
    degrade_keypoints,
    degrade_segmentation,
    depth_noise,
)

__all__ = ["SynthConfig", "LightingConfig", "generate_sequence", "light_directions", "plane_mesh", "procedural_texture",
           "SKIN_TONES", "TABLE_LABEL"]

#: Albedo of skin tones (linear-ish RGB in [0, 1]), light to dark.
SKIN_TONES = np.array([
    [0.96, 0.80, 0.69], [0.93, 0.72, 0.60], [0.87, 0.65, 0.52], [0.78, 0.57, 0.44],
    [0.66, 0.46, 0.34], [0.53, 0.36, 0.26], [0.38, 0.26, 0.19],
])
#: Render label of the table (written as background in the segmentation).
TABLE_LABEL = 3
#: Second seed word of the lighting's own random stream, ``default_rng([seed, _LIGHT_STREAM])``.
_LIGHT_STREAM = 0x11647
#: Second seed word of the forearm's own random stream.
_ARM_STREAM = 0xA4A


@dataclass(frozen=True)
class LightingConfig:
    """Lighting of a synthetic capture: ambient plus one distant (directional) light whose
    direction is drawn per sequence and drifts slowly over the frames, then a global gain.

    kind: "directional", or "headlight" (a light at each camera, the renderer's default; the
        images are then those of earlier versions).
    ambient: range of the ambient fraction of the shading, drawn per sequence (directional).
    elevation: range of the light's angle above the horizontal, radians (world y points down).
    azimuth: the light's azimuth is drawn in +-this, radians, about the direction from the
        workspace toward camera 0 (0: lit from camera 0's side; pi/2: from its right or left).
    drift: largest drift of the elevation and of the azimuth, radians per frame (drawn per sequence).
    gain: range of the global intensity; colour_jitter: per-channel gain in 1 +- this.
    """

    kind: Literal["directional", "headlight"] = "directional"
    ambient: tuple[float, float] = (0.25, 0.5)
    elevation: tuple[float, float] = (0.3, 1.3)
    azimuth: float = 1.4
    drift: float = 0.004
    gain: tuple[float, float] = (0.75, 1.25)
    colour_jitter: float = 0.08

    def __post_init__(self) -> None:
        if self.kind not in ("directional", "headlight"):
            raise ValueError(f"lighting kind must be directional or headlight, got {self.kind!r}")
        for name in ("ambient", "elevation", "gain"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise ValueError(f"lighting {name}: expected a range (low, high), got ({lo}, {hi})")
        if not (0.0 <= self.ambient[0] and self.ambient[1] <= 1.0):
            raise ValueError(f"lighting ambient must lie in [0, 1], got {self.ambient}")


def light_directions(frames: int, config: LightingConfig, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Directions toward the light per frame and the ambient fraction of one sequence.

    Returns:
        (frames, 3) float64 unit vectors, world frame (camera 0, OpenCV: y down, z forward):
        elevation and azimuth drawn from ``config`` and drifting linearly (elevation kept in its
        range); the ambient fraction (float).
    """
    ambient = float(rng.uniform(*config.ambient))
    el0 = rng.uniform(*config.elevation)
    az0 = rng.uniform(-config.azimuth, config.azimuth)
    d_el, d_az = rng.uniform(-config.drift, config.drift, 2)
    t = np.arange(frames)
    el = np.clip(el0 + d_el * t, *config.elevation)
    az = az0 + d_az * t
    return np.stack([np.cos(el) * np.sin(az), -np.sin(el), -np.cos(el) * np.cos(az)], 1), ambient


@dataclass(frozen=True)
class SynthConfig:
    """Everything :func:`generate_sequence` draws from; saved beside the output.

    frames: number of frames; cameras: 1-5; object: built-in object name; seed: random seed;
    grasp: "power", "precision" or "random"; side: hand side; width/height: image size;
    focal: nominal fx = fy at 640x480 (each camera jitters it by up to 2%);
    shape_std: standard deviation of the random hand betas; degraded_cues: write degraded
    cues (else the exact ones) to ``segmentation/`` and ``keypoints2d/``; depth_scale: metres
    per depth unit in the PNGs; table: render a table under the workspace; lighting: ambient,
    directional light and gain (:class:`LightingConfig`); hand_appearance: "uniform" (one skin
    tone all over, the captures of before) or "anatomical" (a lighter palm side and pale nails,
    :mod:`honnotate.synth.appearance`; same random draws before it, then its own); forearm:
    render a forearm behind the wrist, bare or sleeved (:mod:`honnotate.synth.arm`; scenery
    only, background in the segmentation, its pixels in ``ground_truth/forearm/<cam>/<frame>.png``
    (1 = forearm) for segmentation networks with a forearm class; its draws come from a stream of their own, so the
    rest of a capture is the same with or without it).
    """

    frames: int = 100
    cameras: int = 1
    object: str = "mustard_bottle"
    seed: int = 0
    grasp: Literal["power", "precision", "lateral", "random"] = "power"
    side: Literal["right", "left"] = "right"
    width: int = 640
    height: int = 480
    focal: float = 615.0
    shape_std: float = 0.8
    degraded_cues: bool = False
    depth_scale: float = 0.001
    table: bool = True
    hand_appearance: Literal["uniform", "anatomical"] = "uniform"
    forearm: bool = True
    motion: MotionConfig = field(default_factory=MotionConfig)
    depth_noise: DepthNoiseConfig = field(default_factory=DepthNoiseConfig)
    cue_noise: CueNoiseConfig = field(default_factory=CueNoiseConfig)
    lighting: LightingConfig = field(default_factory=LightingConfig)

    def __post_init__(self) -> None:
        if not 1 <= self.cameras <= 5:
            raise ValueError(f"cameras must be 1..5, got {self.cameras}")
        if self.frames < 1:
            raise ValueError(f"frames must be >= 1, got {self.frames}")
        if self.grasp not in ("power", "precision", "lateral", "random"):
            raise ValueError(f"grasp must be power, precision, lateral or random, got {self.grasp!r}")
        if self.hand_appearance not in ("uniform", "anatomical"):
            raise ValueError(f"hand_appearance must be uniform or anatomical, got {self.hand_appearance!r}")


def _make_cameras(cfg: SynthConfig, rng: np.random.Generator):
    """Camera 0 at the world origin looking along +z; others on a ring around the workspace."""
    from honnotate.geometry import Camera, look_at

    centre = np.asarray(cfg.motion.workspace_centre, dtype=np.float64)
    s = cfg.width / 640.0
    cams = []
    for i in range(cfg.cameras):
        if i == 0:
            c2w = np.eye(4)
        else:
            yaw = (i - 0.5 * cfg.cameras) * 1.2 + rng.uniform(-0.15, 0.15) + (0.6 if i % 2 else -0.6)
            pitch = rng.uniform(-0.5, -0.15)
            r = np.linalg.norm(centre) * rng.uniform(0.9, 1.15)
            eye = centre + r * np.array([np.sin(yaw) * np.cos(pitch), np.sin(pitch), -np.cos(yaw) * np.cos(pitch)])
            c2w = look_at(eye, centre + rng.normal(0, 0.02, 3))
        f = cfg.focal * s * (1 + rng.uniform(-0.02, 0.02))
        cx = (cfg.width - 1) / 2 + rng.uniform(-6, 6) * s
        cy = (cfg.height - 1) / 2 + rng.uniform(-6, 6) * s
        cams.append(Camera.from_intrinsics(f, f, cx, cy, cfg.width, cfg.height,
                                           cam_to_world=torch.as_tensor(c2w, dtype=torch.float32), name=str(i)))
    return cams


def procedural_texture(rng: np.random.Generator, size: int = 256, kind: str | None = None) -> np.ndarray:
    """(size, size, 3) uint8 texture: wood-like stripes, checker, or smooth noise."""
    kind = kind or rng.choice(["wood", "checker", "noise"])
    y, x = np.mgrid[0:size, 0:size] / size
    base = rng.uniform(0.25, 0.85, 3)
    if kind == "wood":
        f = rng.uniform(8, 20)
        v = 0.5 + 0.5 * np.sin(2 * np.pi * f * (x + 0.05 * np.sin(6 * y + rng.uniform(0, 6))))
        img = base[None, None] * (0.75 + 0.25 * v[..., None])
    elif kind == "checker":
        n = int(rng.integers(4, 12))
        v = ((np.floor(x * n) + np.floor(y * n)) % 2)[..., None]
        other = rng.uniform(0.2, 0.9, 3)
        img = v * base + (1 - v) * other
    else:
        import cv2

        noise = rng.random((size // 16, size // 16, 3))
        noise = cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)
        img = base[None, None] * (0.7 + 0.6 * (noise - 0.5))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def plane_mesh(centre: np.ndarray, axis_u: np.ndarray, axis_v: np.ndarray, n: int = 8):
    """A flat square grid mesh (lengths in the units of the inputs).

    Args:
        centre: (3,) centre of the square. axis_u, axis_v: (3,) half-edge vectors (the square
            spans ``centre + a * axis_u + b * axis_v`` for a, b in [-1, 1]). n: cells per side
            (small triangles: the renderer culls faces crossing the near plane and
            interpolates texture coordinates per triangle).

    Returns:
        ``(verts (V, 3) float64, faces (F, 3) int64, uv (V, 2) float64 in [0, 1])``,
        V = (n + 1)^2, F = 2 n^2.
    """
    g = np.linspace(-1.0, 1.0, n + 1)
    A, B = np.meshgrid(g, g)
    verts = (np.asarray(centre, dtype=np.float64)[None] + A.ravel()[:, None] * np.asarray(axis_u, dtype=np.float64)[None]
             + B.ravel()[:, None] * np.asarray(axis_v, dtype=np.float64)[None])
    idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, 1:].ravel(), idx[1:, :-1].ravel()
    faces = np.concatenate([np.stack([a, c, b], 1), np.stack([a, d, c], 1)]).astype(np.int64)
    uv = np.stack([(A.ravel() + 1) / 2, (B.ravel() + 1) / 2], 1)
    return verts, faces, uv


def _table_mesh(cfg: SynthConfig, rng: np.random.Generator):
    """A 2 m x 2 m textured quad under the workspace (world frame), as (verts, faces, uv, texture)."""
    centre = np.asarray(cfg.motion.workspace_centre)
    below = 0.5 * cfg.motion.workspace_size + rng.uniform(0.08, 0.2)
    y = centre[1] + below  # y points down: the table is below the workspace
    verts, faces, uv = plane_mesh(np.array([centre[0], y, centre[2] + 0.3]), np.array([1.0, 0, 0]), np.array([0, 0, 1.0]))
    return verts, faces, uv, procedural_texture(rng, 512, "wood")


def _background(cfg: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) float background image in [0, 1]."""
    import cv2

    tex = procedural_texture(rng, 256).astype(np.float32) / 255.0
    return cv2.resize(tex, (cfg.width, cfg.height), interpolation=cv2.INTER_LINEAR)


def _hand_colors(hand, rng: np.random.Generator, appearance: str = "uniform", seed: int = 0) -> np.ndarray:
    """(V, 3) hand albedo of ``hand`` (a HandModel): a random skin tone, uniform or with palm and nails."""
    from honnotate.synth.appearance import hand_colors, hand_regions

    tone = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.92, 1.05, 3)
    jitter = 1 + rng.normal(0, 0.03, (hand.num_vertices, 1))
    if appearance == "anatomical":  # the palm and nail shades from a stream of their own: the rest unchanged
        base = hand_colors(hand_regions(hand), tone, np.random.default_rng([seed, 0xA9]), noise=0.0)
        return np.clip(base * jitter, 0, 1)
    return np.clip(tone[None] * jitter, 0, 1)


def _forearm(cfg: SynthConfig, hand, hand_w: torch.Tensor, joints_w: torch.Tensor, hand_col: torch.Tensor, obj,
             R_o: torch.Tensor, t_o: torch.Tensor, table_y: float | None):
    """The capture's forearm as a per-frame SceneMesh (label ``ARM_LABEL``), drawn from its own
    random stream ``default_rng([seed, _ARM_STREAM])``."""
    from honnotate.geometry.mesh_query import MeshQuery
    from honnotate.render.renderer import SceneMesh
    from honnotate.synth.arm import ARM_LABEL, draw_forearm, forearm_mesh, wrist_ring

    ring = wrist_ring(np.asarray(hand.faces))
    hv, J = hand_w.numpy(), joints_w.numpy()
    query = MeshQuery(obj.vertices, obj.faces)
    R, t = R_o.numpy(), t_o.numpy()

    def inside(pts: np.ndarray) -> np.ndarray:  # (N, M, 3) world -> (N, M), > 0 inside the object
        local = np.einsum("nij,nmi->nmj", R, pts - t[:, None])  # R^T (p - t)
        return query.signed_distance(local.reshape(-1, 3)).reshape(pts.shape[:2])

    spec = draw_forearm(np.random.default_rng([cfg.seed, _ARM_STREAM]), hv, J, ring, inside_object=inside,
                        table_y=table_y)
    skin = hand_col.double().numpy().mean(0)
    verts, faces, col = forearm_mesh(hv, J, ring, spec, skin)
    return SceneMesh(torch.as_tensor(verts, dtype=torch.float32), torch.as_tensor(faces), ARM_LABEL,
                     vertex_colors=torch.as_tensor(col, dtype=torch.float32))


def _visibility(uv: np.ndarray, z: np.ndarray, labels: np.ndarray, depth: np.ndarray, tol: float = 0.02) -> np.ndarray:
    """(21,) bool: joint in the image, on a hand pixel whose rendered depth is within ``tol``
    of the joint's depth (joints lie ~1 cm inside the finger surface)."""
    H, W = labels.shape
    u = np.round(uv[:, 0]).astype(int)
    v = np.round(uv[:, 1]).astype(int)
    inside = (u >= 0) & (u < W) & (v >= 0) & (v < H) & (z > 0)
    vis = np.zeros(len(uv), bool)
    for i in np.nonzero(inside)[0]:
        u0, u1, v0, v1 = max(u[i] - 1, 0), min(u[i] + 2, W), max(v[i] - 1, 0), min(v[i] + 2, H)
        lab = labels[v0:v1, u0:u1]
        d = depth[v0:v1, u0:u1]
        vis[i] = bool(np.any((lab == 2) & (np.abs(d - z[i]) < tol)))
    return vis


def generate_sequence(out_dir: str | Path, config: SynthConfig = SynthConfig(), *,
                      progress: Callable[[int, int], None] | None = None, contact_sheet: bool = True) -> dict:
    """Generate a synthetic capture in ``out_dir`` (see the module docstring).

    Args:
        out_dir: sequence folder (created; existing files of the same names are replaced).
        config: what to generate.
        progress: called as ``progress(done, total)`` after each frame.
        contact_sheet: write ``contact_sheet.png`` (about a third of the time of a one-frame
            capture; batches of training captures skip it, and remove one an earlier capture
            left there). The capture is otherwise the same.

    Returns:
        Summary dict (grasp quality, timings, paths), also written to ``ground_truth/summary.json``.
    """
    from honnotate.io.cues import write_segmentation
    from honnotate.io.ho3d import write_ho3d_annotation
    from honnotate.io.images import write_label_png
    from honnotate.io.sequence import SequenceWriter
    from honnotate.models.hand import HandModel
    from honnotate.models.joints import ho3d_camera_annotation
    from honnotate.models.object import make_object
    from honnotate.models.open_hand import load_open_hand
    from honnotate.render.renderer import HAND_LABEL, OBJECT_LABEL, Renderer, SceneMesh
    from honnotate.synth.arm import ARM_LABEL
    from honnotate.synth.grasp import GraspConfig, synthesize_grasp

    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = config
    rng = np.random.default_rng(cfg.seed)
    timings: dict[str, float] = {}

    # Hand, object, grasp.
    data = load_open_hand(cfg.side)
    hand = HandModel(data, dtype=torch.float64)
    obj = make_object(cfg.object)
    betas = np.clip(rng.normal(0, cfg.shape_std, hand.num_betas), -2.5, 2.5)
    kind = cfg.grasp if cfg.grasp != "random" else str(rng.choice(["power", "precision"]))
    t0 = time.perf_counter()
    # A few attempts (other approach sides and tilts) until the grasp holds: penetration
    # <= 2 mm and enough fingers in contact (3 for power/precision, thumb + index for lateral).
    need = 2 if kind == "lateral" else 3
    tm = obj.to_trimesh()
    grasp = None
    for _ in range(6):
        g = synthesize_grasp(hand, tm, config=GraspConfig(kind=kind), betas=betas, seed=int(rng.integers(1 << 31)))
        if grasp is None or (len(g.contacts), -g.penetration) > (len(grasp.contacts), -grasp.penetration):
            grasp = g
        if g.penetration <= 0.002 and len(g.contacts) >= need:
            grasp = g
            break
    timings["grasp_s"] = time.perf_counter() - t0

    # Motion and grasp drift; hand in the object frame per frame.
    N = cfg.frames
    traj = object_trajectory(N, cfg.motion, rng, base_rotvec=rng.normal(0, 0.3, 3))
    drift = grasp_drift(N, cfg.motion, rng)
    lim = data.joint_limits
    anat = np.clip(grasp.anatomical[None] + drift, lim[..., 0], lim[..., 1]) if lim is not None else grasp.anatomical[None] + drift
    with torch.no_grad():
        pose = hand.anatomical_to_pose(torch.as_tensor(anat))
        B = torch.as_tensor(np.broadcast_to(betas, (N, len(betas))).copy())
        go_o = torch.as_tensor(np.broadcast_to(grasp.global_orient, (N, 3)).copy())
        tr_o = torch.as_tensor(np.broadcast_to(grasp.transl, (N, 3)).copy())
        ho = hand(go_o, pose, B, tr_o)
        R_o = roma.rotvec_to_rotmat(torch.as_tensor(traj.rotvec))
        t_o = torch.as_tensor(traj.transl)
        from honnotate.models.hand import rigid_transform_hand_params

        go_w, tr_w = rigid_transform_hand_params(go_o, tr_o, ho.rest_joints[:, 0], R_o, t_o)
        hand_w = ho.vertices @ R_o.transpose(1, 2) + t_o[:, None]
        joints_w = ho.joints @ R_o.transpose(1, 2) + t_o[:, None]
        obj_w = torch.as_tensor(obj.vertices)[None] @ R_o.transpose(1, 2) + t_o[:, None]

    cams = _make_cameras(cfg, rng)
    writer = SequenceWriter(out, {c.name: c for c in cams}, cfg.depth_scale,
                            meta={"object": cfg.object, "hand_side": cfg.side, "hand_model": "open"},
                            durable=False)
    gt = out / "ground_truth"
    f32 = torch.float32
    hand_col = torch.as_tensor(_hand_colors(hand, rng, cfg.hand_appearance, cfg.seed), dtype=f32)
    obj_col = torch.as_tensor(obj.vertex_colors / 255.0 if obj.vertex_colors is not None else np.full((len(obj.vertices), 3), 0.6), dtype=f32)
    meshes_static = []
    if cfg.table:
        tv, tf, tuv, ttex = _table_mesh(cfg, rng)
        meshes_static.append(SceneMesh(torch.as_tensor(tv, dtype=f32), torch.as_tensor(tf), TABLE_LABEL,
                                       vertex_colors=torch.full((len(tv), 3), 0.5), uv=torch.as_tensor(tuv, dtype=f32),
                                       texture=torch.as_tensor(ttex)))
    obj_tex = {}
    if obj.uv is not None and obj.texture is not None:
        obj_tex = {"uv": torch.as_tensor(obj.uv, dtype=f32), "texture": torch.as_tensor(obj.texture)}
    if cfg.forearm:
        meshes_static_frames = [_forearm(cfg, hand, hand_w, joints_w, hand_col, obj, R_o, t_o,
                                         tv[0, 1] if cfg.table else None)]
    else:
        meshes_static_frames = []
    background = _background(cfg, rng)
    light = cfg.lighting
    gain = rng.uniform(*light.gain) * rng.uniform(1 - light.colour_jitter, 1 + light.colour_jitter, 3)
    # The directional light has its own random stream: the other draws (noise, cues) stay those
    # of the seed whatever the lighting.
    light_dir, ambient = light_directions(N, light, np.random.default_rng([cfg.seed, _LIGHT_STREAM]))
    if light.kind == "headlight":
        light_t, renderer = None, Renderer(background_depth=0.0, antialiased=False)
    else:
        light_t = torch.as_tensor(light_dir, dtype=f32)
        renderer = Renderer(background_depth=0.0, antialiased=False, ambient=ambient)
    corners_rest = obj.bbox_corners()
    hands_mean = np.asarray(data.hands_mean)
    kp_gt_all = np.zeros((N, len(cams), 21, 3), np.float32)
    vis_all = np.zeros((N, len(cams), 21), bool)
    sheet_frames = sorted(set(np.linspace(0, N - 1, min(N, 4 if len(cams) == 1 else 2)).round().astype(int).tolist()))
    sheet: dict[int, list] = {}
    render_s = noise_s = write_s = 0.0
    chunk = 8
    for start in range(0, N, chunk):
        idx = list(range(start, min(N, start + chunk)))
        t0 = time.perf_counter()
        meshes = [SceneMesh(hand_w[idx].to(f32), torch.as_tensor(hand.faces), HAND_LABEL, vertex_colors=hand_col),
                  SceneMesh(obj_w[idx].to(f32), torch.as_tensor(obj.faces), OBJECT_LABEL, vertex_colors=obj_col, **obj_tex)]
        meshes += [SceneMesh(m.vertices[None].expand(len(idx), -1, -1), m.faces, m.label, m.vertex_colors, m.uv, m.texture)
                   for m in meshes_static]
        meshes += [SceneMesh(m.vertices[idx], m.faces, m.label, m.vertex_colors) for m in meshes_static_frames]
        with torch.no_grad():
            r = renderer.render(meshes, cams, rgb=True, light_dir=None if light_t is None else light_t[idx])
        render_s += time.perf_counter() - t0
        for k, t in enumerate(idx):
            for c, cam in enumerate(cams):
                t0 = time.perf_counter()
                labels = r.labels[k, c].numpy()
                depth_clean = r.depth[k, c].numpy().astype(np.float32)
                rgb = r.rgb[k, c].numpy()
                img = np.where((labels > 0)[..., None], rgb, background * 0.9) * gain
                img = img + rng.normal(0, 0.012, img.shape)
                img8 = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
                seg = np.where(labels >= TABLE_LABEL, 0, labels).astype(np.uint8)  # table, forearm
                fx, fy, cx, cy = cam.fx, cam.fy, cam.cx, cam.cy
                depth = depth_noise(depth_clean, fx, fy, cx, cy, cfg.depth_noise, rng)
                uv, z = cam.project(joints_w[t].to(f32))
                uv, z = uv.numpy(), z.numpy()
                vis = _visibility(uv, z, labels, depth_clean)
                kp_gt = np.concatenate([uv, vis[:, None].astype(np.float32)], 1).astype(np.float32)
                kp_gt_all[t, c], vis_all[t, c] = kp_gt, vis
                if cfg.degraded_cues:
                    kp_cue = degrade_keypoints(uv, vis, cfg.width, cfg.cue_noise, rng)
                    seg_cue = degrade_segmentation(seg, uv[16:21], cfg.cue_noise, rng)
                else:
                    kp_cue = np.concatenate([uv, np.ones((21, 1), np.float32)], 1)
                    seg_cue = seg
                noise_s += time.perf_counter() - t0
                t0 = time.perf_counter()
                writer.write_frame(t, cam.name, rgb=img8, depth=depth, segmentation=seg_cue, keypoints2d=kp_cue)
                name = writer.frame_name(t)
                write_segmentation(gt / "segmentation" / cam.name / f"{name}.png", seg, durable=False)
                if cfg.forearm:  # where the forearm is seen (background in the segmentation)
                    write_label_png(gt / "forearm" / cam.name / f"{name}.png", (labels == ARM_LABEL).astype(np.uint8),
                                    durable=False)
                ann = ho3d_camera_annotation(cam.world_to_cam().double().numpy(), cam.K.double().numpy(),
                                       go_w[t].numpy(), tr_w[t].numpy(), pose[t].numpy(), betas,
                                       ho.rest_joints[t, 0].numpy(), joints_w[t].numpy(), traj.rotvec[t],
                                       traj.transl[t], corners_rest, obj.name, hands_mean)
                write_ho3d_annotation(gt / "meta" / cam.name / f"{name}.pkl", ann)
                write_s += time.perf_counter() - t0
                if contact_sheet and t in sheet_frames:
                    sheet.setdefault(t, []).append((img8, depth, seg_cue, kp_cue))
            if progress:
                progress(t + 1, N)
    timings.update(render_s=render_s, noise_and_cues_s=noise_s, write_s=write_s)

    np.savez_compressed(
        gt / "sequence_gt.npz",
        frame_ids=np.array([writer.frame_name(t) for t in range(N)]),
        hand_global_orient=go_w.numpy(), hand_transl=tr_w.numpy(), hand_pose=pose.numpy(), hand_betas=betas,
        hand_joints=joints_w.numpy(), hand_verts=hand_w.numpy().astype(np.float32),
        obj_rot=traj.rotvec, obj_trans=traj.transl, object_vertices=obj.vertices,
        keypoints2d=kp_gt_all, keypoints_visible=vis_all,
        camera_names=np.array([c.name for c in cams]), K=np.stack([c.K.numpy() for c in cams]),
        cam_to_world=np.stack([c.cam_to_world.numpy() for c in cams]),
    )
    cfg_dict = asdict(cfg)
    (out / "synth_config.json").write_text(json.dumps(cfg_dict, indent=2))
    if contact_sheet:
        _contact_sheet(out / "contact_sheet.png", sheet, [c.name for c in cams])
    else:  # no sheet of an earlier capture left beside this one
        (out / "contact_sheet.png").unlink(missing_ok=True)
    summary = {
        "frames": N, "cameras": len(cams), "object": obj.name, "grasp": kind,
        "penetration_mm": grasp.penetration * 1e3, "contacts": list(grasp.contacts),
        "lighting": {"kind": light.kind, "ambient": renderer.ambient, "gain": gain.tolist(),
                     "light_dir_first": None if light_t is None else light_dir[0].tolist(),
                     "light_dir_last": None if light_t is None else light_dir[-1].tolist()},
        "betas": betas.tolist(), "timings_s": {**timings, "total_s": time.perf_counter() - t_start},
    }
    (gt / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _contact_sheet(path: Path, sheet: dict[int, list], cam_names: list[str]) -> None:
    """PNG grid: per shown frame and camera, RGB with keypoints, depth, and the mask overlay."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from honnotate.models.joints import SKELETON_BONES

    rows = [(t, c) for t in sorted(sheet) for c in range(len(sheet[t]))]
    if not rows:
        return
    fig, axes = plt.subplots(len(rows), 3, figsize=(10, 2.6 * len(rows)), squeeze=False)
    colors = np.array([[0, 0, 0], [0.2, 0.4, 1.0], [1.0, 0.5, 0.2]])
    for r, (t, c) in enumerate(rows):
        img, depth, seg, kp = sheet[t][c]
        axes[r, 0].imshow(img)
        for a, b in SKELETON_BONES:
            axes[r, 0].plot(kp[[a, b], 0], kp[[a, b], 1], "-", color="lime", lw=0.8)
        axes[r, 0].scatter(kp[:, 0], kp[:, 1], s=4, c=kp[:, 2], cmap="RdYlGn", vmin=0, vmax=1)
        axes[r, 0].set_title(f"frame {t} camera {cam_names[c]}", fontsize=8)
        d = np.where(depth > 0, depth, np.nan)
        axes[r, 1].imshow(d, cmap="turbo")
        axes[r, 1].set_title("depth (noisy; holes white)", fontsize=8)
        axes[r, 2].imshow((0.5 * img / 255.0 + 0.5 * colors[seg]).clip(0, 1))
        axes[r, 2].set_title("segmentation cue (object blue, hand orange)", fontsize=8)
        for ax in axes[r]:
            ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)
