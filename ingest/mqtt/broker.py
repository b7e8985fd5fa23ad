"""Broker addresses, the paho client edge, and the embedded in-process broker (amqtt)."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import threading
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from core.broker_accounts import account_name, account_password

log = logging.getLogger("iot.broker")


class BrokerConfigError(ValueError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (for embedded brokers in demos and tests)."""
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None
    embedded: bool = False

    def __repr__(self) -> str:  # never show the password
        return f"BrokerAddress({'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port})"


def parse_broker_url(url: str, *, password: str | None = None, embedded_port: int = 1883) -> BrokerAddress:
    """``mqtt://[user:pass@]host[:port]``, ``mqtts://…`` or ``embedded``; password may come from env."""
    if url in ("", "embedded"):
        return BrokerAddress("127.0.0.1", embedded_port, embedded=True)
    try:
        parts = urlsplit(url)
    except ValueError as e:  # e.g. an unclosed IPv6 bracket
        raise BrokerConfigError(f"invalid broker URL: {e}") from None
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise BrokerConfigError(f"unsupported broker URL scheme {parts.scheme!r}: use mqtt://, mqtts:// or embedded")
    tls = parts.scheme in ("mqtts", "ssl")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as e:
        raise BrokerConfigError(f"invalid broker URL port: {e}") from None
    if not parts.hostname:
        raise BrokerConfigError("broker URL has no host")
    user = unquote(parts.username) if parts.username else None
    pw = unquote(parts.password) if parts.password else (password or os.environ.get("IOT_BROKER_PASSWORD"))
    return BrokerAddress(parts.hostname, port, tls, user, pw if user else None)


def own_account(addr: BrokerAddress, suffix: str) -> BrokerAddress:
    """``addr`` as the account ``{user}-{suffix}`` of its user, password derived from the user's
    (:mod:`core.broker_accounts`); unchanged without a suffix or a user (nothing to tell apart)."""
    if not suffix or addr.username is None:
        return addr
    name = account_name(addr.username, suffix)
    password = account_password(addr.password, name) if addr.password else None
    return replace(addr, username=name, password=password)


def make_client(
    addr: BrokerAddress,
    client_id: str,
    *,
    persistent: bool = False,
    manual_ack: bool = False,
    receive_maximum: int | None = None,
) -> tuple[mqtt.Client, dict[str, Any]]:
    """A paho client for ``addr`` and the keyword arguments for its ``connect``/``connect_async``.

    MQTT 5 against real brokers (session expiry, receive maximum); 3.1.1 against the embedded
    broker, which speaks only that. ``persistent`` keeps the session across disconnects.
    """
    v5 = not addr.embedded
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else not persistent,
        manual_ack=manual_ack,
    )
    if addr.username:
        client.username_pw_set(addr.username, addr.password)
    if addr.tls:
        client.tls_set_context(ssl.create_default_context())
    kwargs: dict[str, Any] = {}
    if v5:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if persistent:
            props.SessionExpiryInterval = 0xFFFFFFFF
        if receive_maximum:
            props.ReceiveMaximum = receive_maximum
        kwargs = {"clean_start": not persistent, "properties": props}
    return client, kwargs


def subscribe_ingest(client: mqtt.Client, topic: str) -> None:
    """Subscribe the ingest session to ``topic`` at QoS 1 without the broker's retained store.

    A retained message is the broker's cached copy of an earlier publish, sent again on every
    SUBSCRIBE; storing it would add a copy per restart. MQTT 5: retain handling "do not send".
    MQTT 3.1.1 has no such option; there the daemon ignores deliveries with the retain flag set,
    which the spec reserves for those replays (a live publish reaches an existing subscription
    with the flag cleared).
    """
    if client.protocol == mqtt.MQTTv5:
        client.subscribe(topic, options=SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND))
    else:
        client.subscribe(topic, qos=1)


class EmbeddedBroker:
    """An amqtt broker on its own event-loop thread: the zero-configuration default."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.host, self.port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker: Any = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        self._thread = threading.Thread(target=self._run, name="embedded-broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise OSError("embedded broker did not start in time")
        if self._error is not None:
            reason = getattr(self._error, "strerror", None) or self._error
            raise OSError(
                f"embedded broker cannot listen on {self.host}:{self.port}: {reason} "
                "(set IOT_EMBEDDED_BROKER_PORT, or IOT_BROKER_URL to a running broker)"
            )
        return self

    def _run(self) -> None:
        from amqtt.broker import Broker

        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        try:
            self._broker = Broker(config, loop=loop)
            loop.run_until_complete(self._broker.start())
        except BaseException as e:  # reported to start()
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.close()

    def stop(self) -> None:
        loop = self._loop
        if loop is None or self._broker is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), loop)
        try:
            fut.result(10)
        except Exception as e:
            log.debug("embedded broker shutdown: %s", e)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread:
            self._thread.join(10)
