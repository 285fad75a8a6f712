"""Observation: comm-event listeners, statistics, problems and logging."""
