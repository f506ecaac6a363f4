"""Benchmarks: `livevace bench <target>`; each target is a module here with
`add_arguments(parser)` and `run(args) -> dict` (the JSON written under bench/results/)."""
