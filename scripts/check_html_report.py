"""Check a `bnbench report --html` page: its structure, then how Chromium draws it.

    python scripts/check_html_report.py results/quickstart            # -> report.png beside it
    python scripts/check_html_report.py path/report.html --out /tmp/r.png --height 6000

First the structural checks the tests run (`tests/support/html_check.py`: the page parses, loads
nothing, every table has a header row), then a screenshot with headless Chromium (Debian:
`apt-get install chromium`), to look at. Chromium is given no network: a page that still draws
its figures needs none. Exit status: 0 when both went well, 1 on a structural problem or a
failed screenshot, 2 when no Chromium is installed (the structural checks still ran).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bnbench.export.html_report import REPORT_HTML

# The structural checks are the tests' own (tests/support): run from a checkout, not a wheel.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.html_check import check_html

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="report.html, or the results folder holding it")
    parser.add_argument("--out", type=Path, help="PNG to write (default: beside the report)")
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--browser", help="Chromium binary (default: the first found on PATH)")
    args = parser.parse_args()
    page = args.report / REPORT_HTML if args.report.is_dir() else args.report
    if not page.is_file():
        print(f"{page}: not found; write it with `bnbench report DIR --html`", file=sys.stderr)
        return 1
    problems = check_html(page.read_text(encoding="utf-8"))
    for problem in problems:
        print(f"{page}: {problem}", file=sys.stderr)
    print(f"{page}: {'structure ok' if not problems else f'{len(problems)} problem(s)'}")
    browser = args.browser or next(filter(None, map(shutil.which, BROWSERS)), None)
    if browser is None:
        print("no Chromium found (apt-get install chromium); screenshot skipped", file=sys.stderr)
        return 2
    out = args.out or page.with_suffix(".png")
    with tempfile.TemporaryDirectory() as profile:
        command = [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--user-data-dir={profile}", "--proxy-server=127.0.0.1:9",  # no network
            f"--screenshot={out.resolve()}", f"--window-size={args.width},{args.height}",
            page.resolve().as_uri(),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    if done.returncode != 0 or not out.is_file():
        print(f"{browser} failed ({done.returncode}):\n{done.stderr[-2000:]}", file=sys.stderr)
        return 1
    print(f"screenshot: {out} ({args.width}x{args.height})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
