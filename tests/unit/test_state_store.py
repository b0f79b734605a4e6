"""The state store: designs, values, versions, freshness, lookups with suggestions, statistics."""

from __future__ import annotations

import pytest

from qsysd.errors import LookupFailed
from qsysd.state import (
    ComponentInfo,
    ControlInfo,
    ControlRef,
    ControlValue,
    CoreStatus,
    StateStore,
)


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


GAIN = ControlRef("main", "Lobby_BGM", "gain")
MUTE = ControlRef("main", "Lobby_BGM", "mute")
MASTER = ControlRef("main", None, "MasterGain")


def value(ref: ControlRef, v: float | bool | str, string: str | None = None) -> ControlValue:
    return ControlValue(ref, v, string if string is not None else str(v), None)


def design(store: StateStore, values: list[ControlValue] | None = None) -> None:
    store.replace_design(
        "main",
        "code-1",
        [ComponentInfo("main", "Lobby_BGM", "gain", "id-1", (("max", "20"),))],
        [
            ControlInfo(GAIN, "Float", "Read/Write", -100.0, 20.0, "-100dB", "20dB"),
            ControlInfo(MUTE, "Boolean", "Read/Write"),
            ControlInfo(MASTER, "Float", "Read/Write"),
        ],
        values if values is not None else [value(GAIN, -10.0, "-10.0dB"), value(MUTE, False)],
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> StateStore:
    s = StateStore(clock=clock)
    design(s)
    return s


def test_control_ref_str_names_component_and_control() -> None:
    assert str(GAIN) == "Lobby_BGM.gain"
    assert str(MASTER) == "MasterGain"


def test_replace_design_makes_components_controls_and_values_readable(store: StateStore) -> None:
    assert store.cores() == ["main"]
    assert store.design_code("main") == "code-1"
    assert [c.name for c in store.components("main")] == ["Lobby_BGM"]
    assert store.component("main", "Lobby_BGM").properties == (("max", "20"),)
    reading = store.read(GAIN)
    assert reading.info.value_max == 20.0
    assert reading.value == value(GAIN, -10.0, "-10.0dB")
    assert reading.version == 1
    assert reading.stale is False
    assert [r.ref for r in store.controls("main", "Lobby_BGM")] == [GAIN, MUTE]
    assert [r.ref for r in store.controls("main", None)] == [MASTER]
    assert store.read(MASTER).value is None


def test_apply_counts_only_real_changes_and_bumps_versions(
    store: StateStore, clock: FakeClock
) -> None:
    clock.now += 5
    changed = store.apply([value(GAIN, -10.0, "-10.0dB"), value(MUTE, True)])
    assert changed == 1
    assert store.read(GAIN).version == 1
    mute = store.read(MUTE)
    assert mute.version == 2
    assert mute.changed_at == clock.now
    assert mute.value is not None and mute.value.value is True


def test_apply_treats_a_boolean_and_an_equal_number_as_different(store: StateStore) -> None:
    store.apply([value(MUTE, 0)])
    assert store.read(MUTE).version == 2


def test_age_counts_from_last_confirmation_not_last_change(
    store: StateStore, clock: FakeClock
) -> None:
    clock.now += 10
    assert store.read(GAIN).age == 10
    store.apply([value(GAIN, -10.0, "-10.0dB")])  # same value: confirms, does not change
    assert store.read(GAIN).age == 0
    assert store.read(GAIN).changed_at == clock.now - 10
    clock.now += 3
    store.confirm("main")  # a poll answered with no changes
    assert store.read(MUTE).age == 0


def test_stale_core_is_reported_on_every_reading_until_marked_live(store: StateStore) -> None:
    store.mark_stale("main")
    assert store.is_stale("main")
    assert all(r.stale for r in store.controls("main", "Lobby_BGM"))
    store.mark_live("main")
    assert not store.is_stale("main")
    assert not store.read(GAIN).stale


def test_unknown_core_counts_as_stale() -> None:
    assert StateStore().is_stale("nowhere")


def test_apply_adds_unknown_control_of_known_component(store: StateStore) -> None:
    ref = ControlRef("main", "Lobby_BGM", "meter")
    assert store.apply([value(ref, -40.0)]) == 1
    reading = store.read(ref)
    assert (reading.info.type, reading.info.direction) == ("Unknown", "Unknown")
    assert store.statistics().unknown_added == 1


def test_apply_ignores_and_counts_values_of_unknown_components_and_cores(
    store: StateStore,
) -> None:
    changed = store.apply(
        [
            value(ControlRef("main", "Nope", "gain"), 1.0),
            value(ControlRef("other", "X", "gain"), 1.0),
            value(GAIN, 3.0),
        ]
    )
    assert changed == 1
    assert store.statistics().unknown_ignored == 2
    with pytest.raises(LookupFailed):
        store.component("main", "Nope")


def test_replace_design_drops_what_the_core_no_longer_has_and_keeps_versions(
    store: StateStore,
) -> None:
    store.apply([value(GAIN, -5.0)])
    store.replace_design(
        "main",
        "code-2",
        [ComponentInfo("main", "Lobby_BGM", "gain", "id-1")],
        [ControlInfo(GAIN, "Float", "Read/Write")],
        [value(GAIN, -5.0)],
    )
    assert store.read(GAIN).version == 2  # unchanged value: no new version
    assert [r.ref for r in store.controls("main", "Lobby_BGM")] == [GAIN]
    assert store.controls("main", None) == []
    with pytest.raises(LookupFailed):
        store.read(MUTE)


def test_replace_design_marks_the_core_live(store: StateStore) -> None:
    store.mark_stale("main")
    design(store)
    assert not store.is_stale("main")


def test_replace_design_rejects_controls_of_another_core(store: StateStore) -> None:
    with pytest.raises(ValueError, match="belongs to Core"):
        store.replace_design(
            "main", None, [], [ControlInfo(ControlRef("b", None, "x"), "Text", "Read Only")], []
        )


def test_read_of_misspelled_control_suggests_close_names(store: StateStore) -> None:
    with pytest.raises(LookupFailed) as info:
        store.read(ControlRef("main", "Lobby_BGM", "gian"))
    assert info.value.suggestions == ["gain"]
    assert 'no control "gian" in component "Lobby_BGM" on Core "main"' in str(info.value)


def test_read_of_misspelled_component_suggests_close_names(store: StateStore) -> None:
    with pytest.raises(LookupFailed) as info:
        store.read(ControlRef("main", "Lobby_BMG", "gain"))
    assert info.value.suggestions == ["Lobby_BGM"]
    with pytest.raises(LookupFailed) as info:
        store.controls("main", "lobby_bgm")
    assert info.value.suggestions == ["Lobby_BGM"]


def test_lookup_in_unknown_core_suggests_known_cores(store: StateStore) -> None:
    with pytest.raises(LookupFailed) as info:
        store.components("mian")
    assert info.value.suggestions == ["main"]


def test_read_of_unknown_named_control_suggests_named_controls(store: StateStore) -> None:
    with pytest.raises(LookupFailed) as info:
        store.read(ControlRef("main", None, "MasterGian"))
    assert info.value.suggestions == ["MasterGain"]


def test_core_status_is_kept_per_core(store: StateStore) -> None:
    assert store.core_status("main") is None
    status = CoreStatus("main", connected=True, state="Active", design_name="Lobby")
    store.set_core_status("main", status)
    assert store.core_status("main") == status
    store.set_core_status("backup", CoreStatus("backup"))
    assert store.cores() == ["main", "backup"]


def test_statistics_count_cores_components_controls_and_changes(store: StateStore) -> None:
    store.apply([value(GAIN, 1.0)])
    watchers = [store.watch([GAIN]), store.watch(None)]
    stats = store.statistics()
    for watcher in watchers:
        watcher.close()
    assert (stats.cores, stats.components, stats.controls) == (1, 1, 3)
    assert stats.changes_applied == 3  # two first values, one change
    assert stats.watchers == 2
    assert store.statistics().watchers == 0


def test_version_grows_with_every_change(store: StateStore) -> None:
    before = store.version
    store.apply([value(GAIN, 1.0)])
    store.apply([value(GAIN, 1.0)])
    assert store.version == before + 1


def test_listener_sees_every_change_with_its_previous_value(store: StateStore) -> None:
    seen: list[tuple[ControlValue, ControlValue | None]] = []
    remove = store.add_listener(lambda after, before, at: seen.append((after, before)))
    store.apply([value(GAIN, 1.0), value(GAIN, 2.0), value(GAIN, 2.0)])
    remove()
    store.apply([value(GAIN, 3.0)])
    assert [(a.value, b.value if b else None) for a, b in seen] == [(1.0, -10.0), (2.0, 1.0)]


def test_picture_and_restore_round_trip_marks_values_stale(
    store: StateStore, clock: FakeClock
) -> None:
    store.apply([value(GAIN, -3.0, "-3.0dB")])
    picture = store.picture()
    clock.now += 60
    restored = StateStore(clock=clock)
    restored.restore(picture)
    assert restored.is_stale("main")
    reading = restored.read(GAIN)
    assert reading.stale
    assert reading.value == value(GAIN, -3.0, "-3.0dB")
    assert reading.version == store.read(GAIN).version
    assert reading.age == 60
    assert restored.read(MASTER).value is None
    assert restored.component("main", "Lobby_BGM") == store.component("main", "Lobby_BGM")
    design(restored, [value(GAIN, -3.0, "-3.0dB")])  # the Core confirms
    assert not restored.read(GAIN).stale
    assert restored.read(GAIN).version == reading.version


def test_restore_leaves_cores_the_store_already_has_alone(store: StateStore) -> None:
    picture = store.picture()
    store.apply([value(GAIN, 7.0)])
    store.restore(picture)
    reading = store.read(GAIN)
    assert reading.value is not None and reading.value.value == 7.0
    assert not reading.stale


def test_a_late_restore_fills_a_core_known_only_by_its_status(
    store: StateStore, clock: FakeClock
) -> None:
    # The snapshot loaded once Redis is back, while the Core's link still retries.
    store.apply([value(GAIN, -3.0, "-3.0dB")])
    picture = store.picture()
    late = StateStore(clock=clock)
    status = CoreStatus("main", connected=False, state="Idle")
    late.set_core_status("main", status)
    late.restore(picture)
    reading = late.read(GAIN)
    assert reading.stale and reading.value == value(GAIN, -3.0, "-3.0dB")
    assert late.core_status("main") == status


def test_the_first_metadata_of_a_known_value_is_no_change() -> None:
    # GetControls carries no display metadata; a newer Core's first poll carries all of it.
    store = StateStore()
    design(store, [value(GAIN, -10.0, "-10.0dB")])
    changes: list[ControlValue] = []
    store.add_listener(lambda v, before, at: changes.append(v))
    watcher = store.watch([GAIN])
    meta = {"Color": "", "Legend": "", "Disabled": False}
    assert store.apply([ControlValue(GAIN, -10.0, "-10.0dB", None, meta)]) == 0
    reading = store.read(GAIN)
    assert reading.version == 1 and reading.value is not None
    assert reading.value.metadata == meta
    assert watcher.statistics().offered == 0 and changes == []
    # once known, a change of metadata is a change
    disabled = {**meta, "Disabled": True}
    assert store.apply([ControlValue(GAIN, -10.0, "-10.0dB", None, disabled)]) == 1
    assert store.read(GAIN).version == 2 and len(changes) == 1
    assert watcher.statistics().offered == 1
    watcher.close()


def test_equal_metadata_is_stored_once() -> None:
    store = StateStore()
    design(store, [value(GAIN, -10.0), value(MUTE, False)])
    store.apply(
        [
            ControlValue(GAIN, -10.0, "-10.0", None, {"Legend": "", "Choices": ["a"]}),
            ControlValue(MUTE, False, "False", None, {"Legend": "", "Choices": ["a"]}),
        ]
    )
    gain, mute = store.read(GAIN).value, store.read(MUTE).value
    assert gain is not None and mute is not None
    assert gain.metadata is mute.metadata
    assert gain.metadata == {"Legend": "", "Choices": ["a"]}
    with pytest.raises(TypeError):
        gain.metadata["Legend"] = "x"  # type: ignore[index]


def test_kinds_is_a_live_view_of_each_controls_type(store: StateStore) -> None:
    kinds = store.kinds("main")
    assert kinds[GAIN] == "Float" and kinds[MUTE] == "Boolean"
    assert kinds.get(ControlRef("main", "Lobby_BGM", "nope")) is None
    assert kinds.get(ControlRef("other", "Lobby_BGM", "gain")) is None
    assert kinds.get(ControlRef("main", "Lobby_BGM", "nope"), "Float") == "Float"
    assert kinds.get(GAIN, "Text") == "Float"
    with pytest.raises(KeyError):
        kinds[ControlRef("main", "Lobby_BGM", "nope")]
    assert len(kinds) == 3 and set(kinds) == {GAIN, MUTE, MASTER}
    # an unknown control the Core reports shows up at once
    extra = ControlRef("main", "Lobby_BGM", "new")
    store.apply([value(extra, 1.0)])
    assert kinds[extra] == "Unknown"


def test_control_infos_lists_descriptions_by_component(store: StateStore) -> None:
    infos = store.control_infos("main")
    assert [i.ref for i in infos["Lobby_BGM"]] == [GAIN, MUTE]
    assert [i.ref for i in infos[None]] == [MASTER]
