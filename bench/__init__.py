"""The benchmark suite: ``python -m bench.run [--quick] [--only NAME] [--json PATH]`` (docs/performance.md)."""
