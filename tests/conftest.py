"""Test-session settings: built models go to a fresh cache, so every run tests today's builder."""

import os
import tempfile

import pytest


@pytest.fixture(scope="session", autouse=True)
def _fresh_model_cache():
    if os.environ.get("HONNOTATE_TEST_KEEP_CACHE"):  # opt out for fast local iterations
        yield
        return
    old = os.environ.get("HONNOTATE_CACHE")
    with tempfile.TemporaryDirectory(prefix="honnotate-test-cache-") as tmp:
        os.environ["HONNOTATE_CACHE"] = tmp
        yield
    if old is None:
        os.environ.pop("HONNOTATE_CACHE", None)
    else:
        os.environ["HONNOTATE_CACHE"] = old
