"""One partition per batch: a dynamic partition, registered when a batch folder appears."""

import dagster as dg

batches = dg.DynamicPartitionsDefinition(name="batches")
