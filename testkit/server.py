"""The dse app served by uvicorn in a thread on a free loopback port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def serve(app, start_timeout: float = 30.0) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 (any free port) while the block runs; yields its URL."""
    import uvicorn

    sock = socket.socket(
        socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP
    )  # api.cli.serve bind: NODELAY
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        raise RuntimeError("uvicorn did not start")
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


# How long a test that needs a 201 lets the POST wait for creation (s). The POST answers as
# soon as sampling is done; on a loaded machine (the suite beside another job) 30 s turned
# some into 202s.
CREATE_WAIT = 300
