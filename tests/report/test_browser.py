"""report.html in a real headless Chromium: it renders, every image loads, and the console stays silent.

Skipped when Chromium is missing outside CI (``make test`` installs it); with ``CI`` set a missing browser fails.
Set ``MEDSSL_TEST_ARTIFACTS=<dir>`` to keep the full-page screenshot.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
]
# Runs before the page's own Content-Security-Policy applies; it reports through the document title.
PROBE = """<script>
const problems = [];
for (const level of ["error", "warn"]) {
  const original = console[level];
  console[level] = (...args) => { problems.push(level + ": " + args.join(" ")); original(...args); };
}
window.addEventListener("error", e => problems.push("error: " + (e.message || (e.target && e.target.tagName))), true);
document.addEventListener("securitypolicyviolation", e => problems.push("csp: " + e.blockedURI));
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const loaded = images.filter(i => i.complete && i.naturalWidth > 0).length;
  document.title = `CHECK images=${loaded}/${images.length} problems=${problems.length} ${problems.join(" | ")}`;
});
</script>"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (Debian package 'chromium'; `make chromium` installs it)")
        pytest.skip("chromium not installed (apt-get install chromium)")
    return found


def run_chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [binary, *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def test_report_renders_in_chromium_with_all_images(report: tuple[Path, Path], tmp_path: Path) -> None:
    binary = chromium()
    page = report[1].read_text()
    n_images = len(re.findall(r"<img\b", page))
    assert n_images >= 10
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("<head>", "<head>" + PROBE, 1))
    result = run_chromium(
        binary, tmp_path / "profile", "--virtual-time-budget=15000", "--dump-dom", probe.as_uri()
    )
    title = re.search(r"<title>(.*?)</title>", result.stdout, re.S)
    assert title is not None, result.stderr[-2000:]
    assert title.group(1).strip() == f"CHECK images={n_images}/{n_images} problems=0", title.group(1)
    assert console_lines(result.stderr) == []


def test_report_screenshot_looks_like_a_page(report: tuple[Path, Path], tmp_path: Path) -> None:
    binary = chromium()
    shot = tmp_path / "report.png"
    result = run_chromium(
        binary,
        tmp_path / "profile",
        "--virtual-time-budget=15000",
        f"--screenshot={shot}",
        "--window-size=1280,4000",
        report[1].as_uri(),
    )
    assert shot.is_file(), result.stderr[-2000:]
    assert console_lines(result.stderr) == []
    with Image.open(shot) as image:
        assert image.size == (1280, 4000)
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert pixels[:150].mean() < 80, "the dark page header is missing"
    assert pixels[600:].std() > 20, "the page body looks blank"
    keep = os.environ.get("MEDSSL_TEST_ARTIFACTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "report_screenshot.png")
