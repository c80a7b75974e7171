"""The control-room HTTP API (FastAPI): ``uvicorn api.main:create_app --factory``."""
