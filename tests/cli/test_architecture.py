"""Layering rules: hw/ never imports torch; the sw reference never imports hardware code."""

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def modules(package: str) -> list[str]:
    found = [package]
    for info in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
        found.append(info.name)
    return found


def imported_after(module: str) -> set[str]:
    code = f"import sys, importlib; importlib.import_module({module!r}); print(' '.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


@pytest.mark.parametrize("module", modules("hw"))
def test_hw_never_imports_torch(module):
    assert "torch" not in imported_after(module)


@pytest.mark.parametrize("module", ["sw.mxint", "sw.blockmath", "sw.mxint_torch"])
def test_reference_never_imports_hardware(module):
    loaded = imported_after(module)
    assert not {m for m in loaded if m == "amaranth" or m.startswith(("hw.", "sim.", "amaranth."))}


@pytest.mark.parametrize("module", ["lqer_hw.args", "lqer_hw.files", "sw.factor_files", "sw.datapath",
                                    "sw.qconfig", "sw.options", "sw.cli"])
def test_kit_file_format_and_options_never_import_torch(module):
    """Reading factors (sim --factors), the datapath rule and the CLI parsers need no torch."""
    assert "torch" not in imported_after(module)


@pytest.mark.parametrize("module", ["lqer_hw.args", "lqer_hw.files"])
def test_the_kit_imports_no_project_package(module):
    loaded = imported_after(module)
    assert not {m for m in loaded if m.split(".")[0] in ("hw", "sw", "sim", "amaranth")}
