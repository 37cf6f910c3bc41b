"""The layers stay as drawn (docs/architecture.md): import-linter's contracts hold, and pages load without torch."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys

from tests.helpers import REPO_ROOT

LINT_IMPORTS = shutil.which("lint-imports", path=str(REPO_ROOT / ".venv" / "bin")) or shutil.which("lint-imports")


def test_import_contracts_hold():
    assert LINT_IMPORTS, "import-linter is in requirements.txt"
    result = subprocess.run([LINT_IMPORTS], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def _page_imports() -> list[str]:
    modules = set()
    for page in sorted((REPO_ROOT / "pages").glob("*.py")):
        for node in ast.parse(page.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules.add(node.module)
            elif isinstance(node, ast.Import):
                modules.update(alias.name for alias in node.names)
    return sorted(modules)


def test_pages_import_no_torch_and_nothing_below_the_use_cases():
    modules = _page_imports()
    assert "ui.common" in modules and "service.reviews" in modules  # the walk found the pages' imports
    assert not [m for m in modules if m.split(".")[0] in {"core", "db", "torch", "torchvision"}], modules
    probe = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    probe += "print(sorted(m for m in ('torch', 'torchvision', 'pytorch_grad_cam') if m in sys.modules))\n"
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
