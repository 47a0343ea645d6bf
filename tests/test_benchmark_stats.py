"""The perception benchmark's scene bootstrap interval against its definition."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest


def _perception_bench():
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "perception.py"
    spec = importlib.util.spec_from_file_location("bench_perception", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_scene_bootstrap_interval():
    boot = _perception_bench().scene_bootstrap
    # every scene at the same rate: no spread, whatever the joint count
    hits = np.tile([True, True, True, False], 10)
    assert boot(hits, np.repeat(np.arange(10), 4)) == (0.75, 0.75)
    # two scenes, one all hits, one all misses: a redraw can give either alone
    assert boot(np.array([True] * 10 + [False] * 10), np.repeat([0, 1], 10)) == (0.0, 1.0)
    # scenes that differ: the interval holds the overall rate and is wider than joint-level
    # binomial noise of the same joints (joints of a scene are not independent)
    rng = np.random.default_rng(1)
    rates = rng.uniform(0.6, 1.0, 20)
    scene = np.repeat(np.arange(20), 20)
    hits = rng.random(400) < rates[scene]
    lo, hi = boot(hits, scene)
    p = hits.mean()
    assert lo < p < hi
    assert hi - lo > 2 * 1.96 * np.sqrt(p * (1 - p) / 400)
    assert np.isnan(boot(np.zeros(0, bool), np.zeros(0, int))[0])


def test_difference_bootstrap():
    diff = _perception_bench().difference_bootstrap
    # constant rates per scene: no spread, the interval is the difference itself
    a = (np.tile([True, True, True, False], 10), np.repeat(np.arange(10), 4))
    b = (np.tile([True, False], 10), np.repeat(np.arange(10), 2))
    assert diff(*a, *b) == pytest.approx((0.25, 0.25))
    # two samples of one generator: the interval holds 0; a clearly better one: it excludes it
    rng = np.random.default_rng(2)
    scene = np.repeat(np.arange(40), 20)
    rates = rng.uniform(0.7, 1.0, 40)
    x, y = rng.random(800) < rates[scene], rng.random(800) < rates[rng.permutation(40)][scene]
    lo, hi = diff(x, scene, y, scene)
    assert lo < x.mean() - y.mean() < hi and lo < 0 < hi
    assert diff(x, scene, y & (rng.random(800) < 0.8), scene)[0] > 0
    assert np.isnan(diff(np.zeros(0, bool), np.zeros(0, int), *b)[0])


def test_pool_sets_is_one_sample_of_all_scenes():
    bench = _perception_bench()
    a = (np.array([True, True, False, True]), np.array([0, 0, 1, 1]))
    b = (np.array([False, False, True]), np.array([5, 5, 6]))  # scene numbers overlap a's after shifting
    out = bench.pool_sets([a, b, (np.zeros(0, bool), np.zeros(0, int))])
    assert out["pck"] == 4 / 7 and out["joints"] == 7 and out["scenes"] == 4
    # the interval is the bootstrap of the concatenation with each set's scenes kept apart
    ref = bench.scene_bootstrap(np.concatenate([a[0], b[0]]), np.array([0, 0, 1, 1, 2, 2, 3]))
    assert out["ci"] == ref
    assert bench.pool_sets([])["joints"] == 0
    with pytest.raises(ValueError, match="differ"):
        bench.pool_sets([(np.ones(3, bool), np.zeros(2, int))])


def test_pck_by_frame_visibility():
    split = _perception_bench().pck_by_frame_visibility
    errors = np.array([2.0, 12.0, 10.0, 30.0, 9.9, 50.0])
    frame_visible = np.array([11, 11, 10, 10, 3, 21])
    out = split(errors, frame_visible)
    assert out["more"] == (1 / 3, 3)  # 2 and 12 px in an 11-joint frame, 50 px in a 21-joint one
    assert out["at_most"] == (2 / 3, 3)  # 10 px counts as a hit (<= 10)
    empty = split(errors[:2], frame_visible[:2])
    assert np.isnan(empty["at_most"][0]) and empty["at_most"][1] == 0


def test_parse_other_sets():
    parse = _perception_bench().parse_sets
    assert parse("2000:20, 7000:40,11000") == [(2000, 20), (7000, 40), (11000, 20)]
    assert parse("") == []
    for bad in ("2000:x", "seeds", "2000:0"):
        try:
            parse(bad)
        except ValueError as exc:
            assert "--other-sets" in str(exc)
        else:
            raise AssertionError(f"{bad!r} accepted")


def test_pck_by_box_side():
    bench = _perception_bench()
    hits = np.array([True, False, True, True, False, True, False])
    side = np.array([100.0, 149.9, 150.0, 199.0, 200.0, 320.0, np.nan])
    bins = bench.pck_by_box_side(hits, side)
    assert bins[0] == (0.5, 2)  # under 150 px: 100 and 149.9
    assert bins[1] == (1.0, 2)  # 150 <= side < 200
    assert bins[2] == (0.5, 2)  # 200 and over; the frame without a box (nan) in no bin
    assert sum(n for _, n in bins) == 6
    assert np.isnan(bench.pck_by_box_side(hits[:1], side[:1])[2][0])
    assert bench.box_side_text(bins) == "0.500 (2); 1.000 (2); 0.500 (2)"


def _compare_bench():
    import sys

    bench = Path(__file__).resolve().parent.parent / "benchmarks"
    sys.path.insert(0, str(bench))  # perception_compare imports perception's sets
    try:
        spec = importlib.util.spec_from_file_location("bench_perception_compare", bench / "perception_compare.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(bench))
    return mod


def test_compare_cache_round_trip_and_bad_files(tmp_path, capsys):
    """perception_compare's cache: results come back as written; a fingerprint changes with the
    weights files and the set; a truncated or foreign file is reported by name and read as
    missing (computed anew), not an error."""
    mod = _compare_bench()
    hits, outside = np.array([True, False, True]), np.array([False, False, True])
    path = tmp_path / "a.npz"
    mod.save_cached(path, hits=hits, outside=outside, kinds=np.asarray(["near"], dtype=str))
    got = mod.load_cached(path)
    np.testing.assert_array_equal(got["hits"], hits)
    np.testing.assert_array_equal(got["outside"], outside)
    assert [str(k) for k in got["kinds"]] == ["near"]
    w = tmp_path / "w"
    w.mkdir()
    (w / "keypoints.pt").write_bytes(b"one")
    key = mod.fingerprint(w, "60000:200")
    assert key == mod.fingerprint(w, "60000:200") and key != mod.fingerprint(w, "60000:20")
    (w / "keypoints.pt").write_bytes(b"two")
    assert mod.fingerprint(w, "60000:200") != key
    path.write_bytes(path.read_bytes()[:20])  # truncated
    assert mod.load_cached(path) is None
    assert str(path) in capsys.readouterr().err
    np.savez(tmp_path / "b.npz", other=np.zeros(2))  # no hits array
    assert mod.load_cached(tmp_path / "b.npz") is None


def test_compare_variant_options_parse_and_refuse():
    """perception_compare's ``DIR@KEY=VALUE`` variants: numbers and booleans become Detector
    options; malformed options are refused, naming the variant."""
    mod = _compare_bench()
    assert mod.parse_variant("runs/w") == (Path("runs/w"), {})
    folder, kw = mod.parse_variant("runs/w@upright_weight=0.5@fine_keypoints=false")
    assert folder == Path("runs/w") and kw == {"upright_weight": 0.5, "fine_keypoints": False}
    for bad in ("runs/w@upright_weight", "runs/w@=1", "runs/w@upright_weight=half"):
        with pytest.raises(ValueError, match="variant 'runs/w@"):
            mod.parse_variant(bad)
