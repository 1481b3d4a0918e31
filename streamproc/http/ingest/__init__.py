"""Ingest endpoints: the Segment-compatible collector and the Mailmodo, Mailjet and CleverTap
webhooks, into the raw topics."""
