"""DNS rebinding: the real server gives its websocket (the whole app) only to the host names it serves."""

from __future__ import annotations

import socket

import pytest

from tests.e2e.test_browser import start_dashboard


def _handshake_status(port: int, host: str) -> str:
    """The status line the server answers a websocket upgrade with, for this Host / Origin."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        request = (
            f"GET /_stcore/stream HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: http://{host}\r\nSec-WebSocket-Protocol: streamlit\r\n\r\n"
        )
        connection.sendall(request.encode())
        return connection.recv(200).split(b"\r\n")[0].decode()


@pytest.mark.slow
def test_a_rebound_host_gets_no_websocket(tmp_path):
    process, url, _ = start_dashboard(tmp_path / "data")
    try:
        port = int(url.rsplit(":", 1)[1])
        assert _handshake_status(port, f"127.0.0.1:{port}").endswith("101 Switching Protocols")
        assert _handshake_status(port, f"localhost:{port}").endswith("101 Switching Protocols")
        for rebound in (f"attacker.example:{port}", "attacker.example", f"127.0.0.1.attacker.example:{port}"):
            assert _handshake_status(port, rebound).endswith("403 Forbidden"), rebound
    finally:
        process.terminate()
        process.wait(timeout=30)
