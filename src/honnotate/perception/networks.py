"""The two perception networks, in plain PyTorch (no torchvision).

* :class:`SegmentationNet`: a compact U-Net (GroupNorm, so batch size and train/eval modes do
  not change its output statistics) giving per-pixel logits for background / object / hand,
  and with ``num_classes=4`` forearm (:data:`FOREARM_CLASS`; the cue files have no such label:
  the detector ends hand and forearm together at the wrist).
* :class:`KeypointNet`: a convolutional pose machine on a square hand crop: a stride-4
  residual backbone (optionally with a stride-16 context branch, optionally with global self-attention
  layers there), then ``stages`` stages that each refine 21 heatmaps from the backbone
  features and the previous stage's heatmaps (intermediate supervision on every stage);
  with ``bones=1`` each stage also gives a line heatmap per bone (:data:`BONES`) that the next
  stage sees. The confidence of a joint is its heatmap peak (targets peak at 1 for visible joints).

Both take images ``(B, 3, H, W) float32`` in [0, 1] (RGB), any device; the normalisation is
inside the network. A keypoint network with ``depth=1`` takes RGB-D crops ``(B, 5, S, S)``: RGB,
then the depth channels of :func:`~honnotate.perception.crops.depth_channels`; a segmentation
network with ``depth=1`` RGB-D images ``(B, 5, H, W)``, the depth channels of
:func:`~honnotate.perception.crops.image_depth_channels`. Architectures are described by plain dicts (saved in the weights files),
built by :func:`build_network`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from honnotate.models.joints import SKELETON_BONES

__all__ = [
    "SegmentationNet",
    "KeypointNet",
    "build_network",
    "default_arch",
    "count_parameters",
    "full_arch",
    "grow_state_dict",
    "TASKS",
    "NUM_CLASSES",
    "FOREARM_CLASS",
    "NUM_JOINTS",
    "BONES",
    "DEPTH_CHANNELS",
]

#: Task names; a weights file holds one network for one task.
TASKS = ("segmentation", "keypoints")
NUM_CLASSES = 3
#: The forearm's label in the output of a segmentation network with ``num_classes=4``.
FOREARM_CLASS = 3
NUM_JOINTS = 21
#: Bones of the hand as (parent, child) joints in MANO order (the 20 of the finger chains,
#: :data:`~honnotate.models.joints.SKELETON_BONES`). A keypoint network with ``bones=1`` also
#: outputs one heatmap per bone (:func:`~honnotate.perception.crops.bone_targets`).
BONES = SKELETON_BONES
#: Extra input channels of an RGB-D keypoint network (``depth=1``): relative depth, validity.
DEPTH_CHANNELS = 2
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, ch), ch)


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
                         _norm(cout), nn.ReLU(inplace=True))


class _Residual(nn.Module):
    def __init__(self, ch: int, dilation: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(ch, ch, dilation=dilation),
                                  nn.Conv2d(ch, ch, 3, padding=dilation, dilation=dilation, bias=False), _norm(ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class _Normalize(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalises the 3 RGB channels; further (depth) channels pass unchanged."""
        rgb = (x[:, :3] - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        return rgb if x.shape[1] == 3 else torch.cat([rgb, x[:, 3:]], 1)


def _check_image(x: torch.Tensor, multiple: int, channels: int = 3) -> None:
    if x.ndim != 4 or x.shape[1] != channels:
        what = "RGB in [0, 1]" if channels == 3 else f"RGB in [0, 1] and {channels - 3} depth channels (depth_channels)"
        raise ValueError(f"expected images of shape (B, {channels}, H, W), {what}, got {tuple(x.shape)}")
    if x.shape[2] % multiple or x.shape[3] % multiple:
        raise ValueError(f"image height and width must be multiples of {multiple}, got {tuple(x.shape[2:])}")


class SegmentationNet(nn.Module):
    """Compact U-Net: a stem (``stem_stride`` 1 or 2), ``levels`` stride-2 encoder levels with
    ``min(base * 2**k, max_channels)`` channels, a dilated residual bottleneck, and a decoder with
    skip connections back to the stem's resolution.

    With ``stem_stride=2`` the U-Net runs at half the input resolution (about 5x less compute on
    CPU) and a light full-resolution branch (``refine_channels`` features of the image itself)
    restores sharp boundaries: the decoder output is upsampled, concatenated with it and mixed by
    a 1x1 and a 3x3 convolution before the head.

    Args:
        base: channels of the first level; max_channels: cap of the channels per level.
        levels: number of downsamplings after the stem (input sides must be multiples of
            ``stem_stride * 2**levels``).
        num_classes: output classes (3: background, object, hand; 4: and forearm).
        stem_stride: 1 (U-Net at full resolution) or 2. refine_channels: width of the
            full-resolution branch (stem_stride 2 only).
        depth: 1: RGB-D images, :data:`DEPTH_CHANNELS` more input channels after RGB (the
            capture's depth map through :func:`~honnotate.perception.crops.image_depth_channels`),
            seen by the U-Net's stem (the full-resolution branch sees RGB only); 0: RGB only.
    """

    def __init__(self, base: int = 16, levels: int = 4, max_channels: int = 96,
                 num_classes: int = NUM_CLASSES, stem_stride: int = 1, refine_channels: int = 8,
                 depth: int = 0) -> None:
        super().__init__()
        if depth not in (0, 1):
            raise ValueError(f"depth must be 0 (RGB images) or 1 (RGB-D images), got {depth}")
        self.in_channels = 3 + DEPTH_CHANNELS * int(depth)
        if num_classes not in (NUM_CLASSES, NUM_CLASSES + 1):
            raise ValueError(f"num_classes must be 3 (background, object, hand) or 4 (and forearm), got {num_classes}")
        if stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {stem_stride}")
        self.levels = levels
        self.stem_stride = stem_stride
        self.normalize = _Normalize()
        ch = [min(base * 2 ** k, max_channels) for k in range(levels + 1)]
        self.stem = nn.Sequential(_conv(self.in_channels, ch[0], stride=stem_stride), _conv(ch[0], ch[0]))
        self.down = nn.ModuleList(nn.Sequential(_conv(ch[k], ch[k + 1], stride=2), _conv(ch[k + 1], ch[k + 1]))
                                  for k in range(levels))
        self.bottleneck = nn.Sequential(_Residual(ch[-1], 2), _Residual(ch[-1], 4))
        self.up = nn.ModuleList(nn.Sequential(_conv(ch[k + 1] + ch[k], ch[k]), _conv(ch[k], ch[k]))
                                for k in reversed(range(levels)))
        if stem_stride == 2:
            r = refine_channels
            self.full = _conv(3, r)
            self.refine = nn.Sequential(nn.Conv2d(ch[0] + r, r, 1, bias=False), _norm(r), nn.ReLU(inplace=True),
                                        _conv(r, r))
            self.head = nn.Conv2d(r, num_classes, 1)
        else:
            self.head = nn.Conv2d(ch[0], num_classes, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) float RGB in [0, 1] (C = 3; 5 with ``depth``: then the depth channels)
        -> (B, num_classes, H, W) logits."""
        _check_image(image, self.stem_stride * 2 ** self.levels, self.in_channels)
        z = self.normalize(image)
        x = self.stem(z)
        skips = [x]
        for block in self.down:
            x = block(x)
            skips.append(x)
        x = self.bottleneck(skips.pop())
        for block in self.up:
            skip = skips.pop()
            x = nn.functional.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], 1))
        if self.stem_stride == 2:
            x = nn.functional.interpolate(x, size=image.shape[-2:], mode="bilinear", align_corners=False)
            x = self.refine(torch.cat([x, self.full(z[:, :3])], 1))
        return self.head(x)


#: Dilations of the keypoint backbone's residual blocks, repeated (the first three: the original network).
_BLOCK_DILATIONS = (1, 2, 4)
#: Index of the keypoint backbone's first residual block in ``backbone`` (after three convolutions).
_FIRST_BLOCK = 3
_FIRST_CONV = "backbone.0.0.weight"  # (width / 2, in_channels, 3, 3)
_SEG_FIRST_CONV = "stem.0.0.weight"  # (base, in_channels, 3, 3)


def _positions(h: int, w: int, ch: int, like: torch.Tensor) -> torch.Tensor:
    """Fixed 2D sinusoidal position code of an ``h x w`` grid: (h * w, ch), coordinates in [0, 1]
    across the grid (so any crop size gets the same code range), ``ch`` divisible by 4."""
    n = ch // 4
    freq = torch.pi * 2.0 ** torch.arange(n, device=like.device, dtype=like.dtype) / 2
    ys = (torch.arange(h, device=like.device, dtype=like.dtype) + 0.5) / h
    xs = (torch.arange(w, device=like.device, dtype=like.dtype) + 0.5) / w
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    ay, ax = yy.reshape(-1, 1) * freq, xx.reshape(-1, 1) * freq
    return torch.cat([ay.sin(), ay.cos(), ax.sin(), ax.cos()], 1)


class _GlobalAttention(nn.Module):
    """A transformer layer over all cells of a feature map (pre-norm multi-head self-attention
    with a fixed sinusoidal position code, then an MLP, each residual): every cell sees the whole
    hand, which is what tells one finger from its neighbour. Output projections start at zero in
    a grown network (:func:`grow_state_dict`), so the layer starts as the identity."""

    def __init__(self, ch: int, heads: int = 4) -> None:
        super().__init__()
        if ch % 4 or ch % heads:
            raise ValueError(f"context_width must be divisible by 4 and by {heads} for attention, got {ch}")
        self.heads = heads
        self.norm1 = nn.LayerNorm(ch)
        self.qkv = nn.Linear(ch, 3 * ch)
        self.proj = nn.Linear(ch, ch)
        self.norm2 = nn.LayerNorm(ch)
        self.mlp = nn.Sequential(nn.Linear(ch, 2 * ch), nn.GELU(), nn.Linear(2 * ch, ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)  # (B, h*w, C)
        q, k, v = self.qkv(self.norm1(t) + _positions(h, w, c, t)).reshape(b, h * w, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        a = nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, h * w, c)
        t = t + self.proj(a)
        t = t + self.mlp(self.norm2(t))
        return t.transpose(1, 2).reshape(b, c, h, w)


class _Context(nn.Module):
    """Context of the whole crop for the stride-4 features: two stride-2 convolutions (stride 16:
    8 x 8 cells for a 128-pixel crop), ``blocks`` residual blocks there, ``attention`` global
    self-attention layers, a 1 x 1 projection back to the features' channels, upsampled and added
    to the (non-negative) features before a ReLU. The projection's normalisation scale and shift
    at zero make it the identity."""

    def __init__(self, ch: int, width: int, blocks: int, attention: int = 0) -> None:
        super().__init__()
        self.down = nn.Sequential(_conv(ch, width, stride=2), _conv(width, width, stride=2))
        self.blocks = nn.Sequential(*(_Residual(width) for _ in range(blocks)))
        # no attention: no module, so files written before it existed load unchanged
        self.attention = nn.Sequential(*(_GlobalAttention(width) for _ in range(attention))) if attention else None
        self.up = nn.Sequential(nn.Conv2d(width, ch, 1, bias=False), _norm(ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.blocks(self.down(x))
        if self.attention is not None:
            y = self.attention(y)
        y = self.up(y)
        y = nn.functional.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return torch.relu(x + y)


class KeypointNet(nn.Module):
    """Multi-stage heatmap network (convolutional pose machine) for 21 hand joints.

    Args:
        width: backbone channels (at stride 4).
        stages: refinement stages (>= 1); every stage outputs heatmaps.
        stage_width: channels inside a stage.
        num_joints: heatmap channels (21, MANO order).
        blocks: residual blocks of the backbone at stride 4 (dilations 1, 2, 4, 1, 2, 4, ...).
        context: residual blocks of a context branch at stride 16 whose output is added to the
            backbone features (0: no branch). context_width: its channels.
        context_attention: global self-attention layers at the end of the context branch (0: none).
        depth: 1: the crop has :data:`DEPTH_CHANNELS` more channels after RGB, the hand's depth
            relative to the crop centre and its validity (:func:`~honnotate.perception.crops.depth_channels`,
            from the capture's depth map); 0: RGB only.
        bones: 1: every stage also outputs a heatmap per bone of :data:`BONES` (a line along the
            bone; trained against :func:`~honnotate.perception.crops.bone_targets`), which the next
            stage sees beside the joints' (the finger chains as a whole, against a joint put on
            another finger's); 0: joints only. ``forward`` returns the joints' heatmaps either way.

    The heatmaps are at 1/4 of the crop resolution (``stride = 4``). A network with more
    ``blocks`` can start from the weights of one with fewer: :func:`grow_state_dict` (the extra
    blocks start as the identity, so the grown network computes what the smaller one did).
    """

    stride = 4

    def __init__(self, width: int = 64, stages: int = 3, stage_width: int = 64, num_joints: int = NUM_JOINTS,
                 blocks: int = 3, context: int = 0, context_width: int = 128, context_attention: int = 0,
                 depth: int = 0, bones: int = 0) -> None:
        super().__init__()
        if stages < 1:
            raise ValueError(f"stages must be >= 1, got {stages}")
        if blocks < 0:
            raise ValueError(f"blocks must be >= 0, got {blocks}")
        if context < 0 or context_width < 1:
            raise ValueError(f"context must be >= 0 and context_width >= 1, got {context}, {context_width}")
        if context_attention < 0 or (context_attention and not context):
            raise ValueError(f"context_attention must be >= 0 and needs a context branch (context >= 1), "
                             f"got {context_attention} with context {context}")
        if depth not in (0, 1):
            raise ValueError(f"depth must be 0 (RGB crops) or 1 (RGB-D crops), got {depth}")
        if bones not in (0, 1):
            raise ValueError(f"bones must be 0 (joint heatmaps) or 1 (joint and bone heatmaps), got {bones}")
        self.num_joints = num_joints
        outputs = num_joints + len(BONES) * int(bones)
        self.in_channels = 3 + DEPTH_CHANNELS * int(depth)
        self.normalize = _Normalize()
        self.backbone = nn.Sequential(
            _conv(self.in_channels, width // 2, stride=2), _conv(width // 2, width // 2), _conv(width // 2, width, stride=2),
            *(_Residual(width, _BLOCK_DILATIONS[k % len(_BLOCK_DILATIONS)]) for k in range(blocks)),
        )
        # stride-16 context (0: none; files written before it existed have none)
        self.context = _Context(width, context_width, context, context_attention) if context else None
        self.stages = nn.ModuleList()
        for s in range(stages):
            cin = width + (outputs if s else 0)
            self.stages.append(nn.Sequential(
                _conv(cin, stage_width), _conv(stage_width, stage_width, dilation=2),
                _conv(stage_width, stage_width, dilation=4), _conv(stage_width, stage_width, dilation=8),
                nn.Conv2d(stage_width, outputs, 1),
            ))

    def forward(self, crop: torch.Tensor, *, with_bones: bool = False) -> list[torch.Tensor] | tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(B, C, S, S) float crops (RGB in [0, 1], then the depth channels when ``depth``) -> list
        (one per stage) of (B, 21, S/4, S/4) joint heatmaps; ``with_bones`` (a ``bones=1``
        network): the pair (that list, the list of (B, 20, S/4, S/4) bone heatmaps)."""
        if with_bones and self.stages[0][-1].out_channels == self.num_joints:
            raise ValueError("this keypoint network has no bone heatmaps (architecture bones=0)")
        _check_image(crop, self.stride, self.in_channels)
        feats = self.backbone(self.normalize(crop))
        if self.context is not None:
            feats = self.context(feats)
        out = []
        x = feats
        for stage in self.stages:
            hm = stage(x)
            out.append(hm)
            x = torch.cat([feats, hm], 1)
        joints = [hm[:, :self.num_joints] for hm in out]
        return (joints, [hm[:, self.num_joints:] for hm in out]) if with_bones else joints


_DEFAULTS: dict[str, dict[str, Any]] = {
    # the U-Net at half resolution with a full-resolution refinement branch: 3.6x faster to train
    # on CPU than at full resolution (benchmarks/perception_train.py: 0.57 vs 2.06 s per step of 8
    # images at 320x240, one thread)
    "segmentation": {"base": 16, "levels": 3, "max_channels": 64, "stem_stride": 2, "refine_channels": 8,
                     "num_classes": NUM_CLASSES, "depth": 0},
    "keypoints": {"width": 64, "stages": 3, "stage_width": 64, "blocks": 3, "context": 0, "context_width": 128,
                  "context_attention": 0, "depth": 0, "bones": 0},
}


def default_arch(task: str) -> dict[str, Any]:
    """The default architecture dict of ``task`` ("segmentation" or "keypoints")."""
    if task not in _DEFAULTS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    return dict(_DEFAULTS[task])


def full_arch(task: str, arch: dict[str, Any] | None = None) -> dict[str, Any]:
    """``arch`` with the defaults of ``task`` filled in (files written before a key existed
    name only the keys of their time; the missing ones had the default's value)."""
    return {**default_arch(task), **(arch or {})}


def _zero_depth_inputs(weight: torch.Tensor) -> torch.Tensor:
    """A first convolution's (out, 3, k, k) weights with :data:`DEPTH_CHANNELS` zero input
    channels appended: (out, 3 + DEPTH_CHANNELS, k, k)."""
    return torch.cat([weight, weight.new_zeros(weight.shape[0], DEPTH_CHANNELS, *weight.shape[2:])], 1)


def grow_state_dict(task: str, state: dict[str, torch.Tensor], arch_from: dict[str, Any],
                    arch_to: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The state dict of a ``task`` network of architecture ``arch_to`` that computes what the
    network ``state`` (architecture ``arch_from``) computes.

    Keypoint networks grow by more backbone ``blocks``, a ``context`` branch added to a
    network without one (any ``context_width``), attention layers added to it, depth input
    channels added to an RGB network, bone heatmaps (``bones`` 0 to 1: the stages' new outputs
    and the next stages' weights on them start at zero, so the joints' heatmaps are unchanged); segmentation networks by the forearm class
    (``num_classes`` 3 to 4: its logit starts as the background's less 4, so every pixel keeps its
    label until training moves it) and by depth input channels (``depth`` 0 to 1). The extra residual blocks and the branch get
    freshly initialised convolutions and a zero scale and shift on their last normalisation, so
    each adds nothing to its input (which is >= 0 after a ReLU) until training moves that scale;
    the first convolution's weights on the new depth channels start at zero (both tasks).

    Raises:
        ValueError: the architectures differ otherwise (naming the keys).
    """
    a, b = full_arch(task, arch_from), full_arch(task, arch_to)
    if a == b:
        return dict(state)
    diff = sorted(k for k in b if a.get(k) != b[k])
    if task == "segmentation":
        classes_ok = "num_classes" not in diff or (a["num_classes"], b["num_classes"]) == (NUM_CLASSES, NUM_CLASSES + 1)
        if not set(diff) <= {"num_classes", "depth"} or not classes_ok or b["depth"] < a["depth"]:
            raise ValueError(f"cannot grow a segmentation network {a} into {b} (keys {diff}): only the forearm "
                             "class can be added (num_classes 3 to 4) and depth channels to an RGB network (depth 0 to 1)")
        out = dict(state)
        if "num_classes" in diff:
            w, bias = state["head.weight"], state["head.bias"]
            out["head.weight"] = torch.cat([w, w[:1]], 0)
            out["head.bias"] = torch.cat([bias, bias[:1] - 4.0], 0)
        if "depth" in diff:  # the stem's first convolution sees the new channels through zero weights
            out[_SEG_FIRST_CONV] = _zero_depth_inputs(state[_SEG_FIRST_CONV])
        return out
    context_ok = a["context"] == 0 or (a["context"], a["context_width"]) == (b["context"], b["context_width"])
    if (task != "keypoints" or not set(diff) <= {"blocks", "context", "context_width", "context_attention", "depth", "bones"}
            or b["blocks"] < a["blocks"] or not context_ok or b["context_attention"] < a["context_attention"]
            or b["depth"] < a["depth"] or b["bones"] < a["bones"]):
        raise ValueError(f"cannot grow a {task} network {a} into {b} (keys {diff}): only more keypoint backbone "
                         "blocks, a context branch where there was none, more attention layers in it, "
                         "depth channels added to RGB crops and bone heatmaps added are supported")
    grown = build_network(task, b)
    out = grown.state_dict()
    out.update(state)
    if b["depth"] > a["depth"]:  # the first convolution sees the new channels through zero weights
        out[_FIRST_CONV] = _zero_depth_inputs(state[_FIRST_CONV])
    if b["bones"] > a["bones"]:  # bone outputs at zero, and the next stages see them through zero weights
        for s in range(b["stages"]):
            head, first = f"stages.{s}.4", f"stages.{s}.0.0.weight"
            w = state[f"{head}.weight"]
            out[f"{head}.weight"] = torch.cat([w, w.new_zeros(len(BONES), *w.shape[1:])], 0)
            out[f"{head}.bias"] = torch.cat([state[f"{head}.bias"], w.new_zeros(len(BONES))], 0)
            if s:
                w = state[first]
                out[first] = torch.cat([w, w.new_zeros(w.shape[0], len(BONES), *w.shape[2:])], 1)
    zero = [f"backbone.{_FIRST_BLOCK + k}.body.2" for k in range(a["blocks"], b["blocks"])]
    if a["context"] == 0 and b["context"] > 0:
        zero.append("context.up.1")
    if a["context"] > 0:  # attention layers added to an existing branch: residual outputs at zero
        zero += [f"context.attention.{k}.{name}" for k in range(a["context_attention"], b["context_attention"])
                 for name in ("proj", "mlp.2")]
    for norm in zero:
        out[f"{norm}.weight"] = torch.zeros_like(out[f"{norm}.weight"])
        out[f"{norm}.bias"] = torch.zeros_like(out[f"{norm}.bias"])
    return out


def build_network(task: str, arch: dict[str, Any] | None = None) -> nn.Module:
    """The network of ``task`` with the architecture ``arch`` (defaults filled in).

    Raises:
        ValueError: unknown task or architecture key.
    """
    unknown = set(arch or {}) - set(default_arch(task))
    if unknown:
        raise ValueError(f"unknown {task} architecture keys {sorted(unknown)}; expected {sorted(default_arch(task))}")
    full = full_arch(task, arch)
    return SegmentationNet(**full) if task == "segmentation" else KeypointNet(**full)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (trainable or not) of ``module``."""
    return sum(p.numel() for p in module.parameters())
