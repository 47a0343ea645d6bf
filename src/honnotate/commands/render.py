"""``honnotate render``: render a hand + object scene and an overlay to one PNG grid."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register", "render_demo_grid"]


def render_demo_grid(object_name: str = "mustard_bottle", width: int = 320, height: int = 240, background=None):
    """Render the demo scene; returns a (2H, 2W, 3) uint8 grid: RGB, labels, depth, overlay.

    Args:
        object_name: a built-in object of :func:`honnotate.models.object.make_object`.
        width, height: image size in pixels.
        background: optional (H', W', 3) uint8 image for the overlay (resized to width x height).
    """
    import numpy as np
    import roma
    import torch
    from matplotlib import colormaps
    from PIL import Image

    from honnotate.models.hand import HandModel
    from honnotate.models.object import make_object
    from honnotate.models.open_hand import load_open_hand
    from honnotate.render import HAND_LABEL, OBJECT_LABEL, Renderer, SceneMesh
    from honnotate.synth.grasp import synthesize_grasp

    obj = make_object(object_name)
    # The open hand in a synthesized power grasp of the object (object frame), then the scene
    # turned and placed 0.45 m in front of the camera.
    hand = HandModel(load_open_hand("right"), dtype=torch.float64)
    g = synthesize_grasp(hand, obj.to_trimesh(), seed=0)
    with torch.no_grad():
        out = hand(torch.as_tensor(g.global_orient[None]), torch.as_tensor(g.hand_pose[None]),
                   torch.as_tensor(g.betas[None]), torch.as_tensor(g.transl[None]))
    R = roma.rotvec_to_rotmat(torch.tensor([1.2, 0.3, 0.2], dtype=torch.float64))
    t = torch.tensor([0.0, 0.0, 0.45], dtype=torch.float64)
    ov = (torch.as_tensor(obj.vertices) @ R.T + t).float()
    hv = (out.vertices[0] @ R.T + t).float()
    colors = None if obj.vertex_colors is None else torch.tensor(obj.vertex_colors, dtype=torch.float32) / 255.0
    uv = None if obj.uv is None else torch.tensor(obj.uv, dtype=torch.float32)
    tex = None if obj.texture is None else torch.tensor(obj.texture)
    f = 0.9 * width
    K = torch.tensor([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1.0]])

    class _Cam:
        def __init__(self):
            self.K, self.world_to_cam, self.width, self.height = K, torch.eye(4), width, height

    meshes = [
        SceneMesh(ov, torch.as_tensor(obj.faces), OBJECT_LABEL, vertex_colors=colors, uv=uv, texture=tex),
        SceneMesh(hv, torch.as_tensor(hand.faces).long(), HAND_LABEL),
    ]
    with torch.no_grad():
        res = Renderer(background_depth=0.0).render(meshes, [_Cam()], rgb=True)
    rgb = (res.rgb[0, 0].clamp(0, 1).numpy() * 255).astype(np.uint8)
    palette = np.array([[0, 0, 0], [60, 120, 255], [255, 170, 120]], dtype=np.uint8)
    labels = palette[res.labels[0, 0].numpy().clip(0, 2)]
    depth = res.depth[0, 0].numpy()
    valid = depth > 0
    d = np.zeros_like(depth)
    if valid.any():
        lo, hi = depth[valid].min(), depth[valid].max()
        d[valid] = 1.0 - (depth[valid] - lo) / max(hi - lo, 1e-6)
    depth_rgb = (colormaps["viridis"](d)[..., :3] * 255).astype(np.uint8)
    depth_rgb[~valid] = 0
    if background is None:
        yy, xx = np.mgrid[0:height, 0:width]
        background = np.stack([96 + 60 * (xx / width), 96 + 40 * (yy / height), np.full_like(xx, 110.0)], -1)
        background = background.astype(np.uint8)
    bg = np.asarray(Image.fromarray(np.asarray(background, dtype=np.uint8)).convert("RGB").resize((width, height)))
    sil = res.silhouettes[0, 0].numpy()  # (3, H, W) soft
    overlay = bg.astype(np.float32)
    for label in (OBJECT_LABEL, HAND_LABEL):
        a = 0.55 * sil[label][..., None]
        overlay = overlay * (1 - a) + palette[label].astype(np.float32) * a
    overlay = overlay.clip(0, 255).astype(np.uint8)
    return np.concatenate([np.concatenate([rgb, labels], 1), np.concatenate([depth_rgb, overlay], 1)], 0)


def register(app: typer.Typer) -> None:
    @app.command("render")
    def render_cmd(
        out: Path = typer.Argument(..., help="Output PNG: a 2x2 grid of RGB, labels, depth, overlay."),  # noqa: B008
        object_name: str = typer.Option("mustard_bottle", "--object", help="Built-in object name."),
        width: int = typer.Option(320, help="Image width in pixels."),
        height: int = typer.Option(240, help="Image height in pixels."),
        image: Path = typer.Option(None, help="Background image for the overlay (default: generated)."),  # noqa: B008
    ) -> None:
        """Render a hand + object scene (shaded RGB, labels, depth, overlay) to a PNG grid."""
        import numpy as np
        from PIL import Image

        if width <= 0 or height <= 0:
            raise typer.BadParameter(f"width and height must be positive, got {width}x{height}")
        background = None
        if image is not None:
            if not image.is_file():
                raise typer.BadParameter(f"background image {image} does not exist")
            background = np.asarray(Image.open(image).convert("RGB"))
        try:
            grid = render_demo_grid(object_name, width, height, background)
        except (KeyError, ValueError) as exc:
            raise typer.BadParameter(str(exc)) from exc
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(grid).save(out)
        typer.echo(f"wrote {out} ({grid.shape[1]}x{grid.shape[0]}: RGB | labels / depth | overlay)")
