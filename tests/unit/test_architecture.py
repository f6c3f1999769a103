"""The import direction of DESIGN.md, checked on the source."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).parents[2] / "src" / "bastion"
WEB = {"starlette", "uvicorn"}
CONCERNS = [
    "crypto",
    "identity",
    "policy",
    "registry",
    "audit",
    "monitor",
    "storage",
    "robustness",
    "privacy",
]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _modules(package: str) -> list[Path]:
    return sorted((SRC / package).rglob("*.py")) if package else sorted(SRC.glob("*.py"))


@pytest.mark.parametrize("package", ["", *CONCERNS, "cli"])
def test_only_serving_imports_the_web_framework(package):
    """Starlette and uvicorn are imported by serving/ alone."""
    for path in _modules(package):
        roots = {name.split(".")[0] for name in _imports(path)}
        assert not roots & WEB, f"{path.relative_to(SRC)} imports {roots & WEB}"


@pytest.mark.parametrize("package", ["", *CONCERNS, "serving"])
def test_only_cli_imports_typer(package):
    """Typer is imported by cli/ alone."""
    for path in _modules(package):
        assert not any(n.split(".")[0] in {"typer", "click"} for n in _imports(path)), path


@pytest.mark.parametrize("package", CONCERNS)
def test_concerns_do_not_import_upwards(package):
    """Concern packages never import the composition root, serving or the CLI."""
    upward = ("bastion.workspace", "bastion.serving", "bastion.cli", "bastion.client")
    for path in _modules(package):
        bad = [n for n in _imports(path) if n.startswith(upward)]
        assert not bad, f"{path.relative_to(SRC)} imports {bad}"


def test_errors_and_settings_sit_at_the_bottom():
    """errors.py imports nothing from Bastion; settings.py only errors."""
    assert not [n for n in _imports(SRC / "errors.py") if n.startswith("bastion")]
    assert {n for n in _imports(SRC / "settings.py") if n.startswith("bastion")} == {
        "bastion.errors"
    }


def test_only_settings_reads_the_environment():
    """No module but settings.py touches os.environ or os.getenv (STYLE C1)."""
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        if path.name in {"settings.py", "process.py"}:
            continue  # process.py passes the environment on to the child it starts
        assert "os.environ" not in text and "getenv" not in text, path


def test_layout_matches_design():
    """The concern folders of DESIGN.md that this version implements exist."""
    for package in [*CONCERNS, "serving", "cli"]:
        assert (SRC / package / "__init__.py").is_file(), package
    assert (SRC / "py.typed").is_file()


def test_the_gateway_and_the_cli_start_without_pytorch():
    """PyTorch (the robustness extra) loads only when a robustness command runs."""
    code = (
        "import sys, bastion.cli.app, bastion.serving.app, bastion.workspace; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'matplotlib'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
