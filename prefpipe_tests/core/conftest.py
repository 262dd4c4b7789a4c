"""Fixtures the core tests share with the annotation tests."""

from prefpipe_tests.annotate.conftest import clock, store  # noqa: F401 - fixtures
