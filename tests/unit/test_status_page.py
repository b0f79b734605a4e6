"""The status page's shell: self-contained, no inline script, a strict CSP, shipped as data."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import pytest

from qsysd.access import Principal
from qsysd.core import CoreLinkStatistics
from qsysd.server._asgi import SECURITY_HEADERS, security_headers
from qsysd.server._page import PAGE_CSP, PAGE_PATHS, load_assets, status_document

ROOT = Path(__file__).parents[2]
STATIC = ROOT / "qsysd" / "server" / "static"


def stats(core: str, *, connected: bool, **extra: object) -> CoreLinkStatistics:
    values: dict[str, object] = dict(
        core=core, connected=connected, breaker="closed", breaker_opened=0, reconnects=0,
        connect_failures=0, requests={}, latency_buckets=(), latency_sum=0.0, latency_count=0,
        in_flight=0, pushes=0, values_pushed=0, invalid_frames=0, discoveries=0,
        change_groups=0, design_mismatch=False,
    )  # fmt: skip
    values.update(extra)
    return CoreLinkStatistics(**values)  # type: ignore[arg-type]


def test_every_page_file_loads_from_the_package_with_its_content_type() -> None:
    assets = load_assets()
    assert set(assets) == set(PAGE_PATHS) == {
        "/", "/static/status.js", "/static/status.css", "/static/icon.svg"
    }  # fmt: skip
    assert assets["/"].content_type.startswith("text/html")
    assert assets["/static/status.js"].content_type.startswith("text/javascript")
    assert assets["/static/status.css"].content_type.startswith("text/css")
    assert assets["/static/icon.svg"].content_type == "image/svg+xml"
    assert all(a.body for a in assets.values())
    # Every file in the folder is served: nothing ships that the page does not use.
    assert {p.name for p in STATIC.iterdir()} == {"status.html", "status.js", "status.css",
                                                  "icon.svg"}  # fmt: skip


def test_the_package_data_ships_the_page_in_a_non_editable_install() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["qsysd"]
    for file in STATIC.iterdir():
        relative = file.relative_to(ROOT / "qsysd").as_posix()
        assert any(fnmatch.fnmatch(relative, p) for p in patterns), f"{relative} is not shipped"


@pytest.mark.parametrize("path", sorted(PAGE_PATHS))
def test_no_file_of_the_page_names_anything_outside_qsysd(path: str) -> None:
    text = load_assets()[path].body.decode()
    # The SVG's namespace is an identifier, never fetched.
    text = text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert not re.search(r"(?i)\b(https?|wss?|ftp):", text), "an absolute URL"
    assert not re.search(r"""(?i)(src|href|action)\s*=\s*["']?//""", text), "a network path"
    assert not re.search(r"(?i)@import|url\(", text), "a stylesheet import or url()"
    assert "fetch(`http" not in text and "fetch('http" not in text


def test_the_html_has_no_inline_script_style_or_handlers() -> None:
    html = load_assets()["/"].body.decode()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S)
    assert scripts == [(' src="/static/status.js" defer', "")]
    assert "<style" not in html and not re.search(r"\sstyle\s*=", html)
    assert not re.search(r"\son[a-z]+\s*=", html), "an inline event handler"
    referenced = set(re.findall(r"""(?:src|href)="([^"]+)\"""", html))
    assert referenced <= set(PAGE_PATHS), referenced


def test_the_script_never_parses_html_or_evaluates_text() -> None:
    script = load_assets()["/static/status.js"].body.decode()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function", "setTimeout(\"", "localStorage"):  # fmt: skip
        assert sink not in script, sink
    # The token goes in a header, never in a URL.
    assert "sessionStorage" in script and "Authorization" in script
    assert not re.search(r"[?&]token=", script)


def test_only_the_page_gets_the_page_policy_and_it_allows_no_inline_script() -> None:
    directives = dict(d.strip().split(" ", 1) for d in PAGE_CSP.split(";"))
    assert directives["default-src"] == "'none'"
    for name in ("script-src", "style-src", "img-src", "connect-src"):
        assert directives[name] == "'self'", name
    assert directives["form-action"] == "'none'" and directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in PAGE_CSP and "data:" not in PAGE_CSP
    page = dict(security_headers("/", https=False))
    assert page[b"content-security-policy"] == PAGE_CSP.encode()
    for path in ("/api/v1/status", "/static/status.js", "/health", "/mcp", "//"):
        assert security_headers(path, https=False) == SECURITY_HEADERS, path
    assert dict(security_headers("/", https=True))[b"strict-transport-security"]


def test_the_status_document_adds_recovery_times_to_each_core() -> None:
    cores = [{"name": "main", "connected": True}, {"name": "annex", "connected": False}]
    annex = stats("annex", connected=False, retry_every=7.5, breaker="open", breaker_opened=2,
                  breaker_retry_in=4.26, connect_failures=9)  # fmt: skip
    main = stats("main", connected=True, retry_every=30.0, last_push_age=0.123)
    document = status_document(
        Principal("wall-panel", door="rest", role="viewer", permissions=frozenset({"read"})),
        cores,
        {"main": main, "annex": annex},
        {"entries": [], "next_offset": None, "note": None},
        now=1_764_633_600.0,
    )
    assert document["time"] == "2025-12-02T00:00:00Z"
    assert document["principal"] == {
        "name": "wall-panel", "role": "viewer", "permissions": ["read"]
    }  # fmt: skip
    main, annex = document["cores"]
    # A connected link does not retry; the interval it had while down is not news.
    assert main["link"]["retry_every_s"] is None and main["link"]["last_push_age_s"] == 0.12
    assert annex["link"] == {
        "reconnects": 0, "connect_failures": 9, "breaker_openings": 2,
        "breaker_retry_in_s": 4.3, "retry_every_s": 7.5, "last_push_age_s": None,
        "design_mismatch": False,
    }  # fmt: skip
    assert main["name"] == "main" and document["writes"]["entries"] == []
