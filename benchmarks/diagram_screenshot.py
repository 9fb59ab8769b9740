"""Render a spec's SVG diagram and screenshot it in headless Chromium, to check by eye that a
browser shows it legibly (stem, the four stages, the heads).

    python benchmarks/diagram_screenshot.py [--spec v1] [--depth 2] [--out v1_screenshot.png]

Needs Graphviz (`dot`) and Chromium (Debian/Ubuntu: `apt-get install graphviz chromium`).
Chromium runs with a new empty profile and every background service off.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from video_interpreter.diagram import render_diagram

_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_PADDING_PX = 16


def _svg_size_px(svg: Path) -> tuple[int, int]:
    """The drawing's size in CSS pixels (Graphviz writes points: 1 pt = 4/3 px)."""
    head = svg.read_text(encoding="utf-8")[:2000]
    found = re.search(r'<svg[^>]*width="([\d.]+)pt"[^>]*height="([\d.]+)pt"', head, re.S)
    if found is None:
        raise RuntimeError(f"no width/height in points in {svg}")
    width, height = (float(v) * 4 / 3 for v in found.groups())
    return round(width), round(height)


def screenshot(svg: Path, out: Path, *, scale: float = 2.0) -> Path:
    browser = next((found for name in _BROWSERS if (found := shutil.which(name))), None)
    if browser is None:
        raise SystemExit("no Chromium found on PATH; install it (apt-get install chromium)")
    width, height = _svg_size_px(svg)
    with tempfile.TemporaryDirectory() as work:
        page = Path(work) / "page.html"
        page.write_text(
            "<!doctype html><html><body style='margin:0;padding:"
            f"{_PADDING_PX}px;background:#fff'>"
            f"<img src='{svg.resolve().as_uri()}' width='{width}' height='{height}'>"
            "</body></html>",
            encoding="utf-8",
        )
        profile = Path(work) / "profile"
        profile.mkdir()
        command = [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--force-device-scale-factor={scale}",
            f"--window-size={width + 2 * _PADDING_PX},{height + 2 * _PADDING_PX}",
            f"--screenshot={out.resolve()}",
            page.as_uri(),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0 or not out.exists():
        raise SystemExit(f"{browser} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", default="v1")
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="PNG to write")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp()) / f"{Path(args.spec).stem}_screenshot.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    svg = render_diagram(args.spec, out.with_suffix(".svg"), depth=args.depth)
    print(f"wrote {svg}")
    print(f"wrote {screenshot(svg, out)}")


if __name__ == "__main__":
    main()
