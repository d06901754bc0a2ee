"""Path distances along the dendrites between compartments, and combining cells.

Units: um.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ._types import Compartments


def path_distance(comps: Compartments, node: int) -> np.ndarray:
    """Distance along the tree (um) from node `node` to every node.

    Args:
        comps: the compartments.
        node: index of the reference node.

    Returns:
        (n,) path distances in um (inf for nodes of another cell after `combine`).
    """
    n = comps.n
    if not 0 <= node < n:
        raise ValueError(f"node {node} is out of range 0..{n - 1}.")
    parent, d = comps.parent, comps.distance
    root = node
    ancestors = set()
    while root >= 0:
        ancestors.add(root)
        if comps.axial_geom[root] == 0 and parent[root] >= 0:
            break  # the root of a combined cell: zero-conductance link to another cell
        root = parent[root]
    out = np.full(n, np.inf)
    for i in range(n):
        if i in ancestors:
            out[i] = d[node] - d[i]
        elif parent[i] >= 0 and comps.axial_geom[i] > 0 and np.isfinite(out[parent[i]]):
            out[i] = out[parent[i]] + (d[i] - d[parent[i]])
    return out


def combine(parts: list[Compartments]) -> tuple[Compartments, np.ndarray]:
    """Put several cells into one `Compartments` (e.g. to connect them by gap junctions).

    The cells stay electrically separate: the root of every cell after the first hangs from
    node 0 by an edge of zero conductance, which keeps the Hines order and the O(N) solve.

    Args:
        parts: the compartments of each cell.

    Returns:
        ``(comps, offsets)``: the combined compartments and the index of every cell's first
        node (node ``j`` of cell ``k`` is ``offsets[k] + j``).
    """
    if len(parts) < 1:
        raise ValueError("combine needs at least one Compartments.")
    names: list[str] = []
    for p in parts:
        names += [s for s in p.subregion_names if s not in names]
    offsets = np.cumsum([0] + [p.n for p in parts[:-1]])
    sec_offsets = np.cumsum([0] + [len(p.nseg) for p in parts[:-1]])
    cols: dict[str, list] = {f.name: [] for f in dataclasses.fields(Compartments)}
    for p, off, soff in zip(parts, offsets, sec_offsets):
        parent = np.where(p.parent >= 0, p.parent + off, 0 if off else -1)
        sub = np.array([names.index(p.subregion_names[s]) if s >= 0 else -1 for s in p.subregion])
        for f in cols:
            cols[f].append(getattr(p, f))
        cols["parent"][-1] = parent
        cols["section"][-1] = p.section + soff
        cols["subregion"][-1] = sub.astype(np.int64).reshape(p.subregion.shape)
    out = {f: np.concatenate(v) for f, v in cols.items()
           if f not in ("subregion_names", "morphology")}
    return Compartments(**out, subregion_names=tuple(names), morphology=None), offsets
