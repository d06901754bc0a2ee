"""Discretisation of a `Morphology` into compartments with NEURON's geometry.

Lengths, radii, coordinates and distances in um; areas in um^2; the axial geometric factor
in 1/um (resistance in MOhm = Ra[Ohm cm] * factor * 1e-2); Ra in Ohm cm; cm in uF/cm2;
frequencies in Hz.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

from ._types import SWC_NAMES, Compartments, Morphology, Section

NsegSpec = int | Mapping[int, int] | Callable[[int, Section], "int | None"] | None


def discretize(
    morph: Morphology,
    *,
    d_lambda: float = 0.1,
    freq: float = 100.0,
    ra: float = 100.0,
    cm: float = 1.0,
    nseg: NsegSpec = None,
    max_nseg: int | None = None,
) -> Compartments:
    """Split every section into segments and compute NEURON's per-node geometry.

    Nodes are the segment centres of every section (``x = (i + 0.5) / nseg``) plus a
    zero-area junction node at ``x = 1`` of every section that has children. Children of
    the soma (section 0) attach to its centre node (``soma(0.5)``; with an even soma nseg
    NEURON's node ``int(0.5 * nseg)``); other children attach to their parent's junction
    node. ``distance`` is the path distance from the soma's attachment node (its centre
    for an odd soma nseg), as NEURON's ``h.distance(soma(0.5), seg)``; ``branch_order``
    counts the branch points (ends of sections with two or more children) between the
    soma and the node. Nodes are numbered depth first: a section's nodes are contiguous,
    the soma's attachment node is node 0 and every parent index is smaller than its
    child's (Hines order).

    The geometry is NEURON's for 3-D sections: the radius is linear in arc length between
    3-D points; a segment's area is the lateral area of the frusta over its arc-length
    range (a jump of radius between two coincident points adds the annulus, counted in
    the segment on its proximal side); ``axial_geom`` is the integral of ds / (pi r^2)
    from the node to its parent node (half a segment for a section's first node and for
    a junction node); ``radius`` is the arc-length mean radius of the segment (NEURON's
    ``seg.diam / 2``; for a junction node the radius of the section's last point). As in
    NEURON, which stores 3-D points in single precision, coordinates and diameters are
    rounded to single precision first (a no-op for files read by MorphIO), so the results
    agree with NEURON's to double-precision round-off.

    Segment counts: by default NEURON's d_lambda rule,
    ``nseg = int((L / (d_lambda * lambda_f) + 0.9) / 2) * 2 + 1``, with ``lambda_f``
    the AC length constant at `freq` computed from the 3-D points as in NEURON's
    stdlib ``lambda_f``; the soma gets 1 segment.

    Args:
        morph: the reconstruction; section 0 is the soma.
        d_lambda: maximal segment length as a fraction of the AC length constant.
        freq: frequency of the AC length constant in Hz.
        ra: axial resistivity in Ohm cm (used only by the d_lambda rule).
        cm: membrane capacitance in uF/cm2 (used only by the d_lambda rule).
        nseg: None (d_lambda rule); an int, the number of segments of every section except
            the soma, which keeps 1; a mapping ``{section_index: nseg}`` (sections absent
            from it use the default rule); or a callable ``f(section_index, section)``
            returning an int, or None for the default rule. Give the soma more segments
            with a mapping or a callable.
        max_nseg: optional upper bound applied to every section's segment count.

    Returns:
        `Compartments` with `nseg` per section and `morphology` set to `morph`.

    Raises:
        ValueError: an invalid morphology (not a tree rooted at section 0, fewer than two
            points, a radius <= 0, zero length) or invalid arguments.
    """
    for name, val in (("d_lambda", d_lambda), ("freq", freq), ("ra", ra), ("cm", cm)):
        if not (isinstance(val, (int, float, np.floating, np.integer)) and val > 0):
            raise ValueError(f"{name} must be a positive number, got {val!r}.")
    if max_nseg is not None and not (_is_int(max_nseg) and max_nseg >= 1):
        raise ValueError(f"max_nseg must be a positive int or None, got {max_nseg!r}.")
    sections = morph.sections
    children = _validate(morph)
    cables = [_Cable(s.points, s.radii) for s in sections]
    nsegs = _resolve_nseg(sections, cables, nseg, d_lambda, freq, ra, cm, max_nseg)

    names: list[str] = []
    for s in sections:
        if s.subregion is not None and s.subregion not in names:
            names.append(s.subregion)

    # Section-level quantities (depth-first order so that parents come first).
    order = _dfs(children)
    base = np.zeros(len(sections))  # path distance from the soma centre to x = 0, um
    sec_order = np.zeros(len(sections), dtype=np.int64)  # branch order
    for i in order[1:]:
        p = sections[i].parent
        base[i] = 0.0 if p == 0 else base[p] + cables[p].length
        if p != 0:
            sec_order[i] = sec_order[p] + (1 if len(children[p]) > 1 else 0)

    cols: dict[str, list] = {k: [] for k in _COLUMNS}
    attach = np.full(len(sections), -1, dtype=np.int64)  # node that children attach to

    for i in order:
        sec, cab, n = sections[i], cables[i], nsegs[i]
        h = cab.length / n
        centres = (np.arange(n) + 0.5) * h
        bounds = np.arange(n + 1) * h
        a_b, r_c, d_b = cab.area_at(bounds), cab.res_at(centres), cab.diam_at(bounds)
        a_b[0], d_b[0], a_b[-1], d_b[-1] = 0.0, 0.0, cab.total_area, cab.total_diam
        area = np.diff(a_b)
        radius = np.diff(d_b) / (2.0 * h)
        xyz = cab.xyz_at(centres)
        sub = names.index(sec.subregion) if sec.subregion is not None else -1
        fixed = {
            "section": i,
            "swc_type": sec.swc_type,
            "subregion": sub,
            "branch_order": sec_order[i],
        }

        if i == 0:
            # The attachment node first, then towards x = 0, then towards x = 1.
            ia = min(int(0.5 * n), n - 1)
            node: dict[int, int] = {}
            for k in [ia, *range(ia - 1, -1, -1), *range(ia + 1, n)]:
                nb = k if k == ia else (k + 1 if k < ia else k - 1)
                node[k] = _add(
                    cols, fixed, parent=-1 if k == ia else node[nb], x=(k + 0.5) / n,
                    length=h, radius=radius[k], area=area[k], axial_geom=abs(r_c[k] - r_c[nb]),
                    distance=abs(centres[k] - centres[ia]), xyz=xyz[k], is_junction=False,
                )  # fmt: skip
            attach[i] = node[ia]
        else:
            par = attach[sec.parent]
            for k in range(n):
                par = _add(
                    cols, fixed, parent=par, x=(k + 0.5) / n, length=h, radius=radius[k],
                    area=area[k], axial_geom=r_c[0] if k == 0 else r_c[k] - r_c[k - 1],
                    distance=base[i] + centres[k], xyz=xyz[k], is_junction=False,
                )  # fmt: skip
            if children[i]:
                attach[i] = _add(
                    cols, fixed, parent=par, x=1.0, length=0.0, radius=cab.r[-1], area=0.0,
                    axial_geom=cab.total_res - r_c[-1], distance=base[i] + cab.length,
                    xyz=cab.points[-1], is_junction=True,
                )  # fmt: skip

    return Compartments(
        parent=np.asarray(cols["parent"], dtype=np.int64),
        section=np.asarray(cols["section"], dtype=np.int64),
        x=np.asarray(cols["x"], dtype=np.float64),
        length=np.asarray(cols["length"], dtype=np.float64),
        radius=np.asarray(cols["radius"], dtype=np.float64),
        area=np.asarray(cols["area"], dtype=np.float64),
        axial_geom=np.asarray(cols["axial_geom"], dtype=np.float64),
        swc_type=np.asarray(cols["swc_type"], dtype=np.int64),
        subregion=np.asarray(cols["subregion"], dtype=np.int64),
        subregion_names=tuple(names),
        distance=np.asarray(cols["distance"], dtype=np.float64),
        branch_order=np.asarray(cols["branch_order"], dtype=np.int64),
        xyz=np.asarray(cols["xyz"], dtype=np.float64).reshape(-1, 3),
        is_junction=np.asarray(cols["is_junction"], dtype=bool),
        nseg=np.asarray(nsegs, dtype=np.int64),
        morphology=morph,
    )


_COLUMNS = (
    "parent", "section", "x", "length", "radius", "area", "axial_geom", "swc_type",
    "subregion", "distance", "branch_order", "xyz", "is_junction",
)  # fmt: skip


def _add(cols: dict[str, list], fixed: dict, **node) -> int:
    """Append one node (section-wide values in `fixed`); return its index."""
    for key in _COLUMNS:
        cols[key].append(node[key] if key in node else fixed[key])
    return len(cols["parent"]) - 1


class _Cable:
    """One section's centre line with radius linear in arc length between 3-D points.

    Cumulative integrals from x = 0 (area um^2, resistance factor 1/um, diameter um^2)
    evaluated in closed form on each frustum, as NEURON integrates them. Like NEURON, the
    coordinates and diameters are held in single precision and the arc-length increments
    are computed from single-precision coordinate differences (the rest in double), so the
    results agree with NEURON's to round-off. (Reconstructions read by MorphIO are in
    single precision already.)
    """

    def __init__(self, points: np.ndarray, radii: np.ndarray):
        p32 = np.asarray(points, dtype=np.float32)
        self.points = p32.astype(np.float64)
        self.r = (2.0 * np.asarray(radii, dtype=np.float64)).astype(np.float32) / 2.0
        self.r = self.r.astype(np.float64)
        d = np.diff(p32, axis=0).astype(np.float64)
        ds = np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1] + d[:, 2] * d[:, 2])
        self.arc = np.concatenate([[0.0], np.cumsum(ds)])
        self.length = float(self.arc[-1])
        r0, r1 = self.r[:-1], self.r[1:]
        pieces_a = np.pi * (r0 + r1) * np.sqrt(ds * ds + (r1 - r0) ** 2)
        pieces_r = ds / (np.pi * r0 * r1)
        pieces_d = (r0 + r1) * ds
        self.cum_a = np.concatenate([[0.0], np.cumsum(pieces_a)])
        self.cum_r = np.concatenate([[0.0], np.cumsum(pieces_r)])
        self.cum_d = np.concatenate([[0.0], np.cumsum(pieces_d)])
        self.total_area = float(self.cum_a[-1])
        self.total_res = float(self.cum_r[-1])
        self.total_diam = float(self.cum_d[-1])

    def _locate(self, s: np.ndarray):
        """Piece index, distance into it, its start radius and the radius at s."""
        k = len(self.arc)
        j = np.searchsorted(self.arc, s, side="right") - 1  # last point with arc <= s
        full = j >= k - 1
        jj = np.clip(j, 0, k - 2)
        t = np.where(full, 0.0, s - self.arc[jj])
        span = self.arc[jj + 1] - self.arc[jj]
        frac = np.where(full, 0.0, t / np.where(span > 0, span, 1.0))
        r0 = self.r[jj]
        rs = r0 + (self.r[jj + 1] - r0) * frac
        return jj, full, t, frac, r0, rs

    def area_at(self, s):
        jj, full, t, _, r0, rs = self._locate(s)
        part = np.pi * (r0 + rs) * np.sqrt(t * t + (rs - r0) ** 2)
        return np.where(full, self.total_area, self.cum_a[jj] + part)

    def res_at(self, s):
        jj, full, t, _, r0, rs = self._locate(s)
        return np.where(full, self.total_res, self.cum_r[jj] + t / (np.pi * r0 * rs))

    def diam_at(self, s):
        jj, full, t, _, r0, rs = self._locate(s)
        return np.where(full, self.total_diam, self.cum_d[jj] + (r0 + rs) * t)

    def xyz_at(self, s):
        jj, full, _, frac, _, _ = self._locate(s)
        p0 = self.points[jj]
        p = p0 + frac[:, None] * (self.points[jj + 1] - p0)
        return np.where(full[:, None], self.points[-1], p)


def _lambda_f(cab: _Cable, freq: float, ra: float, cm: float) -> float:
    """AC length constant (um) at `freq` (Hz) as NEURON's stdlib ``lambda_f``.

    Uses all 3-D points: L / (sum ds / sqrt(d1 + d2) * sqrt(2) * 1e-5 * sqrt(4 pi f Ra cm)),
    with Ra in Ohm cm and cm in uF/cm2.
    """
    d = 2.0 * cab.r
    lam = 0.0
    for i in range(1, len(d)):  # sequential sum, as the hoc loop
        lam += (cab.arc[i] - cab.arc[i - 1]) / math.sqrt(d[i - 1] + d[i])
    lam *= math.sqrt(2) * 1e-5 * math.sqrt(4 * math.pi * freq * ra * cm)
    return cab.length / lam


def _dlambda_nseg(cab: _Cable, d_lambda: float, freq: float, ra: float, cm: float) -> int:
    """NEURON's d_lambda rule: an odd nseg with segments <= d_lambda * lambda_f."""
    lam = _lambda_f(cab, freq, ra, cm)
    return int((cab.length / (d_lambda * lam) + 0.9) / 2) * 2 + 1


def _resolve_nseg(sections, cables, nseg, d_lambda, freq, ra, cm, max_nseg) -> list[int]:
    """Number of segments of every section (see `discretize`)."""
    if not (nseg is None or _is_int(nseg) or isinstance(nseg, Mapping) or callable(nseg)):
        raise ValueError(
            f"nseg must be None, an int, a mapping {{section_index: nseg}} or a callable "
            f"(section_index, section) -> int, got {type(nseg).__name__}."
        )
    if isinstance(nseg, Mapping):
        bad = [k for k in nseg if not (_is_int(k) and 0 <= k < len(sections))]
        if bad:
            raise ValueError(
                f"nseg mapping has keys {bad} that are not section indices "
                f"(0..{len(sections) - 1})."
            )
    out = []
    for i, (sec, cab) in enumerate(zip(sections, cables)):
        if nseg is None:
            val = None
        elif _is_int(nseg):
            val = None if i == 0 else nseg
        elif isinstance(nseg, Mapping):
            val = nseg.get(i)
        else:
            val = nseg(i, sec)
        if val is None:
            val = 1 if i == 0 else _dlambda_nseg(cab, d_lambda, freq, ra, cm)
        if not (_is_int(val) and val >= 1):
            raise ValueError(f"nseg of section {i} must be a positive int, got {val!r}.")
        if max_nseg is not None:
            val = min(int(val), int(max_nseg))
        out.append(int(val))
    return out


def _validate(morph: Morphology) -> list[list[int]]:
    """Check that `morph` is a tree rooted at section 0; return the children lists."""
    sections = morph.sections
    if len(sections) == 0:
        raise ValueError("The morphology has no sections. Fix: section 0 must be the soma.")
    if sections[0].parent != -1:
        raise ValueError(
            f"Section 0 (the soma) must be the root (parent -1), got parent "
            f"{sections[0].parent}. Fix: put the soma first."
        )
    children: list[list[int]] = [[] for _ in sections]
    for i, s in enumerate(sections):
        what = "the soma" if i == 0 else f"section {i} ({SWC_NAMES.get(s.swc_type, s.swc_type)})"
        pts, rad = np.asarray(s.points), np.asarray(s.radii)
        if pts.ndim != 2 or pts.shape[1] != 3 or pts.shape[0] < 2 or rad.shape != pts[:, 0].shape:
            raise ValueError(
                f"{what}: points must have shape (k, 3) with k >= 2 and radii shape (k,), "
                f"got {pts.shape} and {rad.shape}."
            )
        if not (np.all(np.isfinite(pts)) and np.all(np.isfinite(rad))):
            raise ValueError(f"{what}: points and radii must be finite.")
        bad = np.flatnonzero(~(rad > 0))
        if bad.size:
            raise ValueError(
                f"{what}: radius {rad[bad[0]]:g} um at point {bad[0]}; radii must be > 0. "
                "Fix: correct the radii of the reconstruction."
            )
        if not np.any(np.diff(pts, axis=0)):
            raise ValueError(
                f"{what} has zero length (all {len(pts)} points coincide). Fix: remove the "
                "section or give it distinct points."
            )
        if i > 0:
            if not (_is_int(s.parent) and 0 <= s.parent < len(sections) and s.parent != i):
                raise ValueError(
                    f"{what}: parent {s.parent!r} is not another section index "
                    f"(0..{len(sections) - 1})."
                )
            children[s.parent].append(i)
    if len(_dfs(children)) != len(sections):
        raise ValueError(
            "The sections do not form one tree rooted at the soma (a cycle in the parent "
            "indices). Fix: every section's parent chain must end at section 0."
        )
    return children


def _dfs(children: list[list[int]]) -> list[int]:
    """Section indices depth first (pre-order) from section 0, children in index order."""
    out, stack, seen = [], [0], set()
    while stack:
        i = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        out.append(i)
        stack.extend(reversed(children[i]))
    return out


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
