"""qsysd-mqtt through a real mosquitto broker (Debian's `mosquitto`) and the emulator.

Skipped without mosquitto (`apt-get install mosquitto`); failing instead when CI=true.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import qsysd_mqtt
import trio

from qsysd.config import PolicyConfig
from qsysd.emulator import EmulatorServer
from qsysd.testing import QsysdStack

WAIT = 15.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[int]:
    """A mosquitto on a free loopback port, stopped after the test."""
    binary = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if binary is None:
        message = "mosquitto is not installed (Debian: apt-get install mosquitto)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    process = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        for _ in range(100):  # wait until it accepts connections
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                if process.poll() is not None:
                    pytest.fail(f"mosquitto exited: {process.stderr.read().decode()}")  # type: ignore[union-attr]
                time.sleep(0.05)  # a sync fixture: no trio yet
        yield port
    finally:
        process.terminate()
        process.wait(timeout=5)
        if process.stderr is not None:
            process.stderr.close()


class Peer:
    """A test-side MQTT client: a building system talking to qsysd."""

    def __init__(self, port: int) -> None:
        self.messages: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.backlog: list[tuple[str, Any]] = []  # received, not taken by a wait yet
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="peer")
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, m.payload.decode()))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def subscribe(self, topic: str) -> None:
        result, _mid = self.client.subscribe(topic, qos=1)
        assert result == paho.MQTT_ERR_SUCCESS

    async def wait_for(self, topic: str, check: Any = lambda payload: True) -> str:
        """The first message not yet taken on ``topic`` that passes ``check``; it is taken.

        Others stay for later waits: the broker may deliver a write's new value before the
        write's result, and a wait for the result must not swallow the value.
        """
        for i, (got_topic, payload) in enumerate(self.backlog):
            if got_topic == topic and check(payload):
                del self.backlog[i]
                return str(payload)
        while True:
            got_topic, payload = await trio.to_thread.run_sync(
                self.messages.get, True, 5.0, abandon_on_cancel=True
            )
            if got_topic == topic and check(payload):
                return str(payload)
            self.backlog.append((got_topic, payload))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def peer(broker: int) -> Iterator[Peer]:
    client = Peer(broker)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def mqtt_plugin() -> qsysd_mqtt.MqttPlugin:
    return qsysd_mqtt.MqttPlugin()


@pytest.fixture
def qsysd_plugins(mqtt_plugin: qsysd_mqtt.MqttPlugin) -> dict[str, Any]:
    return {"mqtt": mqtt_plugin}


@pytest.fixture
def qsysd_plugin_config(broker: int) -> dict[str, Any]:
    return {"mqtt": {"host": "127.0.0.1", "port": broker, "prefix": "site", "status_interval": 0.1}}


@pytest.fixture
def qsysd_policy() -> PolicyConfig:
    return PolicyConfig(protected=["Bar.mute"])


async def test_a_change_and_a_set_round_trip_through_the_broker(
    peer: Peer,
    mqtt_plugin: qsysd_mqtt.MqttPlugin,
    qsysd_stack: QsysdStack,
    qsysd_emulator: EmulatorServer,
) -> None:
    with trio.fail_after(WAIT):
        peer.subscribe("site/#")
        await mqtt_plugin.ready.wait()
        assert await peer.wait_for("site/bridge", lambda p: p == "online")
        status = json.loads(await peer.wait_for("site/main/status"))
        assert status["connected"] is True

        # A change on the Core (someone at a touch panel) reaches MQTT.
        qsysd_emulator.set_value("Bar", "gain", -7.0)
        state = json.loads(
            await peer.wait_for("site/main/value/Bar.gain", lambda p: '"-7.0dB"' in p)
        )
        assert state["value"] == -7.0 and state["string"] == "-7.0dB"

        # A set from MQTT reaches the Core, through the policy, audited.
        peer.client.publish("site/main/set/Bar.gain", json.dumps({"value": -9}), qos=1)
        result = json.loads(await peer.wait_for("site/main/result/Bar.gain"))
        assert result == {"ok": True, "string": "-9.0dB", "error": None, "rule": None}
        assert qsysd_emulator.get_value("Bar", "gain") == -9.0
        await peer.wait_for("site/main/value/Bar.gain", lambda p: '"-9.0dB"' in p)

        peer.client.publish("site/main/set/Bar.mute", "true", qos=1)
        refused = json.loads(await peer.wait_for("site/main/result/Bar.mute"))
        assert refused["ok"] is False and refused["rule"] == "protected"
        assert qsysd_emulator.get_value("Bar", "mute") in (0, False)

        peer.client.publish("site/main/set/Bar.gain", b"not json", qos=1)
        bad = json.loads(await peer.wait_for("site/main/result/Bar.gain"))
        assert bad["ok"] is False and "not JSON" in bad["error"]

        audit = await qsysd_stack.context().history(kind="write")
        assert [(str(e.ref), e.principal, e.outcome) for e in reversed(audit)] == [
            ("Bar.gain", "plugin:mqtt", "ok"),
            ("Bar.mute", "plugin:mqtt", "refused"),
        ]


async def test_without_a_host_the_bridge_stays_off_and_qsysd_runs(
    qsysd_emulator: EmulatorServer,
) -> None:
    from qsysd.testing import running_stack

    plugin = qsysd_mqtt.MqttPlugin()
    with trio.fail_after(WAIT):
        async with running_stack(qsysd_emulator, plugins={"mqtt": plugin}) as stack:
            assert not stack.registry.load_errors
            assert stack.registry.startups() == []
            assert (await stack.call("qsys_status"))["cores"]


def test_parse_command_refuses_bad_payloads_clearly() -> None:
    change = qsysd_mqtt.parse_command("Bar.gain", b'{"value": -20, "ramp": 3}')
    assert (change.control, change.value, change.ramp) == ("Bar.gain", -20, 3)
    assert qsysd_mqtt.parse_command("Bar.mute", b"true").value is True
    for payload, message in [
        (b"\xff", "not JSON"),
        (b'{"volume": 1}', "unknown field(s) ['volume']"),
        (b'{"value": 1, "ramp": "slow"}', "ramp must be a number"),
        (b"[1, 2]", "value must be"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            qsysd_mqtt.parse_command("Bar.gain", payload)
