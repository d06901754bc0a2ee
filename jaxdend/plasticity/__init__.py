"""Long-term plasticity: learning rules whose weights and traces are ODE state.

Units: time ms, voltage mV, path distance um; weights are dimensionless multipliers of the
synaptic peak conductance. Assign rules per region with ``Cell.add_rule``.
"""

from ._base import SPIKE_THRESHOLD as SPIKE_THRESHOLD
from ._base import AbstractRule as AbstractRule
from ._base import Signals as Signals
from ._binding import Plasticity as Plasticity
from ._binding import neighbour_pairs as neighbour_pairs
from ._protocols import PairingProtocol as PairingProtocol
from ._protocols import pairing_drive as pairing_drive
from ._protocols import pairing_drives as pairing_drives
from ._protocols import pairing_protocol as pairing_protocol
from ._protocols import pairing_ratio as pairing_ratio
from ._protocols import pairing_spikes as pairing_spikes
from ._protocols import read_pairing_protocols as read_pairing_protocols
from ._protocols import two_state_ratio as two_state_ratio
from ._replay import NEVER as NEVER
from ._replay import ReplayDrive as ReplayDrive
from ._replay import ReplayResult as ReplayResult
from ._replay import crossing_steps as crossing_steps
from ._replay import delivery_steps as delivery_steps
from ._replay import replay as replay
from ._replay import replay_drive as replay_drive
from ._replay import stack_drives as stack_drives
from ._rules import BCM as BCM
from ._rules import ApicalCooperative as ApicalCooperative
from ._rules import BasalHebbian as BasalHebbian
from ._rules import Clopath as Clopath
from ._rules import GraupnerBrunel as GraupnerBrunel
from ._rules import HeterosynapticNormalization as HeterosynapticNormalization
from ._rules import SoftBasalHebbian as SoftBasalHebbian
from ._rules import Volterra as Volterra
