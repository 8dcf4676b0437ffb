"""The local platform: real emulators, functions under functions-framework, the worker with the
real codex binary, wired the way Eventarc and Cloud Scheduler deliver events in production."""
