"""Headless Chromium from Debian's `chromium` package, driven by Playwright for Python.

Playwright's own browser download cannot run here, so it launches /usr/bin/chromium
(`make test` installs it when run as root). Without it, or without Playwright, the
browser tests skip with the reason, unless FOTA_REQUIRE_CHROMIUM=1 (set by .ci/run)
turns the skip into a failure. Screenshots go to test-artifacts/ui/ (gitignored).
"""

from __future__ import annotations

from pathlib import Path

from builders import tools

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "ui"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def unavailable(reason: str) -> None:
    tools.unavailable(reason, "FOTA_REQUIRE_CHROMIUM")


def check_available() -> None:
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} missing: install Debian's chromium (make test does as root)")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[dev]')")


def screenshot_path(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / f"{name}.png"
