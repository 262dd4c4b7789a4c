"""Assets of the `people` group."""
