"""Getting data out of prefpipe and back in: TRL preference files, a dataset card, and the
task/annotation formats of Label Studio and Argilla, so teams can keep those tools as front ends."""
