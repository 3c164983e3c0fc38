"""A TCP server that accepts connections and never says a word: a hung
database or tracking server, or one behind a firewall that swallows its
answers. A client with no deadline of its own waits on it for ever, so after
`rescue_after` seconds the server hangs up: a regression then fails its
test instead of holding the suite."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def silent_server(rescue_after: float = 30.0) -> Iterator[int]:
    """The port of a server that never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held: list[socket.socket] = []
    lock = threading.Lock()

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn = server.accept()[0]
                with lock:
                    held.append(conn)

    def hang_up() -> None:
        with lock:
            for conn in held:
                conn.close()
            held.clear()

    threading.Thread(target=accept, daemon=True).start()
    rescue = threading.Timer(rescue_after, hang_up)
    rescue.daemon = True
    rescue.start()
    try:
        yield server.getsockname()[1]
    finally:
        rescue.cancel()
        server.close()
        hang_up()
