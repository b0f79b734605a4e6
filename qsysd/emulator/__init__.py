"""A faithful Q-SYS Core emulator: QRC over TCP, QRWC over WebSocket, with fault injection.

For tests, the demo, benchmarks and plugin authors. See docs/emulator.md.
"""

from qsysd.emulator._capture import (
    add_capture_arguments as add_capture_arguments,
    capture_design as capture_design,
    capture_from_args as capture_from_args,
)
from qsysd.emulator._cli import (
    add_cli_arguments as add_cli_arguments,
    main_from_args as main_from_args,
    run_emulator_cli as run_emulator_cli,
)
from qsysd.emulator._design import (
    ComponentSpec as ComponentSpec,
    ControlSpec as ControlSpec,
    Design as Design,
    DesignError as DesignError,
    SnapshotBankSpec as SnapshotBankSpec,
    SnapshotMember as SnapshotMember,
    design_from_dict as design_from_dict,
    design_to_dict as design_to_dict,
    load_design as load_design,
)
from qsysd.emulator._engine import Engine as Engine, Faults as Faults
from qsysd.emulator._generate import demo_design as demo_design, generate_design as generate_design
from qsysd.emulator._mixer import parse_channels as parse_channels
from qsysd.emulator._model import Component as Component, Control as Control, Core as Core
from qsysd.emulator._pair import (
    EmulatorPair as EmulatorPair,
    serve_redundant_pair as serve_redundant_pair,
)
from qsysd.emulator._server import (
    QRWC_PATH as QRWC_PATH,
    EmulatorServer as EmulatorServer,
    serve_emulator as serve_emulator,
)
from qsysd.emulator._session import Session as Session
from qsysd.emulator._standby import ActiveWatch as ActiveWatch, serve_standby as serve_standby

__all__ = [
    "QRWC_PATH",
    "ActiveWatch",
    "Component",
    "ComponentSpec",
    "Control",
    "ControlSpec",
    "Core",
    "Design",
    "DesignError",
    "EmulatorPair",
    "EmulatorServer",
    "Engine",
    "Faults",
    "Session",
    "SnapshotBankSpec",
    "SnapshotMember",
    "add_capture_arguments",
    "add_cli_arguments",
    "capture_design",
    "capture_from_args",
    "demo_design",
    "design_from_dict",
    "design_to_dict",
    "generate_design",
    "load_design",
    "main_from_args",
    "parse_channels",
    "run_emulator_cli",
    "serve_emulator",
    "serve_redundant_pair",
    "serve_standby",
]
