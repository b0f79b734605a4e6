"""QrcConnection.request_batch, the set-up's bulk path, against the emulator over loopback."""

from __future__ import annotations

import pytest
import trio

from qsysd.emulator import EmulatorServer
from qsysd.errors import RequestTimeout, TransportError
from qsysd.qrc import ErrorResponse, Response, open_qrc_connection, open_transport

WAIT = 10.0


def ignore(index: int, reply: Response | ErrorResponse, latency: float) -> None:
    pass


async def test_a_batch_answers_in_order_with_error_answers_per_item(
    emulator: EmulatorServer,
) -> None:
    names = [c.name for c in emulator.core.components.values()]
    asked = [*names[:5], "No_Such_Component", *names[5:]]
    with trio.fail_after(WAIT):
        async with (
            open_transport(emulator.host, emulator.tcp_port) as transport,
            open_qrc_connection(transport, keepalive_interval=None) as connection,
        ):
            got: dict[int, tuple[Response | ErrorResponse, float]] = {}

            def on_reply(index: int, reply: Response | ErrorResponse, latency: float) -> None:
                assert index not in got
                got[index] = (reply, latency)

            await connection.request_batch(
                "Component.GetControls", [{"Name": n} for n in asked], on_reply, window=3
            )
            assert sorted(got) == list(range(len(asked)))
            for index, name in enumerate(asked):
                reply, latency = got[index]
                assert latency >= 0
                if name == "No_Such_Component":
                    assert isinstance(reply, ErrorResponse) and reply.code == 7
                else:
                    assert isinstance(reply, Response) and reply.result["Name"] == name
            stats = connection.statistics()
            assert stats.in_flight == 0 and stats.requests_sent == len(asked)
            # the connection goes on serving single requests afterwards
            assert await connection.request("NoOp", {}) is True


async def test_a_stalled_core_times_a_batch_out_and_a_drop_fails_it(
    emulator: EmulatorServer,
) -> None:
    names = [c.name for c in emulator.core.components.values()]
    with trio.fail_after(WAIT):
        async with (
            open_transport(emulator.host, emulator.tcp_port) as transport,
            open_qrc_connection(transport, keepalive_interval=None) as connection,
        ):
            emulator.stall()
            with pytest.raises(RequestTimeout, match=r"did not answer Component\.GetControls"):
                await connection.request_batch(
                    "Component.GetControls", [{"Name": n} for n in names], ignore, timeout=0.3
                )
            assert connection.statistics().in_flight == 0
            emulator.stall(False)
        async with (
            open_transport(emulator.host, emulator.tcp_port) as transport,
            open_qrc_connection(transport, keepalive_interval=None) as connection,
        ):
            emulator.set_reply_delay(0.2)

            async def drop() -> None:
                await trio.sleep(0.1)
                emulator.drop_connections()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(drop)
                with pytest.raises(TransportError):
                    await connection.request_batch(
                        "Component.GetControls", [{"Name": n} for n in names], ignore
                    )
