"""The concurrency layer: the clock, the task runner, single-flight and background refresh."""
