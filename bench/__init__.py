"""streamproc benchmarks (see bench/README section in the top-level README)."""
