"""Assets of the `reports` group."""
