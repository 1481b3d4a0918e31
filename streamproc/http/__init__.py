"""The worker's HTTP pages: health, readiness, metrics, caught-up, the status page and the ingest
endpoints."""
