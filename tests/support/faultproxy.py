"""A real TCP proxy on loopback that damages HTTP/1.1 traffic between two nodes, on purpose.

Faults are drawn with a seeded ``random.Random`` (so a failing run can be replayed with the same
seed), from a :class:`Policy`:

* per connection, at most one of
  ``drop``: cut the connection (TCP reset) after N bytes have passed, both directions counted; or
  ``delay``: wait before forwarding the first bytes of the request side and of the response side;
* per request on the connection (HTTP/1.1 framing by Content-Length, so kept-alive connections
  are damaged request by request), at most one of
  ``truncate``: forward the headers and part of the body, then close the connection both ways;
  ``flip_request``: flip one bit of one byte of the request body (never the headers);
  ``flip_response``: flip one bit of one byte of the body of that request's response.

Only faults that actually happened are counted in :class:`Counts` (a drop armed for after 5 MB on a
connection that carried 1 MB is not a drop; a flip drawn for an empty body is not a flip). A
message the proxy cannot frame (chunked, or no length) is forwarded untouched, as is the rest of
its connection.

Usage: ``proxy = FaultProxy(Policy(drop=0.1, flip_request=0.1), seed=7).start()``, then
``proxy.upstream = ("127.0.0.1", real_port)`` (may be set or changed after start), clients use
``proxy.url``, and ``proxy.stop()``; ``proxy.counts.summary()`` for the report.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from dataclasses import dataclass, field, fields

CONNECTION_FAULTS = ("drop", "delay")
REQUEST_FAULTS = ("truncate", "flip_request", "flip_response")
OWED_DROP_WITHIN = 64  # bytes: less than any HTTP request
_CHUNK = 256 * 1024
_MAX_HEADERS = 64 * 1024


def _draw(rng: random.Random, chances: dict[str, float]) -> str | None:
    roll = rng.random()
    for name, chance in chances.items():
        roll -= chance
        if roll < 0:
            return name
    return None


@dataclass(frozen=True)
class Policy:
    """Chances per connection (drop, delay) and per request (truncate, flip_request, flip_response)."""

    drop: float = 0.0
    delay: float = 0.0
    truncate: float = 0.0
    flip_request: float = 0.0
    flip_response: float = 0.0
    drop_after: tuple[int, int] = (1, 4 << 20)  # bytes, both directions together
    delay_seconds: tuple[float, float] = (0.05, 0.5)

    def __post_init__(self) -> None:
        for group in (CONNECTION_FAULTS, REQUEST_FAULTS):
            chances = [getattr(self, name) for name in group]
            if sum(chances) > 1.0 + 1e-9 or min(chances) < 0:
                raise ValueError(f"the chances of {', '.join(group)} must be >= 0 and sum to at most 1")

    def connection_fault(self, rng: random.Random) -> str | None:
        return _draw(rng, {name: getattr(self, name) for name in CONNECTION_FAULTS})

    def request_fault(self, rng: random.Random) -> str | None:
        return _draw(rng, {name: getattr(self, name) for name in REQUEST_FAULTS})


@dataclass
class Counts:
    """What the proxy did, for the closing report."""

    connections: int = 0
    requests: int = 0
    drops: int = 0
    delays: int = 0
    truncations: int = 0
    request_flips: int = 0
    response_flips: int = 0
    bytes_up: int = 0
    bytes_down: int = 0

    @property
    def corruptions(self) -> int:
        return self.request_flips + self.response_flips

    def summary(self) -> str:
        return ", ".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))


@dataclass
class _Segment:
    kind: str  # "head", "body" or "raw" (not framed)
    message: int  # 0 for the first message on the connection
    data: bytes
    offset: int = 0  # of data within the message body
    body_length: int = 0  # of the message's body, once its head is complete
    starts: bool = False  # the head of ``message`` ends here (a "head" segment)


class _Framer:
    """Splits one direction of an HTTP/1.1 connection into heads and Content-Length bodies."""

    def __init__(self, requests: bool) -> None:
        self.requests = requests
        self.head = bytearray()
        self.remaining: int | None = None  # body bytes still to come; None while in a head
        self.length = 0
        self.message = 0
        self.raw = False

    def split(self, data: bytes) -> list[_Segment]:
        out: list[_Segment] = []
        i = 0
        while i < len(data):
            if self.raw:
                out.append(_Segment("raw", self.message, data[i:]))
                break
            if self.remaining is None:
                before = len(self.head)
                self.head += data[i:]
                end = self.head.find(b"\r\n\r\n")
                if end < 0:
                    self.raw = len(self.head) > _MAX_HEADERS
                    out.append(_Segment("head", self.message, data[i:]))
                    break
                taken = end + 4 - before
                length = self._body_length(bytes(self.head[:end]))
                out.append(_Segment("head", self.message, data[i:i + taken], body_length=max(length or 0, 0),
                                    starts=True))
                i += taken
                self.head = bytearray()
                if length is None:
                    self.raw = True  # chunked, or a response running to the close: leave it alone
                    continue
                self.length, self.remaining = length, length
            if self.remaining == 0:
                self.remaining = None
                self.message += 1
                continue
            assert self.remaining is not None
            take = min(self.remaining, len(data) - i)
            out.append(_Segment("body", self.message, data[i:i + take], offset=self.length - self.remaining,
                                body_length=self.length))
            self.remaining -= take
            i += take
            if self.remaining == 0:
                self.remaining = None
                self.message += 1
        return out

    def _body_length(self, head: bytes) -> int | None:
        lines = head.split(b"\r\n")
        length: int | None = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"transfer-encoding":
                return None
            if name == b"content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    return None
        if length is None:
            # A request without a length has no body; a response without one runs to the close,
            # unless its status says it has no body.
            status = lines[0].split(b" ")[1:2]
            if self.requests or status in ([b"204"], [b"304"]) or status[:1] and status[0].startswith(b"1"):
                return 0
        return length


class _Connection:
    def __init__(self, proxy: FaultProxy, client: socket.socket, upstream: socket.socket,
                 rng: random.Random) -> None:
        self.proxy, self.client, self.upstream = proxy, client, upstream
        drawn = proxy.policy.connection_fault(rng)
        owed = proxy.take_owed(CONNECTION_FAULTS)
        self.fault = owed or drawn
        # Each direction has its own generator: the two threads must not share one.
        self.rng_up, self.rng_down = random.Random(rng.getrandbits(64)), random.Random(rng.getrandbits(64))
        self.lock = threading.Lock()
        self.closed = False
        self.passed_bytes = 0
        self.drop_at = rng.randint(*proxy.policy.drop_after) if self.fault == "drop" else None
        if owed == "drop":
            self.drop_at = rng.randint(1, OWED_DROP_WITHIN)  # owed: it must strike even a short exchange
        self.delay = rng.uniform(*proxy.policy.delay_seconds) if self.fault == "delay" else 0.0
        self.flip_responses: set[int] = set()  # responses (by number) to damage, as the requests drew

    def run(self) -> None:
        threads = [threading.Thread(target=self._pump, args=(self.client, self.upstream, True), daemon=True),
                   threading.Thread(target=self._pump, args=(self.upstream, self.client, False), daemon=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.close(reset=False)

    def close(self, reset: bool) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for sock in (self.client, self.upstream):
            try:
                if reset:
                    # SO_LINGER 0 turns close into a TCP reset, the harshest cut; SHUT_RD wakes our
                    # other thread's recv without sending a FIN first.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.shutdown(socket.SHUT_RD)
                else:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                sock.close()
            except OSError:
                pass

    def _count(self, name: str) -> None:
        with self.proxy.lock:
            setattr(self.proxy.counts, name, getattr(self.proxy.counts, name) + 1)

    def _plan(self, segment: _Segment, up: bool, rng: random.Random) -> tuple[str | None, int]:
        """The fault for the message whose head just ended, and the body offset it strikes at."""
        fault: str | None
        if up:
            self._count("requests")
            fault = self.proxy.policy.request_fault(rng)
            # An owed fault waits for a request with a body to strike.
            fault = (self.proxy.take_owed(REQUEST_FAULTS) if segment.body_length else None) or fault
            if fault == "flip_response":
                with self.lock:
                    self.flip_responses.add(segment.message)
                return None, 0
        else:
            with self.lock:
                fault = "flip_response" if segment.message in self.flip_responses else None
                self.flip_responses.discard(segment.message)
        if fault is None or segment.body_length == 0:
            return None, 0  # nothing to damage in an empty body
        return fault, rng.randrange(segment.body_length)

    def _pump(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        framer = _Framer(requests=up)
        rng = self.rng_up if up else self.rng_down
        fault: str | None = None
        target = 0
        delayed = False
        try:
            while True:
                try:
                    data = src.recv(_CHUNK)
                except OSError:
                    break
                if not data:
                    break
                if self.delay and not delayed:
                    # Once before the request side and once before the response side.
                    time.sleep(self.delay)
                    delayed = True
                    if up:
                        self._count("delays")
                out = bytearray()
                for segment in framer.split(data):
                    piece = bytearray(segment.data)
                    if segment.starts:
                        fault, target = self._plan(segment, up, rng)
                    elif segment.kind == "body" and fault is not None:
                        at = target - segment.offset
                        if 0 <= at < len(piece):
                            if fault == "truncate":
                                self._send(dst, bytes(out + piece[:at]), up)
                                self._count("truncations")
                                self.close(reset=False)
                                return
                            piece[at] ^= 1 << rng.randrange(8)
                            self._count("request_flips" if up else "response_flips")
                            fault = None
                    out += piece
                if not self._send(dst, bytes(out), up):
                    return
        finally:
            if not self.closed:
                # Half-close: the other direction may still be answering.
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

    def _send(self, dst: socket.socket, data: bytes, up: bool) -> bool:
        if self.drop_at is not None:
            with self.lock:
                room = self.drop_at - self.passed_bytes
                self.passed_bytes += len(data)
            if room <= len(data):
                if room > 0:
                    self._sendall(dst, data[:room], up)
                if not self.closed:
                    self._count("drops")
                self.drop_at = None
                self.close(reset=True)
                return False
        return self._sendall(dst, data, up)

    def _sendall(self, dst: socket.socket, data: bytes, up: bool) -> bool:
        try:
            dst.sendall(data)
        except OSError:
            return False
        with self.proxy.lock:
            if up:
                self.proxy.counts.bytes_up += len(data)
            else:
                self.proxy.counts.bytes_down += len(data)
        return True


@dataclass
class FaultProxy:
    """A loopback TCP proxy with faults; ``start()`` binds 127.0.0.1 port 0 and serves on a thread."""

    policy: Policy = field(default_factory=Policy)
    seed: int = 0
    upstream: tuple[str, int] | None = None
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        self.counts = Counts()
        self.lock = threading.Lock()
        self._rng = random.Random(self.seed)
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._connections: list[_Connection] = []
        self._owed: list[str] = []
        self.port = 0

    def owe(self, *faults: str) -> None:
        """Strike each of ``faults`` once, on top of the drawn ones: a connection fault at the next new
        connection, a request fault at the next request with a body (a test that must see every kind
        of fault asks for those chance did not bring)."""
        unknown = set(faults) - set(CONNECTION_FAULTS) - set(REQUEST_FAULTS)
        if unknown:
            raise ValueError(f"no such fault: {', '.join(sorted(unknown))}")
        with self.lock:
            self._owed.extend(faults)

    def take_owed(self, group: tuple[str, ...]) -> str | None:
        """The first owed fault of ``group``, now no longer owed; None if none is."""
        with self.lock:
            for fault in self._owed:
                if fault in group:
                    self._owed.remove(fault)
                    return fault
        return None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FaultProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, 0))
        listener.listen(128)
        listener.settimeout(0.2)
        self._listener = listener
        self.port = int(listener.getsockname()[1])
        self._thread = threading.Thread(target=self._accept_loop, name=f"faultproxy-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._listener is not None:
            self._listener.close()
        with self.lock:
            live = list(self._connections)
        for conn in live:
            conn.close(reset=False)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            with self.lock:
                self.counts.connections += 1
                rng = random.Random(self._rng.getrandbits(64))
                upstream_address = self.upstream
            if upstream_address is None:
                client.close()
                continue
            try:
                upstream = socket.create_connection(upstream_address, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()  # the node behind is down (perhaps killed on purpose): refuse likewise
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(self, client, upstream, rng)
            with self.lock:
                self._connections = [c for c in self._connections if not c.closed] + [conn]
            threading.Thread(target=conn.run, name=f"faultproxy-conn-{self.counts.connections}",
                             daemon=True).start()
