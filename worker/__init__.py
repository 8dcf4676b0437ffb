"""The job worker: pulls jobs, runs codex, publishes results."""
