"""Where synapses go: by region, path-distance range, at random (with a key), clustered.

Units: path distances and cluster radii in um. Synapse density is uniform per um of
dendrite, so a compartment receives synapses in proportion to its length.
"""

from __future__ import annotations

import jax
import numpy as np

from ..morphology import Compartments, path_distance


def _candidates(comps: Compartments, where, distance) -> np.ndarray:
    mask = comps.mask(where) & ~comps.is_junction
    if distance is not None:
        lo, hi = distance
        mask &= (comps.distance >= lo) & (comps.distance <= hi)
    idx = np.nonzero(mask)[0]
    if idx.size == 0:
        raise ValueError(
            f"No compartment matches where={where!r}, distance={distance}; nowhere to place "
            "synapses."
        )
    return idx


def _weights(comps: Compartments, idx: np.ndarray) -> np.ndarray:
    w = np.asarray(comps.length[idx], float)
    w = np.where(w > 0, w, 1.0)  # point soma of a single node still gets synapses
    return w / w.sum()


def place(
    comps,
    n: int,
    where="all",
    *,
    distance: tuple[float, float] | None = None,
    key=None,
    clusters: int | None = None,
    cluster_radius: float = 10.0,
    return_clusters: bool = False,
):
    """Compartment indices for `n` synapses.

    Dispersed (default): with ``key=None`` the synapses are spread evenly over the dendritic
    length of the selection (deterministic); with a JAX key they are drawn at random, uniform
    per um. Clustered: ``clusters=k`` picks k random centres (needs `key`) and puts the
    synapses (round robin) on compartments within `cluster_radius` um path distance of them.

    Args:
        comps: `Compartments` or a `Cell`.
        n: number of synapses.
        where: region name(s), mask or indices (see `Compartments.mask`).
        distance: optional (min, max) path distance from the soma, um.
        key: JAX PRNG key for random placement.
        clusters: number of clusters, or None for dispersed synapses.
        cluster_radius: radius of a cluster along the dendrite, um.
        return_clusters: also return the cluster label of every synapse (synapse k is in
            cluster ``k % clusters``; -1 for dispersed placement).

    Returns:
        (n,) int array of compartment indices (one per synapse; repeats allowed), and with
        `return_clusters` the (n,) int array of cluster labels.
    """
    comps = getattr(comps, "comps", comps)
    if n < 1:
        raise ValueError(f"n must be >= 1 synapse, got {n}.")
    idx = _candidates(comps, where, distance)
    w = _weights(comps, idx)
    if clusters is None:
        if key is None:
            edges = np.cumsum(w)
            q = (np.arange(n) + 0.5) / n
            nodes = idx[np.minimum(np.searchsorted(edges, q), idx.size - 1)]
        else:
            nodes = np.asarray(jax.random.choice(key, idx, (n,), p=w))
        return (nodes, np.full(n, -1)) if return_clusters else nodes
    if key is None:
        raise ValueError("Clustered placement is random: pass key=jax.random.key(...).")
    if cluster_radius <= 0:
        raise ValueError(f"cluster_radius must be > 0 um, got {cluster_radius}.")
    k_centre, k_member = jax.random.split(key)
    centres = np.asarray(jax.random.choice(k_centre, idx, (clusters,), p=w))
    out = np.empty(n, np.int64)
    keys = jax.random.split(k_member, clusters)
    for c, centre in enumerate(centres):
        members = np.arange(c, n, clusters)
        if members.size == 0:
            continue
        near = idx[path_distance(comps, int(centre))[idx] <= cluster_radius]
        near = near if near.size else np.array([centre])
        out[members] = np.asarray(
            jax.random.choice(keys[c], near, (members.size,), p=_weights(comps, near))
        )
    return (out, np.arange(n) % clusters) if return_clusters else out
