"""Development tools: the local stack (`make run`) and the process helpers its tests and benchmarks share."""
