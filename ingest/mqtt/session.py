"""A blocking, subscribe-only MQTT client session on one thread (the daemon's receive path).

Lifecycle: ``Session(options, handler)``, ``start()`` runs the connection thread, ``ack(mids)``
from any thread releases deliveries, ``stop()`` sends the queued acknowledgements, DISCONNECTs and
joins. The thread connects (persistent session unless ``clean_start``), subscribes, and then loops:
one ``recv`` of up to 256 KiB, every complete packet decoded, all PUBLISHes of that read handed
to ``handler.on_messages`` in one list, and all acknowledgements queued since the last read sent in
one ``sendall``. It sends PINGREQ when idle for the keep-alive, drops a connection that stays silent
past 1.5 keep-alives, and reconnects with jittered exponential backoff (reset only once a connection
has been subscribed for ``stable_after`` seconds, so a broker that accepts and then misbehaves is
retried ever more slowly). Acknowledgements go out only
when ``ack`` is called, in the order given (the caller keeps them in receive order). With
``receive_maximum`` QoS > 0 deliveries unacknowledged it stops reading the socket until acks come
(TCP backpressure): the bound holds even where a broker over-sends (Mosquitto 2.0.11 does, for a
resumed session's backlog), overshooting by at most one read.

QoS 2 in: ``ack`` of a QoS 2 delivery sends PUBREC; the server's PUBREL is answered with PUBCOMP.
A PUBLISH repeated before its PUBREL is answered with PUBREC again and not delivered twice.

Bounds against a hostile or broken broker: no packet over ``max_packet_size`` is read into memory
(a larger PUBLISH is read and discarded chunk by chunk and handed to ``on_messages`` as an
:class:`~ingest.mqtt.packets.Oversized` to dead-letter and acknowledge; any other oversize packet
drops the connection); the handshake up to CONNACK has one overall deadline (``connect_timeout``);
a PINGRESP without a PINGREQ outstanding is a protocol error. The limit is deliberately not
advertised as MQTT 5 Maximum Packet Size: a broker would then drop such a message for this client
without trace (Mosquitto 2.0.11 PUBACKs the publisher and logs only at debug level), where the
session reports it.

Failures no retry fixes are a :class:`BrokerProblem` (operator action needed): a CONNACK refusing the
credentials ("bad user name or password", "not authorised"), and another client with the same client
id taking the session over (the broker's MQTT 5 DISCONNECT 0x8E; where it just closes, as 3.1.1 must
and Mosquitto 2.0 does for MQTT 5 too: :data:`TAKEOVER_CLOSES` connections in a row closed by the
broker before ``stable_after``).
The session still retries with backoff, logs an ERROR once per episode (its repeats at DEBUG), and
hands the problem to ``handler.on_problem`` as it starts and ``None`` as it ends (a CONNACK accepted;
for a takeover, ``stable_after`` seconds subscribed).
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from core.backoff import Backoff
from ingest.mqtt import packets as pk
from ingest.mqtt.packets import Ack, Connack, Disconnect, Oversized, Parser, ProtocolError, Publish, Suback

log = logging.getLogger("iot.mqtt")

RECV_BYTES = 256 * 1024
CONNACK_REASONS = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
    0x80: "unspecified error",
    0x84: "unsupported protocol version",
    0x85: "client identifier not valid",
    0x86: "bad user name or password",
    0x87: "not authorised",
    0x88: "server unavailable",
    0x89: "server busy",
    0x8A: "banned",
}


CREDENTIAL_REFUSALS = frozenset({4, 5, 0x86, 0x87})  # bad user name or password, not authorised
SESSION_TAKEN_OVER = 0x8E  # MQTT 5 DISCONNECT reason: another connection with this client id
TAKEOVER_CLOSES = 3  # closes right after CONNACK in a row that mean the same (no DISCONNECT 0x8E sent)


class ProblemKind(Enum):
    """Why the broker keeps refusing or ending the connection, where only an operator can help."""

    CREDENTIALS = "credentials refused"
    TAKEN_OVER = "session taken over"


@dataclass(frozen=True)
class BrokerProblem:
    """A failure no retry will fix: ``message`` is one line for the log and /healthz."""

    kind: ProblemKind
    message: str


class ConnectionLost(Exception):
    """The current connection ended (closed, timed out, refused or protocol error); ``closed``: the
    broker closed it; ``problem``: it is one an operator must fix."""

    def __init__(self, message: str, problem: BrokerProblem | None = None, closed: bool = False) -> None:
        super().__init__(message)
        self.problem = problem
        self.closed = closed


class Handler(Protocol):
    """Callbacks, all on the session thread.

    Acknowledgements handed to :meth:`Session.ack` belong to the current connection: the session
    discards everything still queued once ``on_connection_lost`` has returned, so the handler must not
    ack a delivery of a connection after its ``on_connection_lost`` returned (reset its tracker there).
    """

    def on_connected(self, session_present: bool) -> None: ...
    def on_subscribed(self, reasons: list[int]) -> None: ...
    def on_messages(self, messages: list[Publish | Oversized]) -> None: ...
    def on_connection_lost(self, reason: str) -> None: ...
    def on_problem(self, problem: BrokerProblem | None) -> None:
        """An operator-action problem started (or, with None, ended); the session retries meanwhile."""
        ...


@dataclass(frozen=True)
class Options:
    host: str
    port: int
    client_id: str
    subscriptions: Sequence[tuple[str, int]]  # (topic filter, QoS)
    v5: bool = True
    clean_start: bool = False
    session_expiry: int = 0xFFFFFFFF
    receive_maximum: int = 65535
    max_unacked: int | None = None  # stop reading at this many unacknowledged deliveries (default receive_maximum)
    keepalive: int = 30
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: ssl.SSLContext | None = None
    retain_handling: int = 2  # MQTT 5: do not send retained messages on subscribe
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    stable_after: float = 10.0  # seconds subscribed before the reconnect backoff starts over
    connect_timeout: float = 10.0  # for the whole handshake: TCP, TLS, CONNECT up to CONNACK
    max_packet_size: int = pk.MAX_REMAINING  # largest packet read into memory (not advertised: see above)


class Session:
    def __init__(self, options: Options, handler: Handler) -> None:
        self.options = options
        self.handler = handler
        self._lock = threading.Lock()
        self._acks: list[int] = []
        self._woken = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._qos2_open: set[int] = set()  # delivered at QoS 2, not yet acknowledged
        self._qos2_received: set[int] = set()  # PUBREC sent, PUBREL not yet seen (session state)
        self.connects = 0
        self.pings = 0  # PINGRESPs received
        self.pauses = 0  # times reading stopped because receive_maximum deliveries were unacknowledged
        self.oversized = 0  # PUBLISHes over max_packet_size, discarded and reported
        self.session_present = False
        self.backoff = Backoff(options.reconnect_min, options.reconnect_max)
        self._subscribed_at: float | None = None  # monotonic time of this connection's granted SUBACK
        self._connected_at = 0.0  # monotonic time of this connection's CONNACK
        self._quick_closes = 0  # connections in a row the broker closed before stable_after (a takeover)
        self.problem: BrokerProblem | None = None  # the operator-action problem of this episode

    # -- public, any thread ----------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="mqtt-session", daemon=True)
        self._thread.start()

    def ack(self, mids: Iterable[int]) -> None:
        """Queue acknowledgements (in receive order) for the next send on the session thread."""
        with self._lock:
            self._acks.extend(mids)
            if self._woken or not self._acks:
                return
            self._woken = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def stop(self, timeout: float = 10.0) -> None:
        """Send what is queued, DISCONNECT, and end the thread."""
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")
        if self._thread is not None:
            self._thread.join(timeout)
        self._wake_r.close()
        self._wake_w.close()

    # -- session thread ----------------------------------------------------------------------------
    def run(self) -> None:
        o = self.options
        while not self._stopping.is_set():
            sock: socket.socket | None = None
            up = False
            self._subscribed_at = None
            try:
                sock = self._connect()
                up = True
                self._serve(sock)
            except (OSError, ConnectionLost, ProtocolError) as e:
                if self._stopping.is_set():
                    break
                reason = str(e) or type(e).__name__
                problem = self._problem_of(e, up)
                if problem is not None:
                    if self.problem is None or self.problem.kind is not problem.kind:
                        log.error("%s; operator action needed (retrying with backoff)", problem.message)
                        self._report(problem)
                    else:
                        log.debug("%s (again)", problem.message)
                elif up:
                    log.warning("broker connection lost: %s; reconnecting", reason)
                else:
                    log.warning("cannot connect to %s:%d: %s", o.host, o.port, reason)
            except Exception as e:  # a handler bug must not end the receive thread
                log.exception("mqtt session error")
                reason = f"internal error: {e}"
            else:
                reason = "stopped"
            finally:
                if sock is not None:
                    _close(sock)
            if up:
                self._lost(reason)
            if self._stopping.is_set():
                break
            since = self._subscribed_at
            if since is not None and time.monotonic() - since >= o.stable_after:
                self.backoff.reset()  # it worked for a while: this is a new outage, start over
            self._stopping.wait(self.backoff.failed())

    def _problem_of(self, e: Exception, up: bool) -> BrokerProblem | None:
        """The operator-action problem ``e`` is (or the last of enough quick closes adds up to)."""
        o = self.options
        if up:  # count the broker's closes of connections that never lasted
            quick = isinstance(e, ConnectionLost) and e.closed
            quick = quick and time.monotonic() - self._connected_at < o.stable_after
            self._quick_closes = self._quick_closes + 1 if quick else 0
        if isinstance(e, ConnectionLost) and e.problem is not None:
            return e.problem
        if self._quick_closes >= TAKEOVER_CLOSES:
            return self._takeover(
                f"the broker closed {self._quick_closes} connections in a row right after accepting them"
            )
        return None

    def _report(self, problem: BrokerProblem | None) -> None:
        self.problem = problem
        try:
            self.handler.on_problem(problem)
        except Exception:  # a handler bug must not end the receive thread
            log.exception("mqtt session handler error")

    def _over(self, kind: ProblemKind) -> None:
        """The episode of ``kind`` has ended (the connection works again)."""
        if self.problem is not None and self.problem.kind is kind:
            log.warning("broker: %s no more", kind.value)
            self._report(None)

    def _lost(self, reason: str) -> None:
        try:
            self.handler.on_connection_lost(reason)
        finally:
            with self._lock:
                self._acks.clear()
            self._qos2_open.clear()

    def _connect(self) -> socket.socket:
        o = self.options
        deadline = time.monotonic() + o.connect_timeout
        raw = socket.create_connection((o.host, o.port), timeout=o.connect_timeout)
        sock: socket.socket = raw
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            if o.tls is not None:
                raw.settimeout(_left(deadline))
                sock = o.tls.wrap_socket(raw, server_hostname=o.host)
            sock.sendall(
                pk.encode_connect(
                    o.client_id,
                    keepalive=o.keepalive,
                    v5=o.v5,
                    clean_start=o.clean_start,
                    username=o.username,
                    password=o.password,
                    session_expiry=o.session_expiry,
                    receive_maximum=o.receive_maximum,
                )
            )
            parser = Parser(v5=o.v5, max_packet=o.max_packet_size)
            first: list[pk.Packet] = []
            while not first:
                sock.settimeout(_left(deadline))  # one deadline for the handshake, however it trickles
                data = sock.recv(RECV_BYTES)
                if not data:
                    raise ConnectionLost("closed before CONNACK")
                first = parser.feed(data)
            connack = first[0]
            if not isinstance(connack, Connack):
                raise ProtocolError(f"expected CONNACK, got {type(connack).__name__}")
            if connack.reason:
                why = CONNACK_REASONS.get(connack.reason, f"reason 0x{connack.reason:02x}")
                refused = f"broker refused the connection: {why}"
                problem = None
                if connack.reason in CREDENTIAL_REFUSALS:
                    problem = BrokerProblem(
                        ProblemKind.CREDENTIALS,
                        f"{o.host}:{o.port} refused client id {o.client_id!r} (user {o.username or '(none)'!r}): "
                        f"{why}; check the broker user and password (IOT_BROKER_URL, IOT_BROKER_PASSWORD) "
                        "and the broker's password file / ACL",
                    )
                raise ConnectionLost(refused, problem)
        except BaseException:
            _close(sock)
            raise
        sock.settimeout(None)
        self._parser = parser
        self._early = first[1:]
        self._connected_at = time.monotonic()
        self._over(ProblemKind.CREDENTIALS)
        self.connects += 1
        self.session_present = connack.session_present
        if not connack.session_present:
            self._qos2_received.clear()
        self.handler.on_connected(connack.session_present)
        return sock

    def _serve(self, sock: socket.socket) -> None:
        o = self.options
        opts = [(t, pk.subscription_options(q, retain_handling=o.retain_handling)) for t, q in o.subscriptions]
        sock.sendall(pk.encode_subscribe(1, opts, v5=o.v5))
        parser, handler = self._parser, self.handler
        keepalive = float(o.keepalive)
        now = time.monotonic()
        last_in = last_out = now
        ping_out = False  # a PINGREQ awaits its PINGRESP (cleared on resuming: its answer waits unread)
        pings_owed = 0  # PINGREQs sent and not answered: a PINGRESP beyond them is a protocol error
        tls = isinstance(sock, ssl.SSLSocket)
        wake = self._wake_r
        readers = [sock, wake]
        early, self._early = self._early, []
        out: list[bytes] = []
        unacked, limit = 0, o.max_unacked or o.receive_maximum  # QoS > 0 deliveries handed out, not yet acked
        paused = False
        while True:
            packets = early
            early = []
            if not packets:
                if paused:  # enough unacknowledged: leave the socket unread (TCP backpressure) until acks come
                    timeout = max(0.0, last_out + keepalive - time.monotonic())
                    ready = select.select([wake], [], [], timeout)[0]
                elif tls and sock.pending():  # type: ignore[attr-defined]
                    ready = [sock]
                else:
                    timeout = max(0.0, min(last_out + keepalive, last_in + keepalive * 1.5) - time.monotonic())
                    ready = select.select(readers, [], [], timeout)[0]
                if wake in ready:
                    with contextlib.suppress(BlockingIOError):
                        wake.recv(4096)
                if sock in ready:
                    data = sock.recv(RECV_BYTES)
                    if not data:
                        raise ConnectionLost("closed by the broker", closed=True)
                    last_in = time.monotonic()
                    packets = parser.feed(data)
            if packets:
                publishes: list[Publish | Oversized] = []
                for p in packets:
                    if type(p) is Publish or type(p) is Oversized:
                        if type(p) is Oversized:
                            self.oversized += 1
                            log.warning(
                                "discarded a PUBLISH of %d bytes on %r (over the packet limit)", p.size, p.topic
                            )
                        if p.qos == 2:
                            if p.mid in self._qos2_received:
                                out.append(pk.encode_acks(pk.PUBREC, (p.mid,)))
                                continue
                            self._qos2_open.add(p.mid)
                        publishes.append(p)
                        if p.qos:
                            unacked += 1
                    elif type(p) is Ack:
                        if p.kind == pk.PUBREL:
                            self._qos2_received.discard(p.mid)
                            out.append(pk.encode_acks(pk.PUBCOMP, (p.mid,)))
                    elif type(p) is Suback:
                        if p.kind == pk.SUBACK:
                            if self._subscribed_at is None and all(r < 0x80 for r in p.reasons):
                                self._subscribed_at = time.monotonic()
                            handler.on_subscribed(p.reasons)
                    elif type(p) is Disconnect:
                        raise ConnectionLost(f"broker sent DISCONNECT, reason 0x{p.reason:02x}", self._taken(p))
                    elif type(p) is pk.Pingresp:
                        if not pings_owed:
                            raise ProtocolError("PINGRESP without a PINGREQ")
                        pings_owed -= 1
                        ping_out = False
                        self.pings += 1
                if publishes:
                    handler.on_messages(publishes)
            with self._lock:
                mids, self._acks, self._woken = self._acks, [], False
            if mids:
                out.append(self._encode_acks(mids))
                unacked = max(0, unacked - len(mids))
            stopping = self._stopping.is_set()
            now = time.monotonic()
            if paused and unacked < limit:
                paused, ping_out, last_in = False, False, now  # reading again: what the broker sent is waiting
            elif not paused and unacked >= limit:
                paused = True
                self.pauses += 1
            if not out and now - last_out >= keepalive:
                if ping_out and not stopping and not paused:
                    raise ConnectionLost("no PINGRESP within the keep-alive")
                out.append(pk.PINGREQ_PACKET)
                ping_out = True
                pings_owed += 1
            since = self._subscribed_at
            if self.problem is not None and since is not None and now - since >= o.stable_after:
                self._over(ProblemKind.TAKEN_OVER)  # this connection has held: no one takes it over
            if now - last_in >= keepalive * 1.5 and not stopping and not paused:
                raise ConnectionLost("broker silent for 1.5 keep-alive periods")
            if stopping:
                out.append(pk.DISCONNECT_PACKET)
            if out:
                sock.sendall(b"".join(out))
                out = []
                last_out = now
            if stopping:
                _linger(sock)
                return

    def _taken(self, d: Disconnect) -> BrokerProblem | None:
        if d.reason != SESSION_TAKEN_OVER:
            return None
        return self._takeover("broker DISCONNECT 0x8e: session taken over")

    def _takeover(self, how: str) -> BrokerProblem:
        """A takeover, named as such: by the client id, and by the user too, since a broker that
        uses usernames as client ids (Mosquitto's ``use_username_as_clientid``) makes any other
        connection of the same user take this session over whatever its client id."""
        o = self.options
        user = f" (or, where the broker uses usernames as client ids, as user {o.username!r})" if o.username else ""
        return BrokerProblem(
            ProblemKind.TAKEN_OVER,
            f"another client with client id {o.client_id!r}{user} took over the session on {o.host}:{o.port} "
            f"({how}); give each daemon its own IOT_CLIENT_ID" + (" and broker account" if o.username else ""),
        )

    def _encode_acks(self, mids: list[int]) -> bytes:
        open2 = self._qos2_open
        if not open2:
            return pk.encode_acks(pk.PUBACK, mids)
        parts = []
        for m in mids:
            if m in open2:
                open2.discard(m)
                self._qos2_received.add(m)
                parts.append(pk.encode_acks(pk.PUBREC, (m,)))
            else:
                parts.append(pk.encode_acks(pk.PUBACK, (m,)))
        return b"".join(parts)


def _left(deadline: float) -> float:
    """Seconds until ``deadline``; a timeout once it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("no CONNACK within the connect timeout")
    return left


def _linger(sock: socket.socket, timeout: float = 2.0) -> None:
    """After DISCONNECT: half-close and read to EOF, so the broker handles every packet we sent
    (closing with unread input would reset the connection) before the next connection with our id."""
    deadline = time.monotonic() + timeout
    try:
        sock.shutdown(socket.SHUT_WR)
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if not sock.recv(RECV_BYTES):
                return
    except OSError:
        return


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()
