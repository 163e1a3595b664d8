#!/usr/bin/env python
"""See `study ui` the way a user does: serve a store, open every link it prints in headless
Chromium (a fresh browser profile each, so nothing remembered helps), and save each page as a
PNG and as its rendered HTML.

    python scripts/ui_screenshots.py --tracking-uri sqlite:///mlruns/mlflow.db --out out/ui

Needs Chromium (Debian/Ubuntu: `apt-get install -y chromium`). tests/test_browse.py runs it on a
small store; docs/browsing.md shows its pictures.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from study.contract import wait_until_up

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def browser() -> str | None:
    """The first Chromium on PATH, else None."""
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def render(chrome: str, url: str, png: Path, size: str = "1800,1100", wait_ms: int = 40000
           ) -> str:
    """Screenshot `url` into `png` and return its DOM after the page's scripts ran for
    `wait_ms` of virtual time (charts of curves need ~40 s on a busy 2-core machine)."""
    def chrome_at(profile: str, *what: str) -> list[str]:
        return [chrome, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                f"--user-data-dir={profile}", f"--window-size={size}",
                f"--virtual-time-budget={wait_ms}", *what, url]

    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(chrome_at(profile, f"--screenshot={png}"), capture_output=True,
                       timeout=120, check=True)
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(chrome_at(profile, "--dump-dom"), capture_output=True, text=True,
                              timeout=120, check=True).stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--space", help="one study (default: every study in the store)")
    parser.add_argument("--out", type=Path, default=Path("out/ui"))
    parser.add_argument("--views", nargs="*", help="only these view keys (study-trials, ...)")
    parser.add_argument("--wait", type=int, default=40, help="seconds of page time per page")
    args = parser.parse_args(argv)
    chrome = browser()
    if chrome is None:
        raise SystemExit("no Chromium on PATH: apt-get install -y chromium (or google-chrome)")
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [sys.executable, "-m", "study.cli", "ui", *([args.space] if args.space else []),
               "--tracking-uri", args.tracking_uri, "--port", str(port)]
    ui = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    printed = []
    try:
        for line in ui.stdout:  # the links come before the server starts
            printed.append(line.rstrip())
            if line.startswith("  tags."):  # the ready search: the last line it prints
                break
        if ui.poll() is not None:
            raise SystemExit("study ui ended:\n" + "\n".join(printed))
        wait_until_up(base)
        urls = [u for line in printed for u in re.findall(r"http://\S+", line)]
        for i, url in enumerate(urls):
            key = re.search(r"viewStateShareKey=([\w-]+)", url)
            name = f"{i}-{key.group(1) if key else 'experiments'}"
            if args.views is not None and (key is None or key.group(1) not in args.views):
                continue
            dom = render(chrome, url, args.out / f"{name}.png", wait_ms=args.wait * 1000)
            (args.out / f"{name}.html").write_text(dom)
            print(f"{url}\n  -> {args.out / name}.png")
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        rest = ui.communicate(timeout=60)[0]
    (args.out / "ui.log").write_text("\n".join(printed) + "\n" + rest)
    return ui.returncode


if __name__ == "__main__":
    sys.exit(main())
