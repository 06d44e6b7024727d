"""Serving an ASGI app with uvicorn so that a stop signal ends in a clean exit (status 0)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

import uvicorn

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GracefulServer(uvicorn.Server):
    """uvicorn's server without re-raising the stop signal after its graceful shutdown.

    uvicorn re-raises SIGTERM/SIGINT once stopped, which kills the process before the caller can
    close its database, queue and clients; a stop request should end `serve` normally instead.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Route SIGINT/SIGTERM to a graceful shutdown while serving."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
