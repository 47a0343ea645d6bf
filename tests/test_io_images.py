"""honnotate.io.images and honnotate.io.files: round trips, validation, corrupt files, atomicity."""

from __future__ import annotations

import os

import numpy as np
import pytest

from honnotate.io import files as files_mod
from honnotate.io.files import CaptureFormatError, atomic_write_bytes
from honnotate.io.images import (
    depth_units_to_metres,
    image_size,
    metres_to_depth_units,
    read_depth_png,
    read_image,
    read_label_png,
    verify_image,
    write_depth_png,
    write_image,
    write_label_png,
)

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("hw", [(1, 1), (2, 3), (48, 64)])
def test_rgb_png_round_trip_exact(tmp_path, hw):
    img = RNG.integers(0, 256, hw + (3,), dtype=np.uint8)
    p = write_image(tmp_path / "a.png", img)
    out = read_image(p)
    assert out.dtype == np.uint8 and out.shape == hw + (3,)
    np.testing.assert_array_equal(out, img)
    assert image_size(p) == (hw[1], hw[0])


def test_rgb_jpeg_round_trip_close(tmp_path):
    yy, xx = np.mgrid[0:48, 0:64]
    img = np.stack([xx * 4, yy * 5, (xx + yy) * 2], -1).astype(np.uint8)  # smooth: JPEG-friendly
    out = read_image(write_image(tmp_path / "a.jpg", img))
    assert out.shape == img.shape
    assert np.abs(out.astype(int) - img).mean() < 3.0


def test_grey_image_read_as_rgb(tmp_path):
    grey = RNG.integers(0, 256, (5, 7), dtype=np.uint8)
    out = read_image(write_image(tmp_path / "g.png", grey))
    assert out.shape == (5, 7, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey)


def test_depth_png_round_trip_full_range(tmp_path):
    d = RNG.integers(0, 65536, (48, 64), dtype=np.uint16)
    d[0, 0], d[0, 1] = 0, 65535
    out = read_depth_png(write_depth_png(tmp_path / "d.png", d))
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, d)


def test_label_png_round_trip(tmp_path):
    lab = RNG.integers(0, 3, (6, 9), dtype=np.uint8)
    np.testing.assert_array_equal(read_label_png(write_label_png(tmp_path / "l.png", lab)), lab)


def test_metres_units_golden_and_round_trip():
    d = np.array([[0.0, 0.5, 1.2344]], dtype=np.float32)
    units = metres_to_depth_units(d, 0.001)
    np.testing.assert_array_equal(units, [[0, 500, 1234]])
    back = depth_units_to_metres(units, 0.001)
    assert back.dtype == np.float32
    assert np.abs(back - d).max() <= 0.0005 + 1e-7


@pytest.mark.parametrize("bad", [np.array([[-0.1]]), np.array([[np.nan]]), np.array([[70.0]])])
def test_metres_to_units_rejects_bad_depth(bad):
    with pytest.raises(ValueError):
        metres_to_depth_units(bad, 0.001)


def test_depth_scale_must_be_positive():
    with pytest.raises(ValueError, match="depth_scale"):
        depth_units_to_metres(np.zeros((2, 2), np.uint16), 0.0)


def _truncate(path, n_bytes):
    data = path.read_bytes()
    path.write_bytes(data[:n_bytes])  # negative: cut that many bytes off the end


@pytest.mark.parametrize("writer,reader", [
    (lambda p: write_image(p, RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8)), read_image),
    (lambda p: write_depth_png(p, RNG.integers(0, 65535, (48, 64), dtype=np.uint16)), read_depth_png),
    (lambda p: write_label_png(p, RNG.integers(0, 3, (48, 64), dtype=np.uint8)), read_label_png),
])
def test_truncated_file_error_names_file(tmp_path, writer, reader):
    p = tmp_path / "x.png"
    writer(p)
    _truncate(p, p.stat().st_size // 2)
    assert image_size(p) == (64, 48)  # header intact: size comes without decoding
    with pytest.raises(CaptureFormatError, match="x.png"):
        reader(p)
    with pytest.raises(CaptureFormatError, match="x.png"):
        verify_image(p)


def test_verify_catches_truncation_in_end_chunk(tmp_path):
    p = write_image(tmp_path / "x.png", RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    _truncate(p, -5)  # pixel data intact, end chunk cut
    assert read_image(p).shape == (8, 8, 3)
    with pytest.raises(CaptureFormatError, match="x.png"):
        verify_image(p)


def test_garbage_and_missing_files(tmp_path):
    p = tmp_path / "junk.png"
    p.write_bytes(b"not an image at all")
    for fn in (read_image, read_depth_png, read_label_png, image_size, verify_image):
        with pytest.raises(CaptureFormatError, match="junk.png"):
            fn(p)
    for fn in (read_image, read_depth_png, read_label_png, image_size, verify_image):
        with pytest.raises(FileNotFoundError, match="nope.png"):
            fn(tmp_path / "nope.png")


def test_mode_mismatch_errors(tmp_path):
    rgb = write_image(tmp_path / "rgb.png", np.zeros((4, 4, 3), np.uint8))
    depth = write_depth_png(tmp_path / "depth.png", np.ones((4, 4), np.uint16) * 1000)
    with pytest.raises(CaptureFormatError, match="rgb.png.*read_ho3d_depth_png"):
        read_depth_png(rgb)
    with pytest.raises(CaptureFormatError, match="depth.png.*8-bit colour"):
        read_image(depth)
    with pytest.raises(CaptureFormatError, match="rgb.png.*single-channel"):
        read_label_png(rgb)


def test_writer_input_validation_names_file(tmp_path):
    with pytest.raises(ValueError, match="a.png.*uint8"):
        write_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="a.png.*uint8"):
        write_image(tmp_path / "a.png", np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="suffix"):
        write_image(tmp_path / "a.bmp", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="d.png.*uint16"):
        write_depth_png(tmp_path / "d.png", np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="losslessly"):
        write_depth_png(tmp_path / "d.jpg", np.zeros((4, 4), np.uint16))
    assert not list(tmp_path.iterdir())  # nothing written on error


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "f.bin"
    atomic_write_bytes(p, b"old content")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(files_mod.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(p, b"new content that never lands")
    monkeypatch.undo()
    assert p.read_bytes() == b"old content"
    assert os.listdir(tmp_path) == ["f.bin"]  # temporary file cleaned up


def test_atomic_write_creates_parents_and_replaces(tmp_path):
    p = tmp_path / "a" / "b" / "f.txt"
    atomic_write_bytes(p, b"1", durable=False)
    atomic_write_bytes(p, b"22")
    assert p.read_bytes() == b"22"
    assert os.listdir(p.parent) == ["f.txt"]
