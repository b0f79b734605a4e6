"""tests/_services.require_service: skip locally saying which and how, fail under CI=true."""

from __future__ import annotations

import pytest
from _services import require_service


def test_a_found_service_gives_its_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert require_service("sh", how="it is always there").endswith("/sh")
    assert require_service("anything", how="-", found="/opt/x") == "/opt/x"


def test_a_missing_service_skips_locally_saying_which_and_how(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        require_service("qsysd-no-such-server", how="apt-get install qsysd-no-such-server")
    assert str(skipped.value) == (
        "qsysd-no-such-server is not available; to run this test: "
        "apt-get install qsysd-no-such-server"
    )


@pytest.mark.parametrize("ci", ["true", "TRUE", "1"])
def test_a_missing_service_fails_in_ci(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="CI=true: mosquitto is not available"):
        require_service("mosquitto", how="apt-get install mosquitto", found="")
