"""Renderer benchmark: open hand + object, silhouettes + depth, forward and forward+backward.

Run: ``python benchmarks/render.py`` (writes the ``render`` section of BENCHMARKS.md).
Uses the open hand (3196 faces) and the ``mustard_bottle`` object when they are available;
otherwise meshes of the same size (icospheres), and says so in the section.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import roma
import torch
import trimesh

from _common import timeit, write_section
from honnotate.render import HAND_LABEL, OBJECT_LABEL, Renderer, SceneMesh

RESOLUTIONS = [(160, 120), (320, 240), (640, 480)]


class _Cam:
    def __init__(self, K, world_to_cam, width, height):
        self.K, self.world_to_cam, self.width, self.height = K, world_to_cam, width, height


def scene(device="cpu"):
    """(hand verts (V, 3), hand faces, object verts (V, 3), object faces, source note)."""
    note = "open hand (3196 faces) + mustard_bottle"
    try:
        from honnotate.models.object import make_object
        from honnotate.models.registry import load_hand_model

        hand = load_hand_model("open")
        out = hand(global_orient=torch.tensor([[0.0, 0.0, 0.4]]), hand_pose=torch.zeros(1, 45))
        hv, hf = out.vertices[0].detach(), torch.as_tensor(hand.faces).long()
        obj = make_object("mustard_bottle")
        ov, of = torch.tensor(obj.vertices, dtype=torch.float32), torch.tensor(obj.faces).long()
    except Exception as exc:  # models not available: same-size stand-ins
        note = f"stand-in icospheres (hand/object models unavailable: {type(exc).__name__})"
        m = trimesh.creation.icosphere(4, radius=0.04)
        m = m.simplify_quadric_decimation(face_count=3196) if hasattr(m, "simplify_quadric_decimation") else m
        hv, hf = torch.tensor(m.vertices, dtype=torch.float32), torch.tensor(m.faces)
        o = trimesh.creation.icosphere(4, radius=0.05)
        ov, of = torch.tensor(o.vertices, dtype=torch.float32), torch.tensor(o.faces)
    hv = hv - hv.mean(0) + torch.tensor([0.02, 0.0, 0.40])
    ov = ov @ roma.rotvec_to_rotmat(torch.tensor([1.3, 0.0, 0.0])).T + torch.tensor([0.0, 0.0, 0.47])
    return hv.to(device), hf.to(device), ov.to(device), of.to(device), note


def cameras(n, width, height, device="cpu"):
    cams = []
    for i in range(n):
        K = torch.tensor([[0.9 * width, 0, (width - 1) / 2], [0, 0.9 * width, (height - 1) / 2], [0, 0, 1.0]])
        w2c = torch.eye(4)
        R = roma.rotvec_to_rotmat(torch.tensor([0.0, 0.15 * i, 0.0]))
        c = torch.tensor([0.0, 0.0, 0.45])
        w2c[:3, :3] = R
        w2c[:3, 3] = c - R @ c
        cams.append(_Cam(K.to(device), w2c.to(device), width, height))
    return cams


def _case(width, height, frames, n_cams, backward, device="cpu", backend="auto"):
    hv, hf, ov, of, _ = scene(device)
    cams = cameras(n_cams, width, height, device)
    r = Renderer(backend=backend)
    shift = 0.002 * torch.arange(frames, device=device, dtype=torch.float32)[:, None, None]
    target = r.render([SceneMesh(ov + shift, of, OBJECT_LABEL), SceneMesh(hv + shift, hf, HAND_LABEL)], cams)
    transl = torch.tensor([0.003, -0.002, 0.004], device=device, requires_grad=backward)

    def run():
        out = r.render(
            [SceneMesh(ov + shift + transl, of, OBJECT_LABEL), SceneMesh(hv + shift, hf, HAND_LABEL)], cams
        )
        if backward:
            loss = ((out.silhouettes - target.silhouettes) ** 2).mean() + (out.depth - target.depth).abs().mean()
            loss.backward()
        return out

    return run


def _memory_probe() -> None:
    """Child process: peak RSS growth of one 20 frames x 5 cameras 320x240 forward+backward."""
    run = _case(320, 240, 20, 5, True)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"base_mb": base / 1024, "peak_mb": peak / 1024}))


def main() -> None:
    torch.set_grad_enabled(True)
    note = scene()[4]
    rows = []
    for w, h in RESOLUTIONS:
        fwd = timeit(_case(w, h, 1, 1, False), warmup=3, repeat=20)
        fb = timeit(_case(w, h, 1, 1, True), warmup=3, repeat=20)
        b20 = timeit(_case(w, h, 20, 1, True), warmup=1, repeat=5)
        rows.append(f"| {w}x{h} | {fwd:.1f} | {fb:.1f} | {b20:.0f} | {b20 / 20:.1f} |")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    fb_1thread = timeit(_case(320, 240, 1, 1, True), warmup=3, repeat=20)
    torch.set_num_threads(threads)
    torch_fwd = timeit(_case(320, 240, 1, 1, False, backend="torch"), warmup=2, repeat=10)
    numba_fwd = timeit(_case(320, 240, 1, 1, False, backend="numba"), warmup=2, repeat=10)
    probe = subprocess.run([sys.executable, __file__, "--memory-probe"], capture_output=True, text=True, check=True)
    mem = json.loads(probe.stdout.strip().splitlines()[-1])
    b100 = timeit(_case(320, 240, 20, 5, True), warmup=1, repeat=3)

    p3d = "pytorch3d is not importable here: comparison skipped."
    try:
        import pytorch3d  # noqa: F401

        p3d = _pytorch3d_rows()
    except ImportError:
        pass

    body = f"""
Scene: {note}; hand and object silhouettes (3 channels with background) + depth, one camera
unless stated; forward+backward = L2 silhouette + L1 depth loss, backward to the object
translation. Times are medians in ms (`benchmarks/_common.timeit`).

| resolution | forward | forward+backward | 20 frames fwd+bwd | per frame |
|---|---|---|---|---|
{chr(10).join(rows)}

- 320x240 forward+backward with torch limited to 1 thread: {fb_1thread:.1f} ms (on a busy
  2-core machine torch's multithreaded ops can stall; single-image work gains little from them).
- Rasteriser backend on CPU, 320x240 forward: numba {numba_fwd:.1f} ms, vectorised torch {torch_fwd:.1f} ms
  (`auto` picks numba on CPU, torch on CUDA).
- 20 frames x 5 cameras at 320x240, forward+backward: {b100:.0f} ms; peak RSS growth
  {mem["peak_mb"] - mem["base_mb"]:.0f} MB over {mem["base_mb"]:.0f} MB after imports (target < 4 GB).
- {p3d}
"""
    write_section("render", body)


def _pytorch3d_rows() -> str:  # pragma: no cover - only where pytorch3d is installed
    from pytorch3d.renderer import (
        BlendParams,
        MeshRasterizer,
        MeshRenderer,
        PerspectiveCameras,
        RasterizationSettings,
        SoftSilhouetteShader,
    )
    from pytorch3d.structures import Meshes

    hv, hf, ov, of, _ = scene()
    verts = torch.cat([hv, ov])
    faces = torch.cat([hf, of + hv.shape[0]])
    out = []
    for w, h in RESOLUTIONS:
        cam = PerspectiveCameras(
            focal_length=((0.9 * w, 0.9 * w),), principal_point=(((w - 1) / 2, (h - 1) / 2),),
            image_size=((h, w),), in_ndc=False,
            R=torch.diag(torch.tensor([-1.0, -1.0, 1.0]))[None], T=torch.zeros(1, 3),
        )
        mesh = Meshes([verts], [faces])
        hard = MeshRasterizer(cam, RasterizationSettings(image_size=(h, w), faces_per_pixel=1))
        soft = MeshRenderer(
            MeshRasterizer(cam, RasterizationSettings(image_size=(h, w), blur_radius=2e-4, faces_per_pixel=20)),
            SoftSilhouetteShader(BlendParams(sigma=1e-4, gamma=1e-4)),
        )
        t_hard = timeit(lambda: hard(mesh), warmup=1, repeat=5)  # noqa: B023
        t_soft = timeit(lambda: soft(mesh), warmup=1, repeat=3)  # noqa: B023
        out.append(f"pytorch3d {w}x{h}: hard rasteriser {t_hard:.1f} ms, soft silhouette {t_soft:.1f} ms")
    return "; ".join(out)


if __name__ == "__main__":
    if "--memory-probe" in sys.argv:
        _memory_probe()
    else:
        main()
