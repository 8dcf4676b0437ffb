"""Common code for every codex-cloud process: settings, logging, errors, models, job store
and the cloud adapters."""
