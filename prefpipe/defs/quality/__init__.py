"""Assets of the `quality` group."""
