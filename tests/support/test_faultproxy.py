"""The fault proxy against a tiny HTTP echo server: each fault demonstrably happens, and only it."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.support.faultproxy import FaultProxy, Policy


@dataclass
class Received:
    body: bytes
    complete: bool


@dataclass
class EchoServer:
    """Answers each HTTP/1.1 request with its own body, on a kept-alive connection; records what arrived."""

    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self) -> None:
        self._stop = True
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    try:
                        data = conn.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                while len(buf) < length:
                    try:
                        data = conn.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        self.received.append(Received(buf, complete=False))
                        return
                    buf += data
                body, buf = buf[:length], buf[length:]
                self.received.append(Received(body, complete=True))
                try:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                except OSError:
                    return


class Client:
    """A raw HTTP/1.1 client on one connection, so the tests see exactly what came back."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def request(self, body: bytes) -> bytes | None:
        """The response body, or None if the connection ended (or was reset) before it was complete."""
        try:
            self.sock.sendall(b"PUT /transfers/t_1/parts/0 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                              % len(body) + body)
            while b"\r\n\r\n" not in self.buf:
                data = self.sock.recv(65536)
                if not data:
                    return None
                self.buf += data
            head, _, self.buf = self.buf.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK")
            length = int(head.split(b"Content-Length:")[1].split(b"\r\n")[0])
            while len(self.buf) < length:
                data = self.sock.recv(65536)
                if not data:
                    return None
                self.buf += data
        except (ConnectionResetError, BrokenPipeError):
            return None
        body, self.buf = self.buf[:length], self.buf[length:]
        return body


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture
def proxied(echo: EchoServer) -> Iterator[object]:
    started: list[FaultProxy] = []

    def make(policy: Policy, seed: int = 1) -> FaultProxy:
        proxy = FaultProxy(policy, seed=seed, upstream=("127.0.0.1", echo.port)).start()
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.stop()


def _differ_by_one_bit(a: bytes, b: bytes) -> bool:
    if len(a) != len(b):
        return False
    diffs = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
    return len(diffs) == 1 and bin(diffs[0][0] ^ diffs[0][1]).count("1") == 1


def _wait_for(condition: object, seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.01)


BODY = os.urandom(300_000)


def test_pass_through_is_untouched(echo: EchoServer, proxied) -> None:
    proxy = proxied(Policy())
    client = Client(proxy.port)
    assert client.request(BODY) == BODY
    assert client.request(b"second") == b"second"
    client.close()
    assert [r.body for r in echo.received] == [BODY, b"second"]
    assert proxy.counts.connections == 1 and proxy.counts.requests == 2
    assert proxy.counts.corruptions == proxy.counts.drops == proxy.counts.truncations == 0


def test_flip_request_changes_one_bit_of_each_body_only(echo: EchoServer, proxied) -> None:
    proxy = proxied(Policy(flip_request=1.0))
    client = Client(proxy.port)
    answers = [client.request(BODY), client.request(BODY[:1000]), client.request(b"")]
    client.close()
    # The headers were left alone (the server framed every request), each body lost one bit; kept-alive
    # requests are damaged one by one, and an empty body cannot be.
    assert [r.complete for r in echo.received] == [True, True, True]
    assert _differ_by_one_bit(echo.received[0].body, BODY)
    assert _differ_by_one_bit(echo.received[1].body, BODY[:1000])
    assert echo.received[2].body == b""
    assert answers == [r.body for r in echo.received]
    assert proxy.counts.request_flips == 2 and proxy.counts.response_flips == 0


def test_faults_strike_requests_on_a_kept_alive_connection_at_random(echo: EchoServer, proxied) -> None:
    proxy = proxied(Policy(flip_request=0.5))
    client = Client(proxy.port)
    for _ in range(40):
        client.request(BODY[:10_000])
    client.close()
    damaged = [r.body != BODY[:10_000] for r in echo.received]
    assert len(damaged) == 40 and 5 < sum(damaged) < 35
    assert proxy.counts.request_flips == sum(damaged) and proxy.counts.requests == 40


def test_flip_response_changes_one_bit_of_the_answer(echo: EchoServer, proxied) -> None:
    proxy = proxied(Policy(flip_response=1.0))
    client = Client(proxy.port)
    answer = client.request(BODY)
    client.close()
    assert echo.received[0].body == BODY
    assert answer is not None and _differ_by_one_bit(answer, BODY)
    assert proxy.counts.response_flips == 1 and proxy.counts.request_flips == 0


def test_truncate_closes_mid_body(echo: EchoServer, proxied) -> None:
    proxy = proxied(Policy(truncate=1.0))
    client = Client(proxy.port)
    assert client.request(BODY) is None
    client.close()
    _wait_for(lambda: echo.received)
    [got] = echo.received
    assert not got.complete and len(got.body) < len(BODY) and BODY.startswith(got.body)
    assert proxy.counts.truncations == 1


def test_drop_cuts_the_connection_after_n_bytes(echo: EchoServer, proxied) -> None:
    proxy = proxied(Policy(drop=1.0, drop_after=(1000, 1000)))
    client = Client(proxy.port)
    assert client.request(BODY) is None
    client.close()
    _wait_for(lambda: echo.received)
    [got] = echo.received
    # 1000 bytes passed in all, some of them the request's headers.
    assert not got.complete and 0 < len(got.body) < 1000 and BODY.startswith(got.body)
    assert proxy.counts.drops == 1 and proxy.counts.bytes_up == 1000


def test_a_drop_past_the_end_of_the_traffic_is_not_counted(echo: EchoServer, proxied) -> None:
    proxy = proxied(Policy(drop=1.0, drop_after=(10 << 20, 10 << 20)))
    client = Client(proxy.port)
    assert client.request(b"small") == b"small"
    client.close()
    assert proxy.counts.drops == 0


def test_delay_holds_the_request_and_the_response(echo: EchoServer, proxied) -> None:
    proxy = proxied(Policy(delay=1.0, delay_seconds=(0.3, 0.3)))
    client = Client(proxy.port)
    started = time.monotonic()
    assert client.request(BODY) == BODY
    assert time.monotonic() - started >= 0.6
    client.close()
    assert proxy.counts.delays == 1


def test_the_same_seed_draws_the_same_faults(echo: EchoServer, proxied) -> None:
    policy = Policy(drop=0.2, truncate=0.2, flip_request=0.2, flip_response=0.2, drop_after=(10, 100_000))

    def run(seed: int) -> list[bytes | None]:
        proxy = proxied(policy, seed=seed)
        results = []
        for _ in range(20):
            client = Client(proxy.port)
            results.append(client.request(BODY[:50_000]))
            client.close()
        return results

    first, second = run(42), run(42)
    assert first == second
    # A mix: some answers intact, some lost, some damaged.
    assert BODY[:50_000] in first and None in first
    assert any(r is not None and r != BODY[:50_000] for r in first)


def test_owed_faults_strike_once_where_they_can(echo: EchoServer, proxied) -> None:
    proxy = proxied(Policy())
    proxy.owe("flip_request", "truncate", "drop")
    client = Client(proxy.port)  # the owed drop takes this connection: cut within its first 64 bytes
    assert client.request(b"") is None
    client.close()
    client = Client(proxy.port)
    # An empty body cannot be damaged: the owed request faults wait for the next bodies, in turn.
    assert client.request(b"") == b""
    client.close()
    client = Client(proxy.port)
    answer = client.request(BODY)
    assert answer is not None and _differ_by_one_bit(answer, BODY)
    assert client.request(BODY) is None
    client.close()
    client = Client(proxy.port)
    assert [client.request(BODY) for _ in range(3)] == [BODY] * 3  # nothing is owed any more
    client.close()
    counts = proxy.counts
    assert (counts.drops, counts.request_flips, counts.truncations) == (1, 1, 1)
    with pytest.raises(ValueError, match="no such fault"):
        proxy.owe("melt")


def test_chances_must_add_up() -> None:
    with pytest.raises(ValueError):
        Policy(drop=0.6, delay=0.6)
    with pytest.raises(ValueError):
        Policy(truncate=0.6, flip_response=0.6)
    Policy(drop=0.6, flip_request=0.6)  # one per connection, the other per request
    with pytest.raises(ValueError):
        Policy(delay=-0.1)


def test_no_upstream_refuses_the_connection() -> None:
    with FaultProxy(Policy()) as proxy:
        client = Client(proxy.port)
        assert client.request(b"x") is None
        client.close()
        assert proxy.counts.connections == 1
