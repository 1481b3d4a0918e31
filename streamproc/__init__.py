"""streamproc: a self-hosted Kafka stream processor for Segment, Mailmodo, Mailjet and CleverTap."""
__version__ = "0.1.0"
