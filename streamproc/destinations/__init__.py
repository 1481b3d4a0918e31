"""Destinations: per-vendor mapping of sink records to HTTP requests and reading of the answers,
pure (no auth, no I/O)."""
