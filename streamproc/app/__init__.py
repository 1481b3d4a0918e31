"""The assembled worker process: create_app (agents, runtime, HTTP pages) and running it until
SIGTERM."""
