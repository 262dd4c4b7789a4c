"""Assets of the `outputs` group."""
