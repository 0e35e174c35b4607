"""The admin HTTP API (FastAPI on uvicorn, in the daemon's event loop)."""
