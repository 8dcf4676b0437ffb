"""Plain, typed service functions behind the thin handlers in `functions/`.

Each module owns one use case; handlers decode their trigger into a pydantic model, call one
function here and map the outcome to ack / retry / HTTP status. Nothing here imports a web
framework.
"""
