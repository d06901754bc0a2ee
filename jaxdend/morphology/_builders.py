"""File-free morphologies for examples and tests: ball-and-stick, Y-cell, binary tree,
reduced pyramid.

All lengths, diameters and coordinates in um; angles in degrees. The cells are drawn in
the x-y plane with the apical direction along +y. The soma is a cylinder whose length
equals its diameter (lateral area = that of a sphere of the same diameter), along y,
centred at the origin. Every section is a straight cylinder or frustum given by its two
end points; a child starts at its parent's last point (or on the soma surface for
neurites leaving the soma).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._types import SWC_TYPES, Morphology, Section


def ball_and_stick(
    soma_diam: float = 20.0, dend_length: float = 500.0, dend_diam: float = 2.0
) -> Morphology:
    """A soma with one unbranched dendrite (SWC type 3, "dendrite").

    Args:
        soma_diam: soma diameter (and length) in um.
        dend_length: dendrite length in um.
        dend_diam: dendrite diameter in um.

    Returns:
        A `Morphology` with 2 sections: the soma and the dendrite (along +y).
    """
    _positive(soma_diam=soma_diam, dend_length=dend_length, dend_diam=dend_diam)
    b = _Builder(soma_diam)
    b.add(-1, 90.0, dend_length, dend_diam, dend_diam, SWC_TYPES["basal"])
    return b.build("ball_and_stick")


def y_cell(
    soma_diam: float = 20.0,
    parent_length: float = 200.0,
    parent_diam: float = 3.0,
    daughter_length: float = 150.0,
    daughter_diam: float | None = None,
    angle: float = 30.0,
) -> Morphology:
    """A soma and a dendrite that splits into two equal daughters (all SWC type 3).

    Args:
        soma_diam: soma diameter (and length) in um.
        parent_length: length of the parent dendrite in um.
        parent_diam: diameter of the parent dendrite in um.
        daughter_length: length of each daughter in um.
        daughter_diam: diameter of each daughter in um; by default Rall's 3/2 power rule,
            parent_diam / 2 ** (2 / 3) (~1.89 um for 3 um), so the tree is equivalent to
            one cylinder.
        angle: angle of each daughter from the parent's axis in degrees.

    Returns:
        A `Morphology` with 4 sections: soma, parent (along +y), and the two daughters
        (sections 2 and 3, to the right and left).
    """
    if daughter_diam is None:
        daughter_diam = parent_diam / 2.0 ** (2.0 / 3.0)
    _positive(
        soma_diam=soma_diam,
        parent_length=parent_length,
        parent_diam=parent_diam,
        daughter_length=daughter_length,
        daughter_diam=daughter_diam,
    )
    b = _Builder(soma_diam)
    t = SWC_TYPES["basal"]
    p = b.add(-1, 90.0, parent_length, parent_diam, parent_diam, t)
    b.add(p, 90.0 - angle, daughter_length, daughter_diam, daughter_diam, t)
    b.add(p, 90.0 + angle, daughter_length, daughter_diam, daughter_diam, t)
    return b.build("y_cell")


def binary_tree(
    depth: int = 7,
    length: float = 100.0,
    diam: float = 1.0,
    soma_diam: float = 20.0,
    angle: float = 30.0,
) -> Morphology:
    """A soma and one dendrite that branches in two at every end, ``depth`` levels deep.

    The dendrite has ``2**depth - 1`` sections (127 for the default depth 7: with 8
    segments each a 1,016-compartment tree, the size of the HH-tree speed target in
    benchmarks/simulate.py), all SWC type 3, of equal length and diameter; children leave
    their parent at +-`angle` degrees. Sections are numbered breadth first (section k >= 1
    has parent ``k // 2`` for k >= 2, the soma for k = 1).

    Args:
        depth: number of branching levels (>= 1).
        length: length of every dendritic section in um.
        diam: diameter of every dendritic section in um.
        soma_diam: soma diameter (and length) in um.
        angle: angle between a child and its parent's direction in degrees.

    Returns:
        A `Morphology` with ``2**depth`` sections (the soma first).
    """
    if not (isinstance(depth, int) and 1 <= depth <= 16):
        raise ValueError(f"depth must be an int in 1..16, got {depth!r}.")
    _positive(length=length, diam=diam, soma_diam=soma_diam)
    b = _Builder(soma_diam)
    t = SWC_TYPES["basal"]
    heading = {1: 90.0}
    b.add(-1, 90.0, length, diam, diam, t)
    for k in range(2, 2**depth):
        parent = k // 2
        heading[k] = heading[parent] + (angle if k % 2 else -angle)
        b.add(parent, heading[k], length, diam, diam, t)
    return b.build(f"binary_tree_d{depth}")


def reduced_pyramidal(
    soma_diam: float = 20.0,
    n_basal: int = 4,
    basal_length: float = 200.0,
    basal_diam: tuple[float, float] = (1.5, 0.8),
    trunk_length: float = 550.0,
    trunk_diam: tuple[float, float] = (4.0, 2.0),
    n_oblique: int = 3,
    oblique_length: float = 150.0,
    oblique_diam: tuple[float, float] = (1.2, 0.6),
    n_tuft: int = 3,
    tuft_length: float = 300.0,
    tuft_diam: tuple[float, float] = (1.5, 0.6),
    axon: bool = True,
    ais_length: float = 40.0,
    ais_diam: float = 1.5,
) -> Morphology:
    """A reduced layer-5 pyramidal cell: soma, basal, apical trunk, obliques, tuft, AIS.

    Defaults are L5-ish (thick-tufted rat neocortex): a 20 um soma; 4 unbranched basal
    dendrites of 200 um tapering 1.5 -> 0.8 um, fanning downwards (SWC type 3); an apical
    trunk of 550 um tapering 4 -> 2 um along +y (type 4, subregion "trunk"), split into
    n_oblique + 1 sections at the oblique branch points; n_oblique obliques of 150 um,
    1.2 -> 0.6 um, leaving the trunk at 60 degrees on alternating sides at equal spacing
    over its proximal 60 % (type 4, "oblique"); a tuft of n_tuft branches of 300 um,
    1.5 -> 0.6 um, fanning out from the trunk's end (type 4, "tuft"); and an optional
    axon initial segment of 40 um x 1.5 um downwards (type 2, "ais"). Diameters given as
    (proximal, distal) taper linearly. Total dendritic length with the defaults: basal
    800 um, apical 1900 um.

    Args:
        soma_diam: soma diameter (and length) in um.
        n_basal: number of basal dendrites (>= 0).
        basal_length: length of each basal dendrite in um.
        basal_diam: (proximal, distal) basal diameter in um.
        trunk_length: apical trunk length from the soma to the tuft in um.
        trunk_diam: (proximal, distal) trunk diameter in um.
        n_oblique: number of oblique dendrites off the trunk (>= 0).
        oblique_length: length of each oblique in um.
        oblique_diam: (proximal, distal) oblique diameter in um.
        n_tuft: number of tuft branches at the end of the trunk (>= 2 for a split,
            1 continues the trunk, 0 none).
        tuft_length: length of each tuft branch in um.
        tuft_diam: (proximal, distal) tuft diameter in um.
        axon: whether to add the axon initial segment.
        ais_length: axon initial segment length in um.
        ais_diam: axon initial segment diameter in um.

    Returns:
        A `Morphology`; sections are soma, basal dendrites, trunk pieces each followed by
        its oblique, tuft branches, then the AIS.
    """
    for name, n in (("n_basal", n_basal), ("n_oblique", n_oblique), ("n_tuft", n_tuft)):
        if not (isinstance(n, int) and n >= 0):
            raise ValueError(f"{name} must be an int >= 0, got {n!r}.")
    _positive(
        soma_diam=soma_diam,
        basal_length=basal_length,
        trunk_length=trunk_length,
        oblique_length=oblique_length,
        tuft_length=tuft_length,
        ais_length=ais_length,
        ais_diam=ais_diam,
        basal_diam=basal_diam,
        trunk_diam=trunk_diam,
        oblique_diam=oblique_diam,
        tuft_diam=tuft_diam,
    )
    b = _Builder(soma_diam)
    basal, apical = SWC_TYPES["basal"], SWC_TYPES["apical"]
    for i in range(n_basal):
        ang = 270.0 + (i - (n_basal - 1) / 2.0) * (120.0 / max(n_basal - 1, 1))
        b.add(-1, ang, basal_length, *basal_diam, basal)

    # Trunk pieces end at the oblique branch points, then the nexus.
    cuts = [0.6 * trunk_length * (k + 1) / (n_oblique + 1) for k in range(n_oblique)]
    cuts.append(trunk_length)
    d0, d1 = trunk_diam
    parent, start = -1, 0.0
    for k, end in enumerate(cuts):
        da = d0 + (d1 - d0) * start / trunk_length
        db = d0 + (d1 - d0) * end / trunk_length
        parent = b.add(parent, 90.0, end - start, da, db, apical, "trunk")
        if k < n_oblique:
            side = 1.0 if k % 2 == 0 else -1.0
            b.add(parent, 90.0 - side * 60.0, oblique_length, *oblique_diam, apical, "oblique")
        start = end
    for i in range(n_tuft):
        ang = 90.0 + (i - (n_tuft - 1) / 2.0) * (90.0 / max(n_tuft - 1, 1))
        b.add(parent, ang, tuft_length, *tuft_diam, apical, "tuft")
    if axon:
        b.add(-1, 270.0, ais_length, ais_diam, ais_diam, SWC_TYPES["axon"], "ais")
    return b.build("reduced_pyramidal")


class _Builder:
    """Collects straight sections in the x-y plane (lengths and diameters in um)."""

    def __init__(self, soma_diam: float):
        r = soma_diam / 2.0
        self.r_soma = r
        self.sections = [
            Section(_ro([[0.0, -r, 0.0], [0.0, 0.0, 0.0], [0.0, r, 0.0]]), _ro([r, r, r]), 1, -1)
        ]

    def add(self, parent, angle, length, d_prox, d_dist, swc_type, subregion=None) -> int:
        """Add a frustum leaving `parent` (-1: the soma surface) at `angle` degrees."""
        u = np.array([math.cos(math.radians(angle)), math.sin(math.radians(angle)), 0.0])
        if parent < 0:
            start = self.r_soma * u
            parent = 0
        else:
            start = self.sections[parent].points[-1]
        points = _ro([start, start + length * u])
        radii = _ro([d_prox / 2.0, d_dist / 2.0])
        self.sections.append(Section(points, radii, swc_type, parent, subregion))
        return len(self.sections) - 1

    def build(self, name: str) -> Morphology:
        return Morphology(tuple(self.sections), name=name)


def _positive(**values) -> None:
    """Raise ValueError unless every value (or every entry of a tuple) is > 0."""
    for name, v in values.items():
        vals = v if isinstance(v, tuple) else (v,)
        if len(vals) not in (1, 2) or not all(
            isinstance(a, numbers.Real) and math.isfinite(a) and a > 0 for a in vals
        ):
            raise ValueError(f"{name} must be positive (um), got {v!r}.")


def _ro(a) -> np.ndarray:
    a = np.array(a, dtype=np.float64)
    a.flags.writeable = False
    return a
