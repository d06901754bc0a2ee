"""Data types of the morphology layer: a reconstruction and its discretisation.

Units: lengths, radii and coordinates in um; areas in um^2; path distances in um;
the axial geometric factor in 1/um (resistance in MOhm = Ra[Ohm cm] * factor * 1e-2).
"""

from __future__ import annotations

import dataclasses

import numpy as np

#: SWC structure identifiers used as region codes.
SWC_TYPES: dict[str, int] = {"soma": 1, "axon": 2, "basal": 3, "apical": 4}
SWC_NAMES: dict[int, str] = {v: k for k, v in SWC_TYPES.items()}


@dataclasses.dataclass(frozen=True, eq=False)
class Section:
    """An unbranched cable between two branch points, given by 3-D points.

    Attributes:
        points: (k, 3) coordinates of the centre line in um, k >= 2.
        radii: (k,) radii at the points in um, all > 0.
        swc_type: SWC structure id (1 soma, 2 axon, 3 basal, 4 apical; others allowed).
        parent: index of the parent section in `Morphology.sections`, -1 for the root (soma).
        subregion: optional finer label (e.g. "trunk", "oblique", "tuft"), or None.
    """

    points: np.ndarray
    radii: np.ndarray
    swc_type: int
    parent: int
    subregion: str | None = None

    @property
    def length(self) -> float:
        """Arc length of the centre line in um."""
        return float(np.sum(np.linalg.norm(np.diff(self.points, axis=0), axis=1)))


@dataclasses.dataclass(frozen=True, eq=False)
class Morphology:
    """A neuron reconstruction as a tree of sections (section 0 is the soma, the root).

    Children of the soma attach at its middle (NEURON's ``soma(0.5)``); every other child
    attaches at the distal end (``x = 1``) of its parent, as NEURON's ``connect`` does.
    """

    sections: tuple[Section, ...]
    name: str = "morphology"


@dataclasses.dataclass(frozen=True, eq=False)
class Compartments:
    """A discretised cell: the nodes of the cable tree in Hines order (parent < child).

    Nodes are segment centres (as NEURON's segments) plus zero-area junction nodes at the
    distal end of every section that has children (as NEURON's ``sec(1)`` node). The soma
    centre is node 0. All arrays have length ``n`` (number of nodes).

    Attributes:
        parent: int, parent node index, -1 for the root.
        section: int, index of the section the node belongs to.
        x: float, normalised position of the node along its section (0..1).
        length: segment length in um (0 for junction nodes).
        radius: mean radius of the segment in um (as NEURON's ``seg.diam / 2``).
        area: membrane area in um^2 (0 for junction nodes).
        axial_geom: integral of dx / (pi r(x)^2) along the path from this node to its parent,
            in 1/um (0 for the root). Axial resistance in MOhm = Ra[Ohm cm] * axial_geom * 1e-2.
        swc_type: SWC structure id of the node's section.
        subregion: int index into `subregion_names`, -1 where none.
        subregion_names: names of the finer labels.
        distance: path distance from the soma centre in um.
        branch_order: number of branch points between the soma and the node.
        xyz: (n, 3) coordinates of the node in um.
        is_junction: True for zero-area junction nodes.
        nseg: (n_sections,) number of segments of every section.
    """

    parent: np.ndarray
    section: np.ndarray
    x: np.ndarray
    length: np.ndarray
    radius: np.ndarray
    area: np.ndarray
    axial_geom: np.ndarray
    swc_type: np.ndarray
    subregion: np.ndarray
    subregion_names: tuple[str, ...]
    distance: np.ndarray
    branch_order: np.ndarray
    xyz: np.ndarray
    is_junction: np.ndarray
    nseg: np.ndarray
    morphology: Morphology | None = None

    @property
    def n(self) -> int:
        """Number of nodes (segments + junctions)."""
        return int(self.parent.shape[0])

    def mask(self, where) -> np.ndarray:
        """Boolean mask of nodes selected by `where`.

        Args:
            where: None or "all" (every node); a region name ("soma", "axon", "basal",
                "apical") or a subregion name; a list of such names (union); a boolean
                array of length n; an integer array or list of node indices.

        Returns:
            (n,) bool array.
        """
        n = self.n
        if where is None or (isinstance(where, str) and where == "all"):
            return np.ones(n, bool)
        if isinstance(where, str):
            if where in SWC_TYPES:
                return self.swc_type == SWC_TYPES[where]
            if where in self.subregion_names:
                return self.subregion == self.subregion_names.index(where)
            known = sorted(set(SWC_TYPES) | set(self.subregion_names))
            raise ValueError(f"Unknown region {where!r}. Known regions of this cell: {known}.")
        arr = np.asarray(where)
        if arr.dtype == bool:
            if arr.shape != (n,):
                raise ValueError(
                    f"A boolean selection must have shape ({n},) (one entry per node), "
                    f"got {arr.shape}."
                )
            return arr
        if arr.dtype.kind in "iu":
            if arr.size and (arr.min() < -n or arr.max() >= n):
                raise ValueError(
                    f"Node index out of range: the cell has {n} nodes (0..{n - 1}), "
                    f"got indices in [{arr.min()}, {arr.max()}]."
                )
            m = np.zeros(n, bool)
            m[arr] = True
            return m
        if arr.dtype.kind in "OU" or isinstance(where, (list, tuple)):
            m = np.zeros(n, bool)
            for w in where:
                m |= self.mask(w)
            return m
        raise ValueError(f"Cannot select compartments with {where!r}.")
