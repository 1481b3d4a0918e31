"""The delivery engine shared by all destinations: retries, backoff, rate limits, auth pause and
the delivery ledger protocol."""
