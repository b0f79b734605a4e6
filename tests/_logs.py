"""Reading what qsysd logged, for tests (structlog writes to its stream, not to caplog)."""

from __future__ import annotations

from collections.abc import Callable

#: ``log_text()``: everything logged so far in the test, as JSON lines.
LogText = Callable[[], str]
