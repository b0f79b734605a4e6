"""Change propagation: another client's write on the Core -> an MCP resource subscriber told.

The daemon (``qsysd serve --stdio``, its own process) follows the emulator (its own process)
with AutoPoll at its configured rate; a line client subscribes (``resources/subscribe``, the
2025-11-25 era) to one component's controls resource. A second, raw QRC client on the same
emulator sets that component's gain, and the time from just before that ``Component.Set`` is
sent to the ``notifications/resources/updated`` of the resource on the daemon's stdout is one
sample. The write lands at a random phase of the poll cycle, so samples spread over one
AutoPoll interval: the target is p95 <= interval + 5 ms.
"""

from __future__ import annotations

import time
import urllib.parse
from pathlib import Path
from typing import Any

import orjson
import trio

from bench._procs import LEGACY, Emulator, LineClient, daemon_argv, raw_qrc, spawned, write_config

#: The daemon's AutoPoll interval (``cores[].poll_rate``, its default).
POLL_RATE = 0.1


def controls_uri(core: str, component: str) -> str:
    quote = lambda text: urllib.parse.quote(text, safe="")  # noqa: E731
    return f"qsys://core/{quote(core)}/component/{quote(component)}/controls"


async def _updated(client: LineClient, uri: str) -> None:
    """Read the daemon's stdout until it says ``uri`` changed."""
    while True:
        message = orjson.loads(await client._line())
        if (
            message.get("method") == "notifications/resources/updated"
            and message.get("params", {}).get("uri") == uri
        ):
            return


async def propagation(
    emu: Emulator, folder: Path, component: str, samples: int, *, wait_live: Any
) -> dict[str, Any]:
    """``samples`` set -> notified latencies (ms) for ``component.gain``."""
    config = write_config(folder, emu)
    uri = controls_uri("bench", component)
    latencies: list[float] = []
    async with spawned(daemon_argv(config), LEGACY) as client, raw_qrc(emu) as raw:
        await client.initialize()
        await wait_live(client)
        await client.request("resources/subscribe", {"uri": uri})
        await trio.sleep(3 * POLL_RATE)  # let pushes from start-up pass
        for i in range(samples):
            # a random phase of the poll cycle, and no overlap with the previous sample
            await trio.sleep(POLL_RATE * (0.5 + (i * 0.618) % 1))
            value = -30.0 - (i % 2)
            control = {"Name": "gain", "Value": value}
            started = time.perf_counter()
            with trio.fail_after(10):
                await raw.call("Component.Set", {"Name": component, "Controls": [control]})
                await _updated(client, uri)
            latencies.append((time.perf_counter() - started) * 1000)
    return {"poll_interval_ms": POLL_RATE * 1000, "component": component, "samples": latencies}
