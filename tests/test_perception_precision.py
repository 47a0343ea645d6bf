"""``--precision auto``: bf16 exactly where its steps are fast (AMX CPUs, CUDA GPUs with bfloat16)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from honnotate.perception import train as train_mod
from honnotate.perception.data import CompositeConfig
from honnotate.perception.train import TrainConfig, cpu_has_amx, resolve_precision


def test_cpu_has_amx_reads_the_flags(tmp_path):
    amx, avx, other = tmp_path / "amx", tmp_path / "avx", tmp_path / "other"
    amx.write_text("processor\t: 0\nmodel name\t: Xeon\nflags\t\t: fpu avx512_bf16 amx_bf16 amx_tile\n")
    avx.write_text("processor\t: 0\nflags\t\t: fpu avx512_bf16 amx_tile_x\n")
    other.write_text("model name\t: amx_bf16 in a name is not a flag\n")
    assert cpu_has_amx(amx) and not cpu_has_amx(avx) and not cpu_has_amx(other)
    assert not cpu_has_amx(tmp_path / "missing")


@pytest.mark.parametrize("amx", [True, False])
def test_auto_precision_follows_the_hardware(monkeypatch, amx):
    monkeypatch.setattr(train_mod, "cpu_has_amx", lambda: amx)
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == ("bf16" if amx else "fp32")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: not amx)
    assert resolve_precision("auto", torch.device("cuda")) == ("fp32" if amx else "bf16")


def test_auto_precision_run_records_what_ran(monkeypatch, tmp_path):
    from honnotate.perception.weights import load_weights

    monkeypatch.setattr(train_mod, "cpu_has_amx", lambda: True)
    syn = CompositeConfig(width=64, height=48, objects=("sphere",), grasps_per_object=1)
    cfg = TrainConfig(task="keypoints", out=str(tmp_path), steps=1, batch=1, device="cpu", precision="auto",
                      arch={"width": 16, "stages": 1, "stage_width": 16},
                      synthetic=dataclasses.replace(syn, crop=dataclasses.replace(syn.crop, size=32)))
    train_mod.train(cfg)
    assert load_weights("keypoints", tmp_path)[1]["train"]["precision"] == "bf16"
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="fp16")
