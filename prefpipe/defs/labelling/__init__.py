"""Assets of the `labelling` group."""
