"""Testing qsysd plugins: an emulator, a tool stack with given plugins, an MCP client.

As pytest fixtures (this package's pytest plugin loads by itself once qsysd is installed):
``qsysd_emulator``, ``qsysd_stack``, ``qsysd_client``; as async context managers for any
test runner: :func:`running_emulator`, :func:`running_stack`, :func:`connected_client`.
See docs/plugins.md, "Testing a plugin".
"""

from qsysd.testing._stack import (
    QsysdStack as QsysdStack,
    connected_client as connected_client,
    running_emulator as running_emulator,
    running_stack as running_stack,
)

__all__ = ["QsysdStack", "connected_client", "running_emulator", "running_stack"]
