"""Operator commands: dead letters (list, redrive), replay, wait --caught-up, and the topic reading
and time specs they share."""
