"""The REST door fuzzed by schemathesis against the daemon's own OpenAPI document.

``qsysd serve`` runs as a subprocess on the emulator with token authentication; schemathesis
loads ``/api/v1/openapi.json`` over real loopback HTTP and sends every operation generated
requests (valid and invalid, with an admin token), checking each answer with its default
checks (no 5xx, status codes, content types and bodies as documented, invalid data
refused; not "valid data accepted": a tool checks more than its schema says, and answers a
schema-valid call it cannot take with the documented 422) and one of ours: every error is
an RFC 9457 ``application/problem+json`` document.
The event stream (``GET /api/v1/events``) is left out: it never ends by design.

``QSYSD_HOSTILE_EXAMPLES`` (default 25) sets the examples per operation.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import schemathesis
import trio
from _trio_thread import TrioThread
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance
from schemathesis.generation.case import Case

from qsysd.emulator import EmulatorServer, demo_design, serve_emulator
from tests.e2e.test_http_serve import LogTail, http_daemon, write_config

EXAMPLES = int(os.environ.get("QSYSD_HOSTILE_EXAMPLES", "25"))
QSYSD = [sys.executable, "-m", "qsysd"]
#: A name schemathesis will not come up with for a token to revoke (tokens are not in the
#: document, but names are what ``DELETE /api/v1/tokens/{name}`` takes).
TOKEN_NAME = "fuzz-admin-3f9c1d"
PROBLEM_KEYS = {"type", "title", "status", "detail", "retryable"}


@attrs.define
class RestDaemon:
    emulator: EmulatorServer
    base: str
    logs: LogTail
    token: str
    #: operation -> examples answered in the current test
    examples: dict[str, int] = attrs.field(factory=dict)


@asynccontextmanager
async def running_rest(tmp: Path) -> AsyncIterator[RestDaemon]:
    async with serve_emulator(demo_design()) as emulator:
        budgets = "".join(
            f'{name} = "off"\n'
            for name in (
                "rate_limit_reads",
                "rate_limit_writes",
                "rate_limit_address_reads",
                "rate_limit_address_writes",
                "rate_limit_failed_auth",
            )
        )
        config = write_config(tmp, emulator, auth=f'mode = "token"\n{budgets}')
        command = [*QSYSD, "token", "create", "--name", TOKEN_NAME, "--role", "admin"]
        made = await trio.run_process([*command, "--config", str(config)], capture_stdout=True)
        token = made.stdout.decode().strip()
        async with http_daemon(config) as (process, logs, base):
            yield RestDaemon(emulator, base, logs, token)
            assert process.returncode is None, "the daemon died under the fuzzing"


@pytest.fixture(scope="module")
def rest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestDaemon]:
    tmp = tmp_path_factory.mktemp("rest")
    with TrioThread(lambda: running_rest(tmp)) as (_, daemon):
        yield daemon
    leaked = [r for r in daemon.logs.records if daemon.token in str(r)]
    assert not leaked, "the token is in the daemon's log"
    errors = [r for r in daemon.logs.records if r.get("level") in ("error", "critical")]
    assert not errors, errors[:3]


@pytest.fixture(scope="module")
def rest_schema(rest: RestDaemon) -> Any:
    return schemathesis.openapi.from_url(
        f"{rest.base}/api/v1/openapi.json",
        headers={"Authorization": f"Bearer {rest.token}"},
        wait_for_schema=30.0,
    )


@schemathesis.check
def problem_json(ctx: Any, response: Any, case: Case) -> bool | None:
    """Every error answer is an RFC 9457 problem document with qsysd's fields."""
    if response.status_code < 400:
        return None
    headers = {k.lower(): v for k, v in response.headers.items()}
    content_type = headers.get("content-type", [""])
    content_type = content_type[0] if isinstance(content_type, list) else content_type
    assert content_type.startswith("application/problem+json"), (
        f"{response.status_code} answered as {content_type!r}, not problem+json"
    )
    body = response.json()
    missing = PROBLEM_KEYS - set(body)
    assert not missing, f"a problem document without {sorted(missing)}: {body}"
    assert body["status"] == response.status_code, body
    assert len(body["detail"]) >= 15, f"a detail that says nothing: {body['detail']!r}"
    return True


def fuzz_operation(rest: RestDaemon, operation: Any, mode: GenerationMode) -> None:
    """``EXAMPLES`` generated requests of ``mode`` for one operation, each answer checked."""
    key = f"{operation.method.upper()} {operation.path}"

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Case) -> None:
        case.call_and_validate(
            base_url=rest.base,
            headers={"Authorization": f"Bearer {rest.token}"},
            additional_checks=[problem_json],
            # Tools check more than JSON Schema can say (ISO times, channel syntax, one of
            # value/position/string): a schema-valid call may get the documented 422.
            excluded_checks=[positive_data_acceptance],
            timeout=30,
        )
        rest.examples[key] = rest.examples.get(key, 0) + 1

    try:
        check()
    except Unsatisfiable:
        # an operation without inputs to break (GET /api/v1/tools) has no negative requests
        assert mode is GenerationMode.NEGATIVE, key
        rest.examples[key] = 0


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda m: m.value)
def test_every_operation_answers_as_documented(
    rest: RestDaemon, rest_schema: Any, mode: GenerationMode, reliability: Any
) -> None:
    """Valid (positive) or invalid (negative) requests for every operation but the stream."""
    rest.examples.clear()
    operations = [r.ok() for r in rest_schema.get_all_operations()]
    operations = [op for op in operations if op.path != "/api/v1/events"]
    for operation in operations:
        fuzz_operation(rest, operation, mode)
    assert len(rest.examples) == len(operations), "an operation answered no example"
    auth = {"Authorization": f"Bearer {rest.token}"}
    status = httpx.get(f"{rest.base}/api/v1/cores/venue", headers=auth, timeout=30)
    assert status.status_code == 200, status.text  # the daemon and its Core are still fine
    assert status.json()["connected"] is True
    reliability.record(
        area="hostile input",
        case=f"schemathesis {mode.value} requests for the {len(operations)} operations "
        "of the OpenAPI document",
        door="rest",
        trials=sum(rest.examples.values()),
        outcome="no 5xx; status, content type and body as documented; every error "
        "problem+json" + ("; invalid data refused" if mode is GenerationMode.NEGATIVE else ""),
        figures={"operations": float(len(operations))},
    )
