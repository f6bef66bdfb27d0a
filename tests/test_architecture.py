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
    "app.messages": 0,
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
    # `python -m app.api`: an entry point inside the package, the one place that composes the API
    # with the web UI it mounts.
    "app.api.__main__": 5,
}
# Pairs that are forbidden even though the layer numbers would allow them.
FORBIDDEN = {
    ("app.services", "app.train"),  # jobs start trainers as subprocesses, never import them
    ("app.infer", "app.train"),
    ("app.train", "app.infer"),
    # The API and the UI are two doors onto one synthesis service; the entry point joins them.
    ("app.api", "app.ui"),
    ("app.ui", "app.api"),
}
INTERFACE_ONLY = {"gradio", "fastapi", "uvicorn", "starlette"}
INTERFACES = {"app.ui", "app.api", "app.api.__main__"}


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
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func) and node.args:
            target = _literal_prefix(node.args[0])
            if target:
                out.append((node.lineno, target))
    return out


def _is_dynamic_import(func: ast.expr) -> bool:
    """``importlib.import_module(...)``, ``import_module(...)`` or ``__import__(...)``."""
    if isinstance(func, ast.Name):
        return func.id in {"__import__", "import_module"}
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


def _literal_prefix(arg: ast.expr) -> str:
    """The module a dynamic import names, as far as the source spells it: the whole string, or the
    literal start of an f-string (f"app.text.{name}" -> "app.text.*": some module of app.text, whose
    layer is known, though not which module)."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        return str(arg.values[0].value).rstrip(".") + ".*"
    return ""


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


ENV_NAMES = {"environ", "getenv", "environb", "putenv", "unsetenv"}


def env_readers() -> list[str]:
    found = []
    for path in sorted(APP.rglob("*.py")):
        if path.name == "settings.py" and path.parent == APP:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = path.relative_to(APP.parent)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ENV_NAMES
                and isinstance(node.value, ast.Name)
                and node.value.id == "os"
            ):
                found.append(f"{where}:{node.lineno}: os.{node.attr}")
            elif isinstance(node, ast.ImportFrom) and node.module == "os":
                names = sorted(a.name for a in node.names if a.name in ENV_NAMES or a.name == "*")
                if names:
                    found.append(f"{where}:{node.lineno}: from os import {', '.join(names)}")
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


# ----------------------------------------------------------------------------- circles and sizes
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 80
# Functions allowed over MAX_FUNCTION_LINES, with the length they had when listed. Only data tables
# belong here. The list can only shrink: an entry that grew, or that is no longer long (or gone),
# fails the test until the entry is corrected or removed.
LONG_FUNCTIONS: dict[str, int] = {
    "app/assets/catalog.py:_gpt_sovits_assets": 176,  # the asset catalog: one record per download
    "app/assets/catalog.py:_svc_assets": 91,
}


def import_graph() -> dict[str, set[str]]:
    """module -> app modules it imports (anywhere in the file, type-checking imports included:
    a circle is a circle to a reader even when Python tolerates it)."""
    modules = {module_name(p): p for p in APP.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for me, path in modules.items():
        for _, target in imports_of(path):
            if target in modules and target != me:
                graph[me].add(target)
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def long_files() -> list[str]:
    found = []
    for path in sorted(APP.rglob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_FILE_LINES:
            found.append(f"{path.relative_to(APP.parent)}: {lines} lines")
    return found


def function_lengths() -> dict[str, int]:
    """ "path:qualified.name" -> lines from ``def`` (decorators excluded) to the last line."""
    lengths: dict[str, int] = {}
    for path in sorted(APP.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        rel = path.relative_to(APP.parent).as_posix()

        def visit(node: ast.AST, prefix: str, rel: str = rel) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    name = f"{prefix}{child.name}"
                    if not isinstance(child, ast.ClassDef):
                        lengths[f"{rel}:{name}"] = (child.end_lineno or child.lineno) - child.lineno + 1
                    visit(child, name + ".")
                else:
                    visit(child, prefix)

        visit(tree, "")
    return lengths


def long_function_problems(lengths: dict[str, int], allowed: dict[str, int]) -> list[str]:
    found = []
    for name, lines in sorted(lengths.items()):
        if lines <= MAX_FUNCTION_LINES:
            continue
        if name not in allowed:
            found.append(f"{name}: {lines} lines (over {MAX_FUNCTION_LINES}); split it into named steps")
        elif lines > allowed[name]:
            found.append(f"{name}: {lines} lines, grew past its allow-listed {allowed[name]}")
    for name, listed in sorted(allowed.items()):
        if name not in lengths:
            found.append(f"{name}: allow-listed ({listed} lines) but gone; remove the entry")
        elif lengths[name] <= MAX_FUNCTION_LINES:
            found.append(f"{name}: now {lengths[name]} lines; remove it from the allow-list")
        elif lengths[name] < listed:
            found.append(f"{name}: now {lengths[name]} lines; lower its allow-list entry from {listed}")
    return found


def test_no_import_cycles():
    cycles = import_cycles(import_graph())
    assert not cycles, "import circles in app/ (break each at its root):\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


def test_no_file_over_600_lines():
    bad = long_files()
    assert not bad, f"files over {MAX_FILE_LINES} lines (split along a seam):\n" + "\n".join(bad)


def test_no_function_over_80_lines():
    bad = long_function_problems(function_lengths(), LONG_FUNCTIONS)
    assert not bad, "function sizes:\n" + "\n".join(bad)


def test_checkers_catch_planted_violations(tmp_path, monkeypatch):
    """Every rule above fails on a planted violation (a test that cannot fail is a defect)."""
    fake = tmp_path / "app"
    for pkg in ("text", "infer", "ui"):
        (fake / pkg).mkdir(parents=True)
        (fake / pkg / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "infer" / "a.py").write_text("from app.infer import b\n")
    (fake / "infer" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from app.infer.a import X\n"
    )
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (fake / "text" / "long.py").write_text(f"def table():\n{body}\n" + "\n" * MAX_FILE_LINES)
    (fake / "text" / "dyn.py").write_text(
        "import importlib\nfrom os import environ\n"
        "def f(name):\n    return importlib.import_module(f'app.ui.{name}'), __import__('app.infer.a')\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "APP", fake)
    assert import_cycles(import_graph()) == [["app.infer.a", "app.infer.b"]]
    assert long_files() == [f"app/text/long.py: {MAX_FUNCTION_LINES + 1 + MAX_FILE_LINES} lines"]
    lengths = function_lengths()
    assert lengths["app/text/long.py:table"] == MAX_FUNCTION_LINES + 1
    assert any("split it" in p for p in long_function_problems(lengths, {}))
    listed = {"app/text/long.py:table": MAX_FUNCTION_LINES + 1, "app/text/gone.py:f": 90}
    problems = long_function_problems(lengths, listed)
    assert problems == ["app/text/gone.py:f: allow-listed (90 lines) but gone; remove the entry"]
    shrunk = long_function_problems(lengths, {"app/text/long.py:table": MAX_FUNCTION_LINES + 5})
    assert shrunk and "lower its allow-list entry" in shrunk[0]
    (fake / "api").mkdir()
    (fake / "api" / "__init__.py").write_text("")
    (fake / "api" / "server.py").write_text("from app.ui import mount\n")
    (fake / "api" / "__main__.py").write_text("from app.ui import mount\n")
    bad = violations()
    assert any("dyn.py:4: app.text.dyn (app.text) imports upward app.ui" in v for v in bad), bad
    assert any("server.py:1: app.api.server must not import app.ui" in v for v in bad), bad
    assert not any("__main__" in v for v in bad), bad
    assert any("from os import environ" in v for v in env_readers())


# Functions of the UI that may take ``*args``: binding the state a handler is called with (not
# Gradio's inputs, which handlers take one named, typed parameter each).
UI_VARARGS_ALLOWED = {"app/ui/tabs/binding.py:bind"}


def untyped_ui_inputs(root: Path | None = None) -> list[str]:
    """UI functions taking ``*rest`` (inputs unpacked by position) or ``**options: Any``, and
    ``**options: Any`` anywhere in ``app/``: each input should be a named, typed parameter."""
    found = []
    base = root or APP
    for path in sorted(base.rglob("*.py")):
        rel = path.relative_to(base.parent).as_posix()
        in_ui = rel.startswith("app/ui/")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            where = f"{rel}:{node.name}"
            if in_ui and node.args.vararg is not None and where not in UI_VARARGS_ALLOWED:
                found.append(f"{where}: *{node.args.vararg.arg}")
            kw = node.args.kwarg
            any_options = kw is not None and isinstance(kw.annotation, ast.Name) and kw.annotation.id == "Any"
            # pickle.Unpickler's own options pass through the restricted unpickler untouched.
            if any_options and rel != "app/models/upstream/safe_pickle.py":
                found.append(f"{where}: **{kw.arg}: Any")
    return found


def test_ui_inputs_are_named_and_typed(tmp_path):
    bad = untyped_ui_inputs()
    assert not bad, "take each input as a named, typed parameter:\n" + "\n".join(bad)
    fake = tmp_path / "app" / "ui"
    fake.mkdir(parents=True)
    (fake / "tab.py").write_text(
        "from typing import Any\ndef run(a, *rest):\n    pass\ndef cfg(**options: Any):\n    pass\n"
    )
    assert untyped_ui_inputs(tmp_path / "app") == [
        "app/ui/tab.py:run: *rest",
        "app/ui/tab.py:cfg: **options: Any",
    ]
