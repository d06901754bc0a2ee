"""jaxdend: differentiable biophysical neurons with dendrites, in JAX.

Units throughout (pinned by tests/test_units.py): time ms, voltage mV, length um, area um^2,
capacitance uF/cm^2 (per node nF), axial resistivity Ohm cm, conductance densities S/cm^2
(per node uS), current densities mA/cm^2, point currents nA, temperature degC.
"""

from . import batch as batch
from . import channels as channels
from . import features as features
from . import fit as fit
from . import io as io
from . import morphology as morphology
from . import plasticity as plasticity
from . import solve as solve
from . import stimulus as stimulus
from . import synapses as synapses
from ._cell import Cell as Cell
from ._cell import Probe as Probe
from ._cell import by_distance as by_distance
from .morphology import Compartments as Compartments
from .morphology import Morphology as Morphology
from .morphology import ball_and_stick as ball_and_stick
from .morphology import binary_tree as binary_tree
from .morphology import discretize as discretize
from .morphology import load_morphology as load_morphology
from .morphology import reduced_pyramidal as reduced_pyramidal
from .morphology import y_cell as y_cell
from .solve import BackwardEuler as BackwardEuler
from .solve import CableTerm as CableTerm
from .solve import CrankNicolson as CrankNicolson
from .solve import RateTable as RateTable
from .solve import Solution as Solution
from .solve import simulate as simulate

__version__ = "0.1.0"
