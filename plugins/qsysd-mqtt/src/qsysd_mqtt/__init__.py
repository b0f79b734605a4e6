"""qsysd-mqtt: a bridge between qsysd and an MQTT broker (building management, Home Assistant).

Topics, under ``prefix`` (default ``qsysd``):

- ``PREFIX/CORE/value/CONTROL`` (retained): ``{"value", "string", "position"}`` of each
  changed control (``CONTROL`` is ``Component.control`` or a named control);
- ``PREFIX/CORE/status`` (retained): the Core's connection and engine status;
- ``PREFIX/CORE/set/CONTROL`` (subscribed): a set, as JSON ``{"value": -20, "ramp": 3}`` (or
  ``"string"``/``"position"``), or a bare JSON value (``-20``, ``true``, ``"-20dB"``);
- ``PREFIX/CORE/result/CONTROL``: each set's outcome, ``{"ok", "string", "error", "rule"}``;
- ``PREFIX/bridge``: ``online``, or ``offline`` (also the broker's last will).

Sets go through qsysd's safety policy and audit as principal ``plugin:mqtt``. Value changes
arrive through qsysd's observer queue, so a slow broker never delays a write.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import paho.mqtt.client as paho
import structlog
import trio
from paho.mqtt.enums import CallbackAPIVersion

from qsysd.api import ControlChange
from qsysd.errors import QsysdError
from qsysd.plugins import PluginContext, StartupTask, ToolContext, ValueChange, doc, hookimpl
from qsysd.state import CoreStatus

__all__ = ["MqttBridge", "MqttConfig", "MqttPlugin", "plugin"]

log = structlog.get_logger("qsysd.plugins.mqtt")

#: Inbound commands waiting for the bridge; more are dropped (counted, logged).
COMMAND_QUEUE_SIZE = 100


@attrs.frozen
class MqttConfig:
    """[plugins.config.mqtt]: the broker, the topics and which controls to publish."""

    host: str | None = attrs.field(
        default=None, metadata=doc("The broker's host; without it the bridge stays off.")
    )
    port: int = attrs.field(
        default=1883, metadata=doc("The broker's port.", minimum=1, maximum=65535)
    )
    username: str | None = attrs.field(default=None, metadata=doc("User name at the broker."))
    password_file: str | None = attrs.field(
        default=None, metadata=doc("A file holding the broker password (never in the config).")
    )
    client_id: str = attrs.field(default="qsysd", metadata=doc("The MQTT client id.", minLength=1))
    prefix: str = attrs.field(
        default="qsysd", metadata=doc("The topic prefix.", minLength=1, pattern=r"^[^#+]+$")
    )
    controls: list[str] = attrs.field(
        factory=list, metadata=doc("Globs of controls to publish ('Bar.*'); empty: all.")
    )
    accept_sets: bool = attrs.field(default=True, metadata=doc("Subscribe to the set topics."))
    qos: int = attrs.field(default=1, metadata=doc("QoS of publications.", minimum=0, maximum=2))
    status_interval: float = attrs.field(
        default=1.0, metadata=doc("Seconds between Core status checks.", minimum=0.05)
    )


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MqttBridge:
    """One connection to the broker (paho's network thread) and the trio side of it."""

    def __init__(self, config: MqttConfig, token: trio.lowlevel.TrioToken) -> None:
        self.config = config
        self._token = token
        self._send, self.commands = trio.open_memory_channel[tuple[str, bytes]](COMMAND_QUEUE_SIZE)
        self.connected = trio.Event()
        self.dropped_commands = 0
        self.published = 0
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=config.client_id)
        if config.username is not None:
            password = None
            if config.password_file is not None:
                password = Path(config.password_file).read_text(encoding="utf-8").strip()
            client.username_pw_set(config.username, password)
        client.will_set(self.topic("bridge"), b"offline", qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        self.client = client

    def topic(self, *parts: str) -> str:
        return "/".join((self.config.prefix, *parts))

    # paho's thread ---------------------------------------------------------------------------

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            log.warning("mqtt.connect_refused", reason=str(reason))
            return
        if self.config.accept_sets:
            client.subscribe(self.topic("+", "set", "#"), qos=1)
        client.publish(self.topic("bridge"), b"online", qos=1, retain=True)
        log.info("mqtt.connected", host=self.config.host, port=self.config.port)
        with contextlib.suppress(trio.RunFinishedError):  # qsysd is stopping
            trio.from_thread.run_sync(self.connected.set, trio_token=self._token)

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        log.info("mqtt.disconnected", reason=str(reason))

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        def offer() -> None:
            try:
                self._send.send_nowait((message.topic, bytes(message.payload)))
            except trio.WouldBlock:
                self.dropped_commands += 1
                if self.dropped_commands % 100 == 1:
                    log.warning("mqtt.command_dropped", dropped=self.dropped_commands)

        with contextlib.suppress(trio.RunFinishedError):  # qsysd is stopping
            trio.from_thread.run_sync(offer, trio_token=self._token)

    # trio's side ------------------------------------------------------------------------------

    def publish(self, topic: str, payload: Any, *, retain: bool = False) -> None:
        """Queue a publication in paho (never blocks; dropped by paho while disconnected)."""
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.client.publish(topic, data, qos=self.config.qos, retain=retain)
        self.published += 1

    async def start(self) -> None:
        assert self.config.host is not None
        await trio.to_thread.run_sync(self.client.connect_async, self.config.host, self.config.port)
        self.client.loop_start()

    async def stop(self) -> None:
        info = self.client.publish(self.topic("bridge"), b"offline", qos=1, retain=True)
        with trio.move_on_after(2):
            await trio.to_thread.run_sync(info.wait_for_publish, 2.0, abandon_on_cancel=True)
        self.client.disconnect()
        await trio.to_thread.run_sync(self.client.loop_stop, abandon_on_cancel=True)


def parse_command(topic_rest: str, payload: bytes) -> ControlChange:
    """A set topic's control and payload as a ControlChange; ValueError saying what is wrong."""
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError('the payload is not JSON (send -20, true, "-20dB" or an object)') from None
    if not isinstance(data, dict):
        data = {"value": data}
    unknown = set(data) - {"value", "string", "position", "ramp"}
    if unknown:
        raise ValueError(f"unknown field(s) {sorted(unknown)}; use value, string, position, ramp")
    ramp = data.get("ramp")
    if ramp is not None and (isinstance(ramp, bool) or not isinstance(ramp, int | float)):
        raise ValueError("ramp must be a number of seconds")
    if isinstance(data.get("value"), dict | list):
        raise ValueError("value must be a number, a boolean or a string")
    return ControlChange(
        topic_rest,
        value=data.get("value"),
        string=data.get("string"),
        position=data.get("position"),
        ramp=ramp,
    )


def _status_json(s: CoreStatus) -> dict[str, Any]:
    return {
        "connected": s.connected,
        "state": s.state,
        "design_name": s.design_name,
        "status": s.status_string,
        "status_code": s.status_code,
        "last_error": s.last_error,
    }


class MqttPlugin:
    """The plugin: a start-up task running the bridge, and a change observer feeding it."""

    def __init__(self) -> None:
        self.bridge: MqttBridge | None = None
        self.ready = trio.Event()  # set once the bridge is connected (tests wait on it)

    @hookimpl
    def qsysd_plugin_config(self) -> type:
        return MqttConfig

    @hookimpl
    def qsysd_startup(self, context: PluginContext) -> StartupTask | None:
        config: MqttConfig | None = context.config
        if config is None or config.host is None:
            log.warning("mqtt.not_configured", hint="set [plugins.config.mqtt] host")
            return None
        return self._run

    @hookimpl
    def qsysd_observe_changes(self, context: PluginContext) -> Callable[[list[ValueChange]], Any]:
        async def publish_changes(batch: list[ValueChange]) -> None:
            bridge = self.bridge
            if bridge is None or not bridge.connected.is_set():
                return
            patterns = bridge.config.controls
            for change in batch:
                value = change.current
                name = str(value.ref)
                if patterns and not any(fnmatch.fnmatchcase(name, p) for p in patterns):
                    continue
                payload = {
                    "value": _json_value(value.value),
                    "string": value.string,
                    "position": _json_value(value.position),
                }
                bridge.publish(bridge.topic(value.ref.core, "value", name), payload, retain=True)

        return publish_changes

    async def _run(self, ctx: ToolContext) -> None:
        config: MqttConfig = ctx.config
        bridge = MqttBridge(config, trio.lowlevel.current_trio_token())
        await bridge.start()
        self.bridge = bridge
        try:
            await bridge.connected.wait()
            self.ready.set()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._publish_status, ctx, bridge)
                async for topic, payload in bridge.commands:
                    await self._handle_set(ctx, bridge, topic, payload)
        finally:
            self.bridge = None
            with trio.CancelScope(shield=True):
                await bridge.stop()

    async def _publish_status(self, ctx: ToolContext, bridge: MqttBridge) -> None:
        last: dict[str, dict[str, Any]] = {}
        while True:
            for status in ctx.statuses():
                data = _status_json(status)
                if last.get(status.core) != data:
                    bridge.publish(bridge.topic(status.core, "status"), data, retain=True)
                    last[status.core] = data
            await trio.sleep(bridge.config.status_interval)

    async def _handle_set(
        self, ctx: ToolContext, bridge: MqttBridge, topic: str, payload: bytes
    ) -> None:
        prefix = bridge.config.prefix + "/"
        parts = topic[len(prefix) :].split("/", 2) if topic.startswith(prefix) else []
        if len(parts) != 3 or parts[1] != "set" or not parts[2]:
            return
        core, _, control = parts
        result_topic = bridge.topic(core, "result", control)
        try:
            change = parse_command(control, payload)
            outcome = await ctx.set([change], core=core)
        except (ValueError, QsysdError) as exc:
            bridge.publish(
                result_topic, {"ok": False, "string": None, "error": str(exc), "rule": None}
            )
            return
        r = outcome.results[0]
        bridge.publish(
            result_topic, {"ok": r.ok, "string": r.string, "error": r.error, "rule": r.rule}
        )


#: The instance the ``qsysd`` entry point names.
plugin = MqttPlugin()
