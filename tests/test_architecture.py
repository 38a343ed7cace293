"""The layer order of ARCHITECTURE.md, checked on the code: no module imports one of a higher
layer, pipeline/ never imports gradio, and the doors (ui/, app.py, pipeline/cli/) reach the
engine only through pipeline.actions (plus settings and progress, which every layer shares)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Lowest first; a module may import its own layer and those below it.
LAYERS = [
    ["settings", "progress", "adapter_files", "checks"],
    ["hardware", "store", "styles", "turns", "work"],
    ["models", "adapters", "intake", "testing", "safety"],
    ["characters"],
    ["story", "hub"],
    ["book", "draft", "training", "compose", "render", "page_job"],
    ["likeness", "illustrate", "export", "jobs"],
    ["actions"],
    ["cli"],
]
DOOR_MAY_IMPORT = {"actions", "settings", "progress"}


def _layer(module: str) -> int:
    """The layer of pipeline.<module...> by its first part."""
    top = module.split(".")[0]
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"pipeline.{module} is in no layer of ARCHITECTURE.md")


def _imports(path: Path) -> list[str]:
    """The modules a file imports, as absolute dotted names."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            found.append(stem)
            found += [f"{stem}.{alias.name}" for alias in node.names]
    return found


def _engine(name: str) -> str:
    return name[len("pipeline."):] if name.startswith("pipeline.") else ""


ENGINE = sorted(p for p in (ROOT / "pipeline").rglob("*.py")
                if p.name not in ("__init__.py", "__main__.py"))


@pytest.mark.parametrize("path", ENGINE, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_a_higher_layer_or_gradio(path):
    own = _layer(".".join(path.relative_to(ROOT / "pipeline").with_suffix("").parts))
    for name in _imports(path):
        assert not name.startswith(("gradio", "spaces")) or path.name == "hardware.py", name
        target = _engine(name)
        if target and _layer(target) > own:
            raise AssertionError(f"{path.relative_to(ROOT)} imports pipeline.{target}, "
                                 "a higher layer")


DOORS = [ROOT / "app.py", *sorted((ROOT / "ui").glob("*.py")),
         *sorted((ROOT / "pipeline" / "cli").glob("*.py"))]


@pytest.mark.parametrize("path", DOORS, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_doors_use_only_the_use_cases(path):
    for name in _imports(path):
        target = _engine(name)
        if target and not target.startswith("cli"):
            assert target.split(".")[0] in DOOR_MAY_IMPORT, \
                f"{path.relative_to(ROOT)} imports pipeline.{target}"


@pytest.mark.parametrize("path", sorted((ROOT / "ui").glob("*.py")), ids=lambda p: p.name)
def test_tabs_do_not_import_each_other(path):
    tabs = {"characters", "train", "story", "gallery"}
    for name in _imports(path):
        assert not (name.startswith("ui.") and name.split(".")[1] in tabs), name
