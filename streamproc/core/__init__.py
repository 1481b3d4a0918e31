"""The pure core: events, routing, state model, records, errors, metric definitions and log
formatting; imports no Kafka, faust or HTTP client."""
