"""Fitting: parameters with bounds, losses and an optax fit loop with checkpoints.

Choose what to fit by wrapping parameters of any PyTree (a `jaxdend.Cell`, a plasticity rule,
a synapse group), write a loss of the concrete model, and call `fit`::

    import optax
    import jaxdend as jd
    from jaxdend import fit as jf

    model = jf.parametrize(cell, {
        "HH.g_na": jf.Bounded(0.01, 0.5, log=True, where="soma"),   # S/cm^2, one value
        "HH.g_l": jf.Positive(),                                     # S/cm^2
        "cm": jf.Bounded(0.5, 3.0, group="passive"),                 # uF/cm^2
    })

    def loss_fn(c):                                # c: the concrete (unwrapped) Cell
        v = jd.simulate(c, stim, t1=40.0, dt=0.025)["v"][:, 0]
        return jf.voltage_mse(v, target)           # mV^2

    result = jf.fit(loss_fn, model, optimizer=optax.adam(0.02), steps=300,
                    checkpoint="fit.ckpt")
    result.values()      # {"HH.g_na[soma]": {"value": ..., "unit": "S/cm^2", ...}, ...}
    best_cell = result.concrete()

Parameter wrappers (`Bounded`, `Positive`, `Fixed`) keep values inside their bounds through a
transform of an unconstrained value (see `Bounded`); `unwrap` gives the concrete tree and
`trainable` the ``eqx.partition`` filter spec. Losses: `voltage_mse` (mV^2), `spike_time_loss`
(van Rossum, dimensionless), `feature_loss` (squared z-scores) of the differentiable features
in `jaxdend.features` (spike count, latency ms, AP amplitude mV, half-width ms, AHP depth mV,
input resistance MOhm, membrane time constant ms, sag ratio).

Units: time ms, voltage mV, current nA, conductance densities S/cm^2, capacitance uF/cm^2,
axial resistivity Ohm cm, synaptic conductances nS, resistance MOhm.
"""

from ._fit import FitError as FitError
from ._fit import FitResult as FitResult
from ._fit import NonFiniteLossError as NonFiniteLossError
from ._fit import fit as fit
from ._losses import feature_loss as feature_loss
from ._losses import spike_time_loss as spike_time_loss
from ._losses import van_rossum as van_rossum
from ._losses import voltage_mse as voltage_mse
from ._params import AbstractParameter as AbstractParameter
from ._params import Bounded as Bounded
from ._params import Fixed as Fixed
from ._params import Positive as Positive
from ._params import is_parameter as is_parameter
from ._params import parameters as parameters
from ._params import parametrize as parametrize
from ._params import trainable as trainable
from ._params import unwrap as unwrap
from ._params import values as values
from ._params import wrap as wrap
from ._pipeline import ConfigError as ConfigError
from ._pipeline import FitConfig as FitConfig
from ._pipeline import Pipeline as Pipeline
from ._pipeline import PipelineResult as PipelineResult
from ._pipeline import StageProblem as StageProblem
from ._pipeline import StageResult as StageResult
from ._pipeline import balance_leak as balance_leak
from ._pipeline import load_config as load_config
from ._pipeline import run_config as run_config
from ._pipeline import simulate_config as simulate_config
from ._pipeline import summarize_metrics as summarize_metrics
from ._pipeline import sweep_metrics as sweep_metrics
