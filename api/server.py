"""Running the app: one log format stamped with request ids, and uvicorn."""

from __future__ import annotations

import logging

__all__ = ["configure_logging", "run_server"]


def configure_logging(level: int) -> None:
    """One format for every log line, each stamped with the request (or job) id, client-controlled values
    escaped (``EscapingFormatter``)."""
    from .observability import EscapingFormatter, RequestIdFilter

    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    for handler in root.handlers:
        handler.setFormatter(EscapingFormatter())
        handler.addFilter(RequestIdFilter())
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


def run_server(app, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, proxy_headers=False,
                timeout_graceful_shutdown=10)
