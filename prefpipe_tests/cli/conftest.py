"""The command-line tests use the fixtures of the libraries their commands drive."""

from prefpipe_tests.annotate.conftest import clock, http, live, store  # noqa: F401 - fixtures
from prefpipe_tests.exports.conftest import small_batch  # noqa: F401 - fixtures
from prefpipe_tests.llm.fixtures import client, guidelines, server  # noqa: F401 - fixtures
