"""Compile the test NMODL files in ``tests/mod`` once per process and load them into NEURON.

Usage from a test module (``tests/`` is not a package, so pytest puts it on ``sys.path``)::

    from _nrnmod import load_mod_library

    @pytest.fixture(scope="module")
    def nrn(tmp_path_factory):
        return load_mod_library(tmp_path_factory)  # NEURON's `h`, mechanisms loaded

or use the ready-made session fixture `nrn_mods` by importing it into ``conftest.py``.
Skips (``pytest.skip``) when NEURON, ``nrnivmodl`` or a C compiler is unavailable.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

MOD_DIR = Path(__file__).resolve().parent / "mod"


def mod_suffixes(mod_dir: Path = MOD_DIR) -> tuple[str, ...]:
    """Mechanism names (SUFFIX) of the mod files in `mod_dir`, taken from their file names."""
    return tuple(sorted(p.stem for p in mod_dir.glob("*.mod")))


def loaded_mechanisms() -> set[str]:
    """Names of the density mechanisms NEURON currently knows."""
    from neuron import h

    mech_type = h.MechanismType(0)
    name = h.ref("")
    names = set()
    for i in range(int(mech_type.count())):
        mech_type.select(i)
        mech_type.selected(name)
        names.add(name[0])
    return names


def _nrnivmodl() -> str | None:
    """Path of ``nrnivmodl``: next to the running interpreter first, then on ``PATH``."""
    candidate = Path(sys.executable).parent / "nrnivmodl"
    if candidate.exists():
        return str(candidate)
    return shutil.which("nrnivmodl")


def compile_mod_dir(build_dir: Path, mod_dir: Path = MOD_DIR) -> Path:
    """Copy the mod files of `mod_dir` into `build_dir`, run ``nrnivmodl`` there.

    Args:
        build_dir: an empty, writable directory.
        mod_dir: directory holding the ``.mod`` files.

    Returns:
        Path of the compiled mechanism library (``<arch>/libnrnmech.so`` or ``.dylib``).

    Raises:
        RuntimeError: if ``nrnivmodl`` is missing or fails (its output is in the message).
    """
    exe = _nrnivmodl()
    if exe is None:
        raise RuntimeError("nrnivmodl not found")
    build_dir.mkdir(parents=True, exist_ok=True)
    for mod in sorted(mod_dir.glob("*.mod")):
        shutil.copy(mod, build_dir / mod.name)
    proc = subprocess.run([exe, "."], cwd=build_dir, capture_output=True, text=True)
    libs = sorted(build_dir.glob("*/libnrnmech.*"))
    libs = [p for p in libs if p.suffix in (".so", ".dylib", ".dll")]
    if proc.returncode != 0 or not libs:
        raise RuntimeError(f"nrnivmodl failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return libs[0]


def load_mod_library(tmp_path_factory: pytest.TempPathFactory) -> object:
    """Compile ``tests/mod`` (once per process) and load it into NEURON.

    Does nothing more if the mechanisms are already known to NEURON (e.g. loaded by another
    fixture, or auto-loaded from an ``x86_64`` folder in the working directory).

    Args:
        tmp_path_factory: pytest's session temp-path factory.

    Returns:
        NEURON's ``h`` with the test mechanisms available.
    """
    pytest.importorskip("neuron")
    from neuron import h

    wanted = set(mod_suffixes())
    if wanted <= loaded_mechanisms():
        return h
    try:
        lib = compile_mod_dir(tmp_path_factory.mktemp("nrnmech"))
    except RuntimeError as err:
        pytest.skip(f"cannot compile tests/mod: {err}")
    h.nrn_load_dll(str(lib))
    missing = wanted - loaded_mechanisms()
    if missing:
        raise RuntimeError(f"mechanisms missing after loading {lib}: {sorted(missing)}")
    return h


@pytest.fixture(scope="session")
def nrn_mods(tmp_path_factory: pytest.TempPathFactory) -> object:
    """Session fixture: NEURON's ``h`` with the ``tests/mod`` mechanisms compiled and loaded."""
    return load_mod_library(tmp_path_factory)
