"""The import contracts in ``pyproject.toml`` hold, and a wrong arrow breaks them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_contracts_hold() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "wrong_import", "broken"),
    [
        ("resources/lake/tables.py", "import ingest_assets.names", "Layers"),
        ("ingest_assets/assets/metadata.py", "import sensors.datapool_sensor", "Layers"),
        ("ingest_assets/items/identity.py", "import dagster", "Pure logic"),
    ],
)
def test_a_wrong_arrow_breaks_a_contract(
    tmp_path: Path, module: str, wrong_import: str, broken: str
) -> None:
    for package in ("resources", "ingest_assets", "sensors"):
        shutil.copytree(
            REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{wrong_import}\n")

    result = lint_imports(tmp_path)

    assert result.returncode != 0
    assert f"{broken}" in result.stdout and "BROKEN" in result.stdout


def test_the_pure_logic_loads_no_dagster_at_run_time() -> None:
    modules = [
        "ingest_assets.claiming.claim",
        "ingest_assets.items.rows",
        "ingest_assets.items.duplicates",
        "ingest_assets.progress",
    ]
    code = "; ".join(f"import {m}" for m in modules)
    code += "; import sys; print(sorted(m for m in sys.modules if m.startswith('dagster')))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
