"""The package's layers: each imports only the layers below it, and the folder layer never imports torch."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gan_core"
# bottom to top: a module may import its own layer and those before it, never one after it
LAYERS = ("config", "folder", "engine", "quality", "training", "interfaces")


def layer_of(module: str) -> str:
    """'gan_core.engine.models' -> 'engine'; cli, commands, __main__ and the package itself are the interfaces."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "interfaces"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Every gan_core module `path` imports anywhere: at the top, in a function, under TYPE_CHECKING."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            source = ".".join([*base, node.module] if node.module else base)
            found.add(source)
            found.update(
                f"{source}.{alias.name}" for alias in node.names if is_module(f"{source}.{alias.name}")
            )
    return {module for module in found if module.split(".")[0] == "gan_core"}


def is_module(module: str) -> bool:
    path = PACKAGE.parent.joinpath(*module.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_in_a_layer():
    folders = {path.parent.name for path in MODULES if path.parent != PACKAGE}
    assert folders == set(LAYERS) - {"config", "interfaces"}
    assert (PACKAGE / "config.py").exists()


@pytest.mark.parametrize("path", MODULES, ids=lambda path: module_name(path))
def test_imports_point_down(path):
    own = LAYERS.index(layer_of(module_name(path)))
    upward = sorted(module for module in imported(path) if LAYERS.index(layer_of(module)) > own)
    assert upward == [], f"{module_name(path)} ({LAYERS[own]}) imports a layer above it"


def test_the_checker_sees_relative_lazy_and_type_only_imports():
    assert {"gan_core.folder.run_folder", "gan_core.config"} <= imported(PACKAGE / "folder" / "watch.py")
    assert "gan_core.commands" in imported(PACKAGE / "cli.py")  # inside main(): loaded only for `train` ...
    assert layer_of("gan_core.training.loop") == "training" and layer_of("gan_core.cli") == "interfaces"
    assert layer_of("gan_core") == "interfaces" and layer_of("gan_core.config") == "config"


def test_reading_or_steering_a_folder_never_imports_torch():
    modules = [module_name(path) for path in MODULES if layer_of(module_name(path)) in ("config", "folder")]
    modules += ["gan_core.cli", "gan_core"]  # `status` and `control` answer without torch
    code = f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\nprint(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'streamlit')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=PACKAGE.parent)  # fmt: skip
    assert len(modules) >= 10
    assert result.stdout.strip() == "[]"
