"""Neuron morphologies: reading reconstructions, builders and discretisation.

Units: um for lengths, radii, coordinates and distances; um^2 for areas; 1/um for the
axial geometric factor (MOhm = Ra[Ohm cm] * axial_geom * 1e-2).
"""

from ._builders import ball_and_stick as ball_and_stick
from ._builders import binary_tree as binary_tree
from ._builders import reduced_pyramidal as reduced_pyramidal
from ._builders import y_cell as y_cell
from ._discretize import discretize as discretize
from ._io import load_morphology as load_morphology
from ._io import save_swc as save_swc
from ._paths import combine as combine
from ._paths import path_distance as path_distance
from ._types import SWC_NAMES as SWC_NAMES
from ._types import SWC_TYPES as SWC_TYPES
from ._types import Compartments as Compartments
from ._types import Morphology as Morphology
from ._types import Section as Section
