"""Assets of the `inputs` group."""
