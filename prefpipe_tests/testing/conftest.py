"""The LLM-layer fixtures (`server`, `guidelines`, `client`: see prefpipe_tests/llm/fixtures.py),
offered to every test of this folder without importing them into each module."""

from prefpipe_tests.llm.fixtures import client, guidelines, server  # noqa: F401 - fixtures
