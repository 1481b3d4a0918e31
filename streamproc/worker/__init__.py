"""The worker's faust agents (ingest, state, delivery), the output producer, the delivery ledger
table and the periodic summary."""
