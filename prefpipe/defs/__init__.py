"""Every Dagster object of prefpipe: a folder per asset group, a file per asset (its config and
checks beside it), the resources, partitions, jobs and automation. prefpipe.definitions loads
this folder."""
