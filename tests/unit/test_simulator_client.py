"""The simulator's HTTP client: a kept-alive connection the server closed while idle is retried once."""

from __future__ import annotations

import socket
import threading

import pytest

from mlstack.simulator import Client, Report

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\": 1}\r\n"


def serve(answers_per_connection: int, connections: int) -> tuple[int, list[int]]:
    """A server answering N requests per connection, then closing it as nginx closes idle ones on reload."""
    listener = socket.create_server(("127.0.0.1", 0))
    served: list[int] = []

    def run() -> None:
        for _ in range(connections):
            conn, _ = listener.accept()
            with conn:
                for _ in range(answers_per_connection):
                    data = b""
                    while b"\r\n\r\n" not in data:
                        data += conn.recv(65536)
                    head, _, rest = data.partition(b"\r\n\r\n")
                    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                      if line.lower().startswith(b"content-length")))
                    while len(rest) < length:
                        rest += conn.recv(65536)
                    served.append(1)  # counted before answering: the client may assert as soon as it reads
                    conn.sendall(ANSWER)
        listener.close()

    threading.Thread(target=run, daemon=True).start()
    return listener.getsockname()[1], served


def test_a_reused_connection_closed_by_the_server_is_retried_once_on_a_new_one():
    port, served = serve(answers_per_connection=1, connections=2)
    report = Report()
    client = Client("127.0.0.1", port, report, threading.Lock())
    assert client.post("/api/predict", {"x": 1}, "u")[0] == 200
    assert client.post("/api/predict", {"x": 2}, "u")[0] == 200  # the first connection was closed meanwhile
    assert report.retried == 1 and len(served) == 2
    client.close()


def test_a_new_connection_that_fails_is_not_retried():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def reset_at_once() -> None:
        conn, _ = listener.accept()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()  # RST: nothing answered on a fresh connection is a failure, not a stale one

    threading.Thread(target=reset_at_once, daemon=True).start()
    report = Report()
    client = Client("127.0.0.1", port, report, threading.Lock())
    with pytest.raises(OSError):
        client.post("/api/predict", {"x": 1}, "u")
    assert report.retried == 0
    listener.close()
