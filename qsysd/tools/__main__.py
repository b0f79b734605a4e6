"""``python -m qsysd.tools``: print docs/tools.md generated from the registry."""

import sys

import structlog

from qsysd.tools import render_docs

# Logs go to stderr so that stdout is the document alone.
structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
sys.stdout.write(render_docs())
