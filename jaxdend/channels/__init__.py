"""Ion channels: small final equinox modules with named parameters.

Units: voltage mV, time ms, conductance densities S/cm^2, current densities mA/cm^2 (outward
positive), temperature degC.
"""

from ._base import AbstractChannel as AbstractChannel
from ._base import exp_euler_gates as exp_euler_gates
from ._hh import HH as HH
from ._hh import Leak as Leak
from ._hh import vtrap as vtrap
from ._ih import Ih as Ih
from ._mainen import MainenKv as MainenKv
from ._mainen import MainenNa as MainenNa
from ._mainen import trap0 as trap0
from ._pospischil import PospischilKd as PospischilKd
from ._pospischil import PospischilM as PospischilM
from ._pospischil import PospischilNa as PospischilNa

#: Every concrete channel class, for conformance tests and registries.
ALL_CHANNELS: tuple[type[AbstractChannel], ...] = (
    HH,
    Leak,
    PospischilNa,
    PospischilKd,
    PospischilM,
    MainenNa,
    MainenKv,
    Ih,
)
