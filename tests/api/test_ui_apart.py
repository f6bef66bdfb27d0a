"""The API and the web UI stay apart: only the entry point (``python -m app.api``) brings them
together, and then both go through one synthesis service."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from app.api import server
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ENTRY = ROOT / "app" / "api" / "__main__.py"


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in ``path``, relative ones resolved."""
    package = list(path.relative_to(ROOT).with_suffix("").parts)[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            found.append((node.lineno, ".".join([*base, node.module or ""]).strip(".")))
    return found


def _offenders(package: str, forbidden: tuple[str, ...], skip: Path | None = None) -> list[str]:
    bad = []
    for path in sorted((ROOT / package.replace(".", "/")).rglob("*.py")):
        if path == skip:
            continue
        for line, module in _imports(path):
            if any(module == f or module.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(ROOT)}:{line}: {module}")
    return bad


def test_no_api_module_but_the_entry_point_imports_the_ui():
    assert not _offenders("app.api", ("app.ui", "gradio"), skip=ENTRY)
    assert _offenders("app.api", ("app.ui",)), "the entry point composes them: the check must see it"


def test_the_ui_never_imports_the_api():
    assert not _offenders("app.ui", ("app.api",))


def test_importing_the_api_loads_neither_the_ui_nor_gradio():
    code = (
        "import sys, app.api.app, app.api.server\n"
        "print(sorted(m for m in sys.modules if m.startswith('app.ui') or m.split('.')[0] == 'gradio'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout


def test_the_server_gives_the_ui_its_own_synthesis_service(api_home):
    seen: dict[str, object] = {}

    def mount(app, settings, synthesis, *, path, lang, password, login_message):
        seen.update(synthesis=synthesis, path=path, lang=lang, password=password, message=login_message)
        return app

    built = server.build_server(Settings(home=api_home, api_key="k3y"), mount_ui=mount, lang="zh")
    assert seen["synthesis"] is built.state.api.synthesis  # one line for both
    assert (seen["path"], seen["lang"], built.state.ui) == ("/ui", "zh", True)
    check = seen["password"]
    assert callable(check) and check("k3y") and not check("nope")
    assert "API key" in str(seen["message"])
    built.state.api.synthesis.shutdown()
