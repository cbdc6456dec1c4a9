"""Library defaults shared by :mod:`analysis.summary` and the CLI (no heavy imports here, so
``analyze --help`` can show them)."""

DEFAULT_BY = ("engine", "workload", "dataset", "workers", "threads_per_worker")
DEFAULT_METRICS = ("train_s", "wall_s")
