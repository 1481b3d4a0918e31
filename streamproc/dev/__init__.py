"""Development on embedded defaults: local Kafka broker, sandbox APIs, demo and sample events."""
