"""Recordings in and out, fitted models and predictions saved and loaded.

Units (jaxdend's, stated once): time ms, membrane potential mV, injected current nA
(positive = depolarising), liquid-junction potential mV. Readers convert from the file's
units (ABF: s, mV, pA; SSCx npz: s, V, A; NWB: each series' unit and conversion, normally
volts and amperes) and refuse data whose units are missing or implausible.
Model parameters keep the units of `jaxdend.Cell.set`: cm uF/cm^2, ra Ohm cm, celsius degC,
v_init mV, conductance densities S/cm^2, reversal potentials mV, synaptic gmax nS, time
constants ms.

Recordings:
    `Recording` (one protocol: sweeps with a common sampling), `read_abf` (pyabf),
    `read_npz_protocols` (SSCx layout), `write_npz` / `read_npz` (jaxdend npz, units stored),
    `write_nwb` / `read_nwb` (NWB icephys current clamp via pynwb).
Models and predictions:
    `save_cell` / `load_cell` (equinox leaves + JSON), `save_params` / `load_params` (JSON),
    `save_prediction` / `load_prediction` -> `Prediction` (npz or NWB).

pynwb and pyabf (the ``io`` extra) are imported only by the functions that need them.
"""

from ._abf import read_abf as read_abf
from ._models import load_cell as load_cell
from ._models import load_params as load_params
from ._models import save_cell as save_cell
from ._models import save_params as save_params
from ._npz import read_npz as read_npz
from ._npz import read_npz_protocols as read_npz_protocols
from ._npz import write_npz as write_npz
from ._nwb import read_nwb as read_nwb
from ._nwb import write_nwb as write_nwb
from ._prediction import Prediction as Prediction
from ._prediction import load_prediction as load_prediction
from ._prediction import save_prediction as save_prediction
from ._recording import Recording as Recording

__all__ = [
    "Prediction",
    "Recording",
    "load_cell",
    "load_params",
    "load_prediction",
    "read_abf",
    "read_npz",
    "read_npz_protocols",
    "read_nwb",
    "save_cell",
    "save_params",
    "save_prediction",
    "write_npz",
    "write_nwb",
]
