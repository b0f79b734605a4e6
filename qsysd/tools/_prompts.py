"""Built-in MCP prompts: room control assistant, level audit, silent-room troubleshooting."""

from __future__ import annotations

from collections.abc import Callable

from qsysd.plugins import Prompt, PromptArgument, hookimpl


def _room_assistant(args: dict[str, str]) -> str:
    room = args.get("room") or "the room the user names"
    return (
        f"You are the audio control assistant for {room}, controlling a Q-SYS system through "
        "the qsys_* tools.\n"
        "1. Call qsys_summary to see the zones and their levels.\n"
        "2. Turn what the user says into controls with qsys_find_controls (e.g. 'music "
        "volume' -> '<Zone>.gain'); confirm the control when more than one fits.\n"
        "3. Change levels with qsys_set in small steps (3-6 dB), with a short ramp (1-2 s) "
        "for music. Gains are in dB; 0 dB is nominal, -100 dB is silent.\n"
        "4. If qsys_set refuses a large step, tell the user and ask before retrying with "
        "confirm: true. Never touch controls the policy reports as protected.\n"
        "5. Report the result with the Core's own string (e.g. '-18.0dB')."
    )


def _level_audit(args: dict[str, str]) -> str:
    scope = args.get("scope") or "every zone"
    return (
        f"Audit the audio levels of {scope}.\n"
        "1. Call qsys_summary, then qsys_list_controls for each zone that looks unusual.\n"
        "2. Flag: muted zones, gains above -3 dB, gains below -60 dB, stale values, and zones "
        "whose level differs by more than 10 dB from similar zones.\n"
        "3. Use qsys_history kind='audit' to see who changed a flagged control recently.\n"
        "4. Do not change anything: report a table (zone, gain, mute, finding) and suggest "
        "corrections for the user to approve."
    )


def _silent_room(args: dict[str, str]) -> str:
    room = args.get("room") or "the silent room"
    return (
        f"Troubleshoot why {room} has no sound, step by step, reading before changing.\n"
        "1. qsys_status: is the Core connected and Active, its status OK? If not, stop and "
        "report that (the Core or the network is the problem).\n"
        f"2. qsys_find_controls '{room}' to find the zone's gain, mute and any mixer or "
        "router feeding it; qsys_get them with fresh=true.\n"
        "3. Check in order: zone mute, zone gain (below -60 dB is effectively silent), the "
        "mixer crosspoint and input/output strips feeding it (qsys_list_controls on the "
        "mixer), router selections, source levels.\n"
        "4. qsys_history for recent changes to those controls.\n"
        "5. Propose the smallest fix (e.g. unmute, or raise the gain to -20 dB with a ramp); "
        "apply it only after the user agrees, then read the values back."
    )


PROMPTS = [
    Prompt(
        name="room_control_assistant",
        title="Room control assistant",
        description="Control a room's audio safely: find controls, change levels in steps.",
        render=_room_assistant,
        arguments=(PromptArgument("room", "The room or zone to control, e.g. 'Lobby'."),),
    ),
    Prompt(
        name="level_audit",
        title="Level audit",
        description="Review every zone's gain and mute and report anomalies, changing nothing.",
        render=_level_audit,
        arguments=(PromptArgument("scope", "Which zones to audit; default every zone."),),
    ),
    Prompt(
        name="troubleshoot_silent_room",
        title="Troubleshoot a silent room",
        description="Find why a room has no sound: Core, mutes, gains, mixer, router, history.",
        render=_silent_room,
        arguments=(PromptArgument("room", "The silent room or zone.", required=True),),
    ),
]


@hookimpl
def qsysd_register_prompts(register: Callable[[Prompt], None]) -> None:
    for prompt in PROMPTS:
        register(prompt)
