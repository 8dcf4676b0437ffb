"""The HTTP/SSE/WebSocket API service."""
