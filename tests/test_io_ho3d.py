"""honnotate.io.ho3d: annotation pickles (safe reading), HO-3D depth PNG encoding."""

from __future__ import annotations

import pickle
import pickletools

import cv2
import numpy as np
import pytest
import torch

from honnotate.io.files import CaptureFormatError
from honnotate.io.ho3d import (
    ANNOTATION_KEYS,
    HO3D_DEPTH_SCALE,
    decode_ho3d_depth,
    encode_ho3d_depth,
    read_ho3d_annotation,
    read_ho3d_depth_png,
    write_ho3d_annotation,
    write_ho3d_depth_png,
)
from honnotate.io.safe_pickle import UnsafePickleError

RNG = np.random.default_rng(2)


def _annotation() -> dict:
    return {
        "handPose": RNG.normal(size=48),
        "handTrans": RNG.normal(size=3),
        "handBeta": RNG.normal(size=10),
        "handJoints3D": RNG.normal(size=(21, 3)) * 0.05 + [0.0, 0.0, -0.5],
        "objRot": RNG.normal(size=(3, 1)),
        "objTrans": np.array([0.01, -0.02, -0.45]),
        "objCorners3DRest": RNG.normal(size=(8, 3)) * 0.05,
        "objCorners3D": RNG.normal(size=(8, 3)) * 0.05,
        "objName": "006_mustard_bottle",
        "objLabel": np.int64(5),
        "camMat": np.array([[617.343, 0.0, 312.42], [0.0, 617.343, 241.42], [0.0, 0.0, 1.0]]),
    }


def _globals(data: bytes) -> set[str]:
    """Module.name of every GLOBAL opcode in a protocol-2 pickle."""
    return {arg.replace(" ", ".") for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"}


def test_annotation_round_trip(tmp_path):
    ann = _annotation()
    p = write_ho3d_annotation(tmp_path / "0000.pkl", ann)
    out = read_ho3d_annotation(p, required=ANNOTATION_KEYS)
    assert set(out) == set(ann)
    for key in ann:
        if key in ("objName", "objLabel"):
            assert out[key] == ann[key]
        else:
            assert out[key].dtype == np.float32 and out[key].shape == np.shape(ann[key])
            np.testing.assert_allclose(out[key], ann[key], rtol=1e-6, atol=1e-6)
    assert isinstance(out["objLabel"], int)


def test_annotation_pickle_is_portable(tmp_path):
    p = write_ho3d_annotation(tmp_path / "a.pkl", _annotation())
    data = p.read_bytes()
    assert data[:2] == b"\x80\x02"  # protocol 2
    names = _globals(data)
    assert "numpy.core.multiarray._reconstruct" in names
    assert not any(n.startswith("numpy._core") for n in names)  # numpy-1.x readable
    plain = pickle.loads(data, encoding="latin1")  # our own file: what the HO-3D toolkit does
    np.testing.assert_allclose(plain["handPose"], read_ho3d_annotation(p)["handPose"])


def test_annotation_extras_none_and_torch(tmp_path):
    ann = _annotation()
    ann["handJoints3D"] = torch.zeros(21, 3, dtype=torch.float64)
    ann["handPose"] = None  # HO-3D leaves unannotated hand fields None
    ann["handBoundingBox"] = np.array([1.0, 2.0, 30.0, 40.0])
    ann["comment"] = "synthetic"
    out = read_ho3d_annotation(write_ho3d_annotation(tmp_path / "a.pkl", ann))
    assert out["handPose"] is None and out["comment"] == "synthetic"
    assert out["handJoints3D"].shape == (21, 3) and out["handBoundingBox"].shape == (4,)


@pytest.mark.parametrize("mutate,match", [
    (lambda a: a.pop("objTrans"), "missing annotation keys.*objTrans"),
    (lambda a: a.update(handPose=np.zeros(45)), r"'handPose' has shape \(45,\)"),
    (lambda a: a.update(camMat=np.full((3, 3), np.inf)), "'camMat' contains non-finite"),
    (lambda a: a.update(objName=3), "'objName' must be a string"),
    (lambda a: a.update(objLabel=1.5), "'objLabel' must be an integer"),
    (lambda a: a.update(handBeta=np.array(["a"] * 10)), "'handBeta' must be numeric"),
])
def test_annotation_writer_validation_names_file_and_key(tmp_path, mutate, match):
    ann = _annotation()
    mutate(ann)
    with pytest.raises(ValueError, match=f"w.pkl.*{match}"):
        write_ho3d_annotation(tmp_path / "w.pkl", ann)
    assert not (tmp_path / "w.pkl").exists()


def test_annotation_reader_validation_names_file_and_key(tmp_path):
    ann = _annotation()
    ann["handJoints3D"] = np.zeros((20, 3), np.float32)
    p = tmp_path / "bad.pkl"
    p.write_bytes(pickle.dumps(ann, protocol=2))
    with pytest.raises(CaptureFormatError, match=r"bad.pkl.*'handJoints3D' has shape \(20, 3\)"):
        read_ho3d_annotation(p)
    p.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(CaptureFormatError, match="bad.pkl.*must be a dict"):
        read_ho3d_annotation(p)
    p.write_bytes(pickle.dumps({"objName": "x"}, protocol=2))
    with pytest.raises(CaptureFormatError, match="bad.pkl.*missing annotation keys"):
        read_ho3d_annotation(p, required=("objName", "objTrans"))


def test_annotation_truncated_pickle_names_file(tmp_path):
    p = write_ho3d_annotation(tmp_path / "cut.pkl", _annotation())
    p.write_bytes(p.read_bytes()[:50])
    with pytest.raises(ValueError, match="cut.pkl"):
        read_ho3d_annotation(p)
    with pytest.raises(FileNotFoundError, match="none.pkl"):
        read_ho3d_annotation(tmp_path / "none.pkl")


class _Payload:
    """Unpickling this calls builtins.open(path, "w"): it creates a file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_malicious_pickle_refused_and_not_run(tmp_path):
    # The payload works with a plain unpickler (so the test below can fail) ...
    probe = tmp_path / "probe_created"
    pickle.loads(pickle.dumps({"x": _Payload(probe)}, protocol=2)).get("x").close()
    assert probe.exists()
    # ... and the annotation reader refuses it without running it.
    marker = tmp_path / "pwned"
    ann = _annotation()
    ann["objName"] = _Payload(marker)
    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps(ann, protocol=2))
    with pytest.raises(UnsafePickleError, match=r"evil.pkl.*refused to load global .*open"):
        read_ho3d_annotation(p)
    assert not marker.exists()


@pytest.mark.parametrize("template", [
    b"cos\nsystem\n(S'touch {m}'\ntR.",  # protocol 0, os.system
    b"cposix\nsystem\n(S'touch {m}'\ntR.",
    b"cbuiltins\neval\n(S'open(\"{m}\", \"w\")'\ntR.",
    b"cnumpy\nsave\n(S'{m}'\nI0\ntR.",  # a numpy global that is not array reconstruction
])
def test_handcrafted_malicious_pickles_refused(tmp_path, template):
    marker = tmp_path / "m"
    p = tmp_path / "evil.pkl"
    p.write_bytes(template.replace(b"{m}", str(marker).encode()))
    with pytest.raises(UnsafePickleError, match="evil.pkl"):
        read_ho3d_annotation(p)
    assert not marker.exists()


def test_depth_encoding_golden():
    d = np.array([[0.0, 1.0, 65535 * HO3D_DEPTH_SCALE]])
    img = encode_ho3d_depth(d)
    assert img.dtype == np.uint8 and img.shape == (1, 3, 3)
    units_1m = round(1.0 / HO3D_DEPTH_SCALE)  # 8001
    np.testing.assert_array_equal(img[0, 0], [0, 0, 0])
    np.testing.assert_array_equal(img[0, 1], [units_1m % 256, units_1m // 256, 0])
    np.testing.assert_array_equal(img[0, 2], [255, 255, 0])


@pytest.mark.parametrize("hw", [(1, 1), (2, 5), (48, 64)])
def test_depth_encoding_round_trip(hw):
    d = RNG.uniform(0.0, 8.0, hw)
    out = decode_ho3d_depth(encode_ho3d_depth(d))
    assert out.dtype == np.float32 and out.shape == hw
    assert np.abs(out - d).max() <= HO3D_DEPTH_SCALE / 2 + 1e-6


def test_depth_png_matches_toolkit_channel_order(tmp_path):
    """The HO-3D toolkit: cv2.imread (BGR) then depth[:, :, 2] + depth[:, :, 1] * 256."""
    d = RNG.uniform(0.2, 1.5, (48, 64))
    d[0, :5] = 0.0
    p = write_ho3d_depth_png(tmp_path / "0000.png", d)
    bgr = cv2.imread(str(p))
    toolkit = (bgr[:, :, 2].astype(np.float64) + bgr[:, :, 1] * 256.0) * HO3D_DEPTH_SCALE
    ours = read_ho3d_depth_png(p)
    np.testing.assert_allclose(ours, toolkit, atol=1e-6)
    assert np.abs(ours - d).max() <= HO3D_DEPTH_SCALE / 2 + 1e-6
    np.testing.assert_allclose(decode_ho3d_depth(bgr[..., ::-1]), ours)


def test_depth_encoding_bad_input(tmp_path):
    with pytest.raises(ValueError, match="HO-3D encoding range"):
        encode_ho3d_depth(np.full((2, 2), 9.0))
    with pytest.raises(ValueError, match=">= 0"):
        encode_ho3d_depth(np.full((2, 2), -1.0))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        encode_ho3d_depth(np.zeros((2, 2, 1)))
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        decode_ho3d_depth(np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="d.png.*range"):
        write_ho3d_depth_png(tmp_path / "d.png", np.full((2, 2), 9.0))
    with pytest.raises(ValueError, match="losslessly"):
        write_ho3d_depth_png(tmp_path / "d.jpg", np.zeros((2, 2)))
