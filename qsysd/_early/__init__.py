"""The early stdio door: ``initialize`` and ``tools/list`` answered before the SDK is imported.

Importing the MCP SDK costs most of a second of CPU (``mcp_types`` builds pydantic models for
every protocol version), and trio a third of one. ``qsysd serve --stdio`` first runs this
module, which uses only the standard library: it finds the state folder, loads the answer
cache there (``stdio-cache.json``: the SDK's own answers to ``initialize``,
``server/discover`` and ``tools/list`` as the real server wrote them, minus the id) and, if
it holds entries, starts a thread that reads stdin and answers cached requests at once.
The first line it cannot answer (uncached, malformed, a response, a line longer than
:data:`PENDING_LIMIT`), or end of input, ends its reading; every byte it read is handed to
the real door (``qsysd.server.serve_stdio``) as a prelude, which replays the requests
answered here into the SDK's session with their answers swallowed and compared: a
difference (a stale cache) is logged, corrected in the cache and, for ``tools/list``,
followed by ``notifications/tools/list_changed``. docs/architecture.md, "The early stdio door".

A cache entry's key is a salted SHA-256 of everything that can change those answers (see
:func:`environment_material`) and of the request (its method, its params but a progress
token, and the connection's state: era, its ``initialize``, ``notifications/initialized``
seen); nothing is stored in clear but the answers, which any client may read anyway.
"""

from qsysd._early._cache import (
    CACHE_FILE as CACHE_FILE,
    MAX_ENTRIES as MAX_ENTRIES,
    AnswerCache as AnswerCache,
    RequestKeys as RequestKeys,
    answer_suffix as answer_suffix,
    enveloped as enveloped,
    environment_material as environment_material,
)
from qsysd._early._door import (
    EarlyDoor as EarlyDoor,
    EarlyStart as EarlyStart,
    Prelude as Prelude,
    open_early_door as open_early_door,
    take_early_start as take_early_start,
)

__all__ = [
    "CACHE_FILE",
    "MAX_ENTRIES",
    "AnswerCache",
    "EarlyDoor",
    "EarlyStart",
    "Prelude",
    "RequestKeys",
    "answer_suffix",
    "enveloped",
    "environment_material",
    "open_early_door",
    "take_early_start",
]
