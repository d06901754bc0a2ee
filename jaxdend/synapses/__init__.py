"""Conductance synapses, short-term plasticity, spike inputs and gap junctions.

Units: conductances nS, currents nA, times ms, rates Hz, voltages mV, [Mg2+] mM.
"""

from ._group import GapJunctions as GapJunctions
from ._group import Synapses as Synapses
from ._inputs import Input as Input
from ._inputs import SpikeTrains as SpikeTrains
from ._inputs import inhomogeneous_poisson as inhomogeneous_poisson
from ._inputs import poisson as poisson
from ._placement import place as place
from ._receptors import AMPA as AMPA
from ._receptors import GABAA as GABAA
from ._receptors import GABAB as GABAB
from ._receptors import NMDA as NMDA
from ._receptors import AbstractReceptor as AbstractReceptor
from ._receptors import peak_factor as peak_factor
from ._stp import TsodyksMarkram as TsodyksMarkram
from ._stp import tm_release as tm_release
from ._stp import tm_steady_state as tm_steady_state
from ._stp_fit import STPFit as STPFit
from ._stp_fit import fit_stp_amplitudes as fit_stp_amplitudes
from ._stp_fit import fit_stp_trace as fit_stp_trace
