"""Pytest helpers to compile the jaxdend mod files (``jaxdend/nmodl``) once per process.

Usage: the session fixture `nrn_mods` (imported into ``conftest.py``) or
``load_mod_library(tmp_path_factory)``. Skips when NEURON, ``nrnivmodl`` or a C compiler is
unavailable.
"""

from __future__ import annotations

import pytest


def load_mod_library(tmp_path_factory: pytest.TempPathFactory) -> object:
    """NEURON's ``h`` with the jaxdend mechanisms compiled and loaded (skip if impossible)."""
    pytest.importorskip("neuron")
    from jaxdend import neuron_bridge as nb

    try:
        return nb.load_mechanisms(tmp_path_factory.mktemp("nrnmech"))
    except RuntimeError as err:
        if "missing after loading" in str(err):
            raise
        pytest.skip(f"cannot compile jaxdend/nmodl: {err}")


@pytest.fixture(scope="session")
def nrn_mods(tmp_path_factory: pytest.TempPathFactory) -> object:
    """Session fixture: NEURON's ``h`` with the jaxdend mechanisms compiled and loaded."""
    return load_mod_library(tmp_path_factory)
