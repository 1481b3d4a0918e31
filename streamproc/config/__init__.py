"""Configuration: settings from the environment, topics.yaml, Kafka connection details and
`streamproc topics apply|check`."""
