"""Integration of cells with diffrax: tree-structured solvers and `simulate`."""

from ._simulate import Solution as Solution
from ._simulate import simulate as simulate
from ._solvers import AbstractCableSolver as AbstractCableSolver
from ._solvers import BackwardEuler as BackwardEuler
from ._solvers import CableTerm as CableTerm
from ._solvers import CrankNicolson as CrankNicolson
from ._tables import RateTable as RateTable
from ._tree import TreePlan as TreePlan
from ._tree import tree_solve as tree_solve
