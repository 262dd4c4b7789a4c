"""The dataset card is rendered from the same small batch the exports are tested on."""

from prefpipe_tests.exports.conftest import small_batch  # noqa: F401 - fixtures
