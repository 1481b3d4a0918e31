"""`streamproc dlq list|redrive`: reading the dead-letter topics and putting records back."""
