"""Screenshots of every tab in English and Chinese, for a person to review (not a test, not committed).

    python -m tests.ui.screenshots /tmp/studio-shots           # a fresh data folder: first-run panels
    python -m tests.ui.screenshots /tmp/studio-shots --tiny    # with tiny random models in it
    python -m tests.ui.screenshots /tmp/shots --locales en-US zh-CN zh-TW ja-JP ko-KR

Starts ``webui.py`` on a temporary data folder, opens it in headless Chromium once per browser
language and writes ``<out>/<locale>-<tab>.png`` (full page) for each tab. CJK text needs a CJK font
on the machine (Debian: ``fonts-noto-cjk``, in the Makefile's system packages).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)


def shoot(out: Path, locales: Sequence[str], tiny: bool) -> list[Path]:
    """Write the screenshots; returns their paths."""
    from tests.browser import chromium_context, run_studio
    from tests.infer.tiny import build_home
    from tests.ui.test_locales_browser import open_in

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        if tiny:
            build_home(home)
        with run_studio(home) as server, chromium_context(Path(tmp) / "profile") as context:
            for locale in locales:
                page = open_in(context, server, locale)
                tabs = page.get_by_role("tab")
                for index in range(tabs.count()):
                    tab = tabs.nth(index)
                    tab.click()
                    page.wait_for_timeout(800)  # let the panel lay itself out
                    name = re.sub(r"[^A-Za-z0-9_-]+", "-", tab.get_attribute("id") or f"tab{index}")
                    path = out / f"{locale}-{index:02d}-{name}.png"
                    page.screenshot(path=str(path), full_page=True)
                    written.append(path)
                page.close()
    return written


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="folder for the PNG files (outside the repository)")
    p.add_argument("--locales", nargs="+", default=["en-US", "zh-CN"], help="browser languages")
    p.add_argument("--tiny", action="store_true", help="put tiny random models in the data folder first")
    args = p.parse_args(argv)
    for path in shoot(args.out, args.locales, args.tiny):
        log.info("%s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
