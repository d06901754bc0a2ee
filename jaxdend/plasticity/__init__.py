"""Long-term plasticity: learning rules whose weights and traces are ODE state.

Units: time ms, voltage mV, path distance um; weights are dimensionless multipliers of the
synaptic peak conductance. Assign rules per region with ``Cell.add_rule``.
"""

from ._base import SPIKE_THRESHOLD as SPIKE_THRESHOLD
from ._base import AbstractRule as AbstractRule
from ._base import Signals as Signals
from ._binding import Plasticity as Plasticity
from ._binding import neighbour_pairs as neighbour_pairs
from ._rules import BCM as BCM
from ._rules import ApicalCooperative as ApicalCooperative
from ._rules import BasalHebbian as BasalHebbian
from ._rules import Clopath as Clopath
from ._rules import GraupnerBrunel as GraupnerBrunel
from ._rules import HeterosynapticNormalization as HeterosynapticNormalization
from ._rules import SoftBasalHebbian as SoftBasalHebbian
from ._rules import Volterra as Volterra
