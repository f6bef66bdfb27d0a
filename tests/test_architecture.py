"""The layer rules of ARCHITECTURE.md, checked on the source with ``ast``."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app"

# Lower number = lower layer. A module may import its own layer or lower ones.
LAYERS: dict[str, int] = {
    "app.paths": 0,
    "app.settings": 0,
    "app.devices": 0,
    "app.assets": 0,
    "app.config_io": 0,
    "app.runstatus": 0,
    "app.runconfig": 0,
    "app.fileio": 0,
    "app.models": 1,
    "app.text": 1,
    "app.audio": 1,
    "app.data": 1,  # the package itself and domain modules such as filelist / labeling
    "app.data.filelist": 1,
    "app.data.labeling": 1,
    "app.infer": 2,
    "app.data.preprocess": 2,
    "app.train": 2,
    "app.services": 3,
    "app.ui": 4,
    "app.api": 4,
}
# Pairs that are forbidden even though the layer numbers would allow them.
FORBIDDEN = {
    ("app.services", "app.train"),  # jobs start trainers as subprocesses, never import them
    ("app.infer", "app.train"),
    ("app.train", "app.infer"),
}
INTERFACE_ONLY = {"gradio", "fastapi", "uvicorn", "starlette"}
INTERFACES = {"app.ui", "app.api"}


def layer_of(module: str) -> str | None:
    best = None
    for prefix in LAYERS:
        matches = module == prefix or module.startswith(prefix + ".")
        if matches and (best is None or len(prefix) > len(best)):
            best = prefix
    return best


def module_name(path: Path) -> str:
    rel = path.relative_to(APP.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out = []
    pkg = module_name(path).split(".")
    if path.name != "__init__.py":
        pkg = pkg[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((node.lineno, mod))
            out += [(node.lineno, f"{mod}.{alias.name}") for alias in node.names if mod.startswith("app")]
    return out


def violations() -> list[str]:
    found = []
    for path in sorted(APP.rglob("*.py")):
        me = module_name(path)
        my_layer = layer_of(me)
        for lineno, target in imports_of(path):
            where = f"{path.relative_to(APP.parent)}:{lineno}"
            top = target.split(".")[0]
            if top in INTERFACE_ONLY and (my_layer not in INTERFACES):
                found.append(f"{where}: {me} imports {target}; only app.ui / app.api may")
            if not target.startswith("app.") or my_layer is None:
                continue
            other = layer_of(target)
            if other is None:
                continue
            if LAYERS[other] > LAYERS[my_layer]:
                found.append(f"{where}: {me} ({my_layer}) imports upward {target} ({other})")
            if (my_layer, other) in FORBIDDEN:
                found.append(f"{where}: {me} must not import {target}")
    return found


def env_readers() -> list[str]:
    found = []
    for path in sorted(APP.rglob("*.py")):
        if path.name == "settings.py" and path.parent == APP:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in {"environ", "getenv", "environb"}
                and isinstance(node.value, ast.Name)
                and node.value.id == "os"
            ):
                found.append(f"{path.relative_to(APP.parent)}:{node.lineno}: os.{node.attr}")
    return found


def test_every_app_module_has_a_layer():
    missing = [
        module_name(p)
        for p in APP.rglob("*.py")
        if layer_of(module_name(p)) is None and module_name(p) != "app"
    ]
    assert not missing, f"modules outside every layer of ARCHITECTURE.md: {missing}"


def test_no_upward_imports():
    bad = violations()
    assert not bad, "layer violations:\n" + "\n".join(bad)


def test_only_settings_reads_environment():
    bad = env_readers()
    assert not bad, "only app/settings.py may read environment variables:\n" + "\n".join(bad)


def test_checker_catches_an_upward_import(tmp_path, monkeypatch):
    """The checker itself must fail on a planted violation (a test that cannot fail is a defect)."""
    fake_app = tmp_path / "app"
    (fake_app / "text").mkdir(parents=True)
    (fake_app / "__init__.py").write_text("")
    (fake_app / "text" / "__init__.py").write_text("from app.ui import build_app\nimport gradio\n")
    monkeypatch.setattr(sys.modules[__name__], "APP", fake_app)
    bad = violations()
    assert any("imports upward app.ui" in v for v in bad)
    assert any("imports gradio" in v for v in bad)
