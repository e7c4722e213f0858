"""The gateway service: MQTT in, signed and path-attested transactions out (DESIGN.md §2 step 4, Flow M).

One message at a time is admitted (session.py) and signed (signing.py) in arrival order, so two
frames can never race for one counter; storing, the optional verification and the acks then run
concurrently and the store batches them. MQTT uses a persistent session (clean_session=False,
fixed client id) with manual PUBACKs: a frame is acknowledged to the broker only once it is durable
(or refused), so a crash before that makes the broker deliver it again. A supervisor reconnects
with backoff; a heartbeat publish that gets no PUBACK in time marks a silently dead connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time

import aiomqtt

from edgeprov import wire
from edgeprov.pathhop import load_key, sign_hop
from gateway.compact import CompactLink
from gateway.config import GatewayConfig
from gateway.devices import load_devices
from gateway.health import HealthServer
from gateway.ledger_link import Commit, LedgerLink, make_link, transaction_id
from gateway.metrics import Metrics
from gateway.refusal import Duplicate, Refused
from gateway.registry import RegistryFollower
from gateway.relay import Submitter
from gateway.sdnotify import notify, watchdog_period_s
from gateway.session import Admitted, Sessions
from gateway.signing import GatewaySigner, Signed
from gateway.store import Entry, Store
from gateway.transaction import data_transfer
from gateway.verifier import Verifier

log = logging.getLogger("edgeprov.gateway")


class ConnectionDead(Exception):
    """The broker stopped answering although the socket looked open."""


class Gateway:
    def __init__(self, config: GatewayConfig, link: LedgerLink | None = None) -> None:
        self.config = config
        self.metrics = Metrics()
        key_gateway, self.key = load_key(config.key_file)
        if key_gateway != config.gateway_id:
            raise ValueError(f"{config.key_file} is the key of gateway {key_gateway!r}, not {config.gateway_id!r}")
        self.devices = load_devices(config.devices_dir, config.gateway_id, config.allow_test_system)
        link = link or make_link(config.ledger)
        self.link = CompactLink(link)  # full form until the ledger holds the credential
        self.registry = RegistryFollower(link, self.devices, self.metrics, len(config.ledger.api_urls))
        self.signer = GatewaySigner(config.nonce_window, config.check_device_shares)
        self.verifier = (
            Verifier(config.verify_workers, config.allow_test_system) if config.verify_before_relay else None
        )
        self.client: aiomqtt.Client | None = None
        self.store: Store | None = None
        self.submitter: Submitter | None = None
        self.sessions: Sessions | None = None
        self.started = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self.status_topic = f"{wire.TOPIC_ROOT}/{config.gateway_id}/status"

    # ---- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """The provenance DB, and the sessions and the G4 nonce memory seeded from it: what a reading needs
        before it can be relayed (a restart must not forget used counters or device nonce points)."""
        cfg = self.config
        self.store = await Store.open(cfg.db_path, cfg.write_batch)
        self.sessions = Sessions(
            cfg.gateway_id, self.devices, cfg.max_frame, cfg.replay_window, self.store.digest, self.registry.check
        )
        for device in self.devices.values():
            used = await self.store.recent_counters(device.device_id, device.epoch, cfg.replay_window)
            self.sessions.preload(device.device_id, used)
            nonces = await self.store.recent_nonces(device.device_id, device.epoch, cfg.nonce_window)
            self.signer.seed(device.device_id, nonces)

    async def run(self, stop: asyncio.Event) -> None:
        cfg = self.config
        await self.open()
        health = HealthServer(self)
        try:
            led = cfg.ledger
            self.submitter = Submitter(
                self.link,
                self.store,
                self.metrics,
                self._on_outcome,
                led.submit_batch,
                led.commit_timeout_s,
                led.retry_max_s,
                led.submit_inflight,
                led.submit_linger_ms / 1000,
                led.submit_target_s,
            )
            # the registry before the first frame: a revoked device's queued frames must not be signed. Bounded,
            # so a hung ledger delays the start by one HTTP timeout at most; no answer keeps every device relayed.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.registry.poll(), led.http_timeout_s)
            backlog = await self.store.pending()
            for entry in backlog:
                self.submitter.enqueue(entry)
            self.metrics.outbox.set(len(backlog))
            log.info(
                "gateway %s: %d devices, %d readings replayed from the outbox",
                cfg.gateway_id,
                len(self.devices),
                len(backlog),
            )
            await health.start(cfg.http_listen)
            workers = [self.submitter.run(), self._mqtt_supervisor(), self.registry.run(led.registry_poll_s)]
            period = watchdog_period_s()
            if period is not None:
                workers.append(self._systemd_watchdog(period))
            tasks = [asyncio.create_task(w) for w in workers]
            notify("READY=1")
            self.started.set()
            stopper = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
            notify("STOPPING=1")
            for task in [stopper, *tasks]:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for task in done - {stopper}:
                task.result()  # a worker that died is a bug: surface it
        finally:
            await self._shutdown(health)

    async def _shutdown(self, health: HealthServer) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.submitter is not None:
            await self.submitter.close()
        await health.stop()
        await self.link.close()
        if self.verifier is not None:
            self.verifier.close()
        await self.store.close()

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _systemd_watchdog(self, period: float) -> None:
        while True:
            notify("WATCHDOG=1")  # the loop is alive; a hung loop stops these and systemd restarts us
            await asyncio.sleep(period)

    # ---- MQTT ------------------------------------------------------------------------------

    def _tls(self) -> ssl.SSLContext | None:
        ca = self.config.mqtt.ca_file
        return ssl.create_default_context(cafile=str(ca)) if ca else None

    async def _mqtt_supervisor(self) -> None:
        m = self.config.mqtt
        delay = 0.2
        while True:
            client = aiomqtt.Client(
                m.host,
                m.port,
                username=m.username or None,
                password=m.password(),
                identifier=f"edgeprov-gateway-{self.config.gateway_id}",
                clean_session=False,
                keepalive=m.keepalive_s,
                tls_context=self._tls(),
                will=aiomqtt.Will(self.status_topic, wire.STATUS_OFFLINE, qos=1, retain=True),
            )
            # PUBACK only once a frame is durable: paho's manual acks (aiomqtt does not expose them).
            client._client.manual_ack_set(True)
            try:
                async with client:
                    delay = 0.2
                    await self._serve(client)
            except (aiomqtt.MqttError, ConnectionDead, OSError) as exc:
                log.warning("MQTT connection lost: %s; reconnecting in %.1f s", exc, delay)
            finally:
                self.client = None
                self.metrics.mqtt_connected.set(0)
            self.metrics.reconnects.inc()
            await asyncio.sleep(delay)
            delay = min(delay * 2, m.reconnect_max_s)

    async def _serve(self, client: aiomqtt.Client) -> None:
        # A PUBACK and the Ack publish that follows it are two small writes: with Nagle's algorithm the
        # second waits for the broker's delayed TCP ACK of the first (~40 ms on Linux) on every reading.
        client._client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await client.subscribe(f"{wire.TOPIC_ROOT}/{self.config.gateway_id}/+/reading", qos=1)
        await client.publish(self.status_topic, wire.STATUS_ONLINE, qos=1, retain=True)
        self.client = client
        self.metrics.mqtt_connected.set(1)
        log.info("connected to MQTT broker %s:%d", self.config.mqtt.host, self.config.mqtt.port)
        consume = asyncio.create_task(self._consume(client))
        beat = asyncio.create_task(self._heartbeat(client))
        done, pending = await asyncio.wait({consume, beat}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            task.result()

    async def _heartbeat(self, client: aiomqtt.Client) -> None:
        period = self.config.mqtt.watchdog_s
        while True:
            await asyncio.sleep(period)
            try:
                await client.publish(self.status_topic, wire.STATUS_ONLINE, qos=1, retain=True, timeout=period)
            except aiomqtt.MqttError as exc:
                raise ConnectionDead(f"heartbeat not acknowledged within {period} s ({exc})") from None

    async def _consume(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            await self.handle(client, message)

    def _puback(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        if message.qos > 0 and client is self.client:  # a mid is only meaningful on its own connection
            client._client.ack(message.mid, message.qos)

    # ---- one reading -----------------------------------------------------------------------

    async def handle(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        """Admit and sign in arrival order; store, verify and acknowledge in a task of its own."""
        received_ms = int(time.time() * 1000)
        started = time.perf_counter()
        self.metrics.received.inc()
        frame = message.payload if isinstance(message.payload, bytes) else bytes(str(message.payload), "utf-8")
        try:
            admitted = await self.sessions.admit(str(message.topic), frame)
            signed = self.signer.sign(admitted.device, admitted.reading)
        except Duplicate as dup:
            self.metrics.duplicates.inc()
            self._puback(client, message)
            self._send_ack(dup.device, wire.Ack(dup.epoch, dup.ctr, wire.ACK_RELAYED))
            return
        except Refused as refusal:
            self._refuse(client, message, frame, refusal)
            return
        self._spawn(self._relay(client, message, admitted, signed, received_ms, started))

    def _refuse(self, client: aiomqtt.Client, message: aiomqtt.Message, frame: bytes, refusal: Refused) -> None:
        self.metrics.refused.labels(refusal.reason).inc()
        if refusal.alert:
            self.metrics.alerts.labels(refusal.reason).inc()
            log.error("ALERT %s on %s: %s", refusal.reason, message.topic, refusal.detail)
        elif refusal.quiet:
            log.debug("refused frame on %s: %s", message.topic, refusal)
        else:
            log.warning("refused frame on %s: %s", message.topic, refusal)
        self._puback(client, message)
        try:
            reading = wire.Reading.decode(frame)
            _, device, _ = wire.parse_topic(str(message.topic))
        except wire.WireError:
            return  # nothing to answer: no counter to name, or no device topic
        if device in self.devices:
            ack = wire.Ack(reading.epoch, reading.ctr, wire.ACK_REJECTED, refusal.reason)
            self._send_ack(device, ack)

    async def _relay(
        self,
        client: aiomqtt.Client,
        message: aiomqtt.Message,
        admitted: Admitted,
        signed: Signed,
        received_ms: int,
        started: float,
    ) -> None:
        device, reading = admitted.device, admitted.reading
        if self.verifier is not None:
            reason = await self.verifier.check(device, signed.statement, signed.signature.encode())
            if reason is not None:
                self._refuse(client, message, message.payload, Refused("signature-invalid", reason))
                return
        entry = self.entry(admitted, signed, received_ms)
        try:
            await self.store.add(entry)
        except Exception:
            log.exception("could not store %s/%d/%d; the broker will deliver it again", *entry.key)
            self.sessions.release(reading.device_id, reading.ctr)
            self.signer.release(reading.device_id, signed)
            return
        self.metrics.relay_seconds.observe(time.perf_counter() - started)
        self.metrics.relayed.inc()
        self.metrics.outbox.inc()
        self._puback(client, message)
        self.submitter.enqueue(entry)
        self._send_ack(reading.device_id, wire.Ack(reading.epoch, reading.ctr, wire.ACK_RELAYED))

    def entry(self, admitted: Admitted, signed: Signed, received_ms: int) -> Entry:
        """The outbox entry of a signed reading: path hop, Data Transfer transaction and its id."""
        reading = admitted.reading
        hop = sign_hop(self.key, self.config.gateway_id, received_ms, signed.statement)
        tx = data_transfer(signed.statement, signed.signature, [hop], admitted.device.disclosed)
        return Entry(
            reading.device_id,
            reading.epoch,
            reading.ctr,
            reading.ts_ms,
            received_ms,
            admitted.digest,
            transaction_id(tx),
            tx,
            signed.r_dev,
            signed.nonce_mark,
        )

    def _on_outcome(self, entry: Entry, commit: Commit) -> None:
        self.metrics.outbox.dec()
        status = wire.ACK_COMMITTED if commit.valid else wire.ACK_REJECTED
        self._send_ack(entry.device, wire.Ack(entry.epoch, entry.ctr, status, commit.reason))

    def _send_ack(self, device: str, ack: wire.Ack) -> None:
        """Best effort: a device that misses its Ack resends, and the resend is a duplicate (G4). Handed
        to paho without awaiting its PUBACK (paho still retries it): two Acks per reading, and
        awaiting each cost a task and a timer on the event loop."""
        client = self.client
        if client is not None:
            client._client.publish(wire.topic(self.config.gateway_id, device, "ack"), ack.encode(), qos=1)
