"""The layer contracts in pyproject.toml ([tool.importlinter]): the real tree keeps them, and
an import across a forbidden line breaks them (so the check in CI can fail)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(tree / "pyproject.toml")],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
    )


def copy_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    for name in ("relay", "mappers"):
        shutil.copytree(ROOT / name, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_the_tree_keeps_its_layers(tmp_path):
    result = lint(copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def test_intake_importing_delivery_breaks_a_contract(tmp_path):
    tree = copy_tree(tmp_path)
    webhooks = tree / "relay" / "intake" / "webhooks.py"
    webhooks.write_text(webhooks.read_text() + "\nfrom relay.delivery import planning  # noqa\n")
    result = lint(tree)
    assert result.returncode != 0
    assert "Intake and delivery do not import each other BROKEN" in result.stdout


def test_a_mapper_importing_a_stage_breaks_a_contract(tmp_path):
    tree = copy_tree(tmp_path)
    mapper = tree / "mappers" / "woocommerce" / "mapper.py"
    mapper.write_text(mapper.read_text() + "\nfrom relay.runtime import logs  # noqa\n")
    result = lint(tree)
    assert result.returncode != 0
    assert "Mappers import only the shared model BROKEN" in result.stdout


def test_the_storefront_importing_delivery_beyond_its_variant_memory_breaks_a_contract(tmp_path):
    tree = copy_tree(tmp_path)
    assert lint(tree).returncode == 0  # its read of relay.delivery.variants is allowed
    endpoint = tree / "relay" / "storefront" / "endpoint.py"
    endpoint.write_text(endpoint.read_text() + "\nfrom relay.delivery import processor  # noqa\n")
    result = lint(tree)
    assert result.returncode != 0
    assert "The storefront reads delivery's variant memory, nothing else of delivery BROKEN" in (
        result.stdout
    )
