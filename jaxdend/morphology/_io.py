"""Reading reconstructions (SWC, Neurolucida ASC, H5) into a `Morphology` through MorphIO,
and writing a `Morphology` as SWC (also through MorphIO).

All coordinates and radii are in um.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import morphio
import numpy as np

from ._types import SWC_NAMES, Morphology, Section

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_LOCATION = re.compile(r"\S+:(\d+):(?:error|warning)\b")

# MorphIO warnings that `load_morphology` turns into errors by its own checks.
_CHECKED_HERE = {morphio.Warning.zero_diameter, morphio.Warning.no_soma_found}

_SUFFIXES = {".swc", ".asc", ".h5"}
_RADIUS_FIELD = {".swc": "the radius (column 6)", ".asc": "the diameter (4th value)"}


def load_morphology(path: str | os.PathLike) -> Morphology:
    """Read a neuron reconstruction (SWC, Neurolucida ASC or H5) with MorphIO.

    Section 0 is the soma, represented as one cylinder-like section (NEURON style):

    - NeuroMorpho three-point soma (SWC; equal radii r, outer points r from the centre,
      checked as NEURON's Import3d does): a cylinder of length 2r and radius r through
      the three points; lateral area 4 pi r^2 = the sphere's (Import3d builds the same
      cylinder, laid along x). Three soma samples that do not conform are a chain.
    - single-point soma: a cylinder of length 2r and radius r centred on the point,
      along the y axis.
    - contour soma (ASC, H5): an equivalent cylinder with length = diameter = 2 r_eq
      centred on the contour centroid along the y axis, where r_eq is the mean distance
      of the contour points from their centroid. This keeps the area of a sphere of
      radius r_eq (4 pi r_eq^2). It is not Import3d's contour-to-cylinders conversion,
      but with one soma segment (the default) only the area matters electrically.
    - stack of cylinders (SWC with several soma samples): the soma samples in path order
      when they form a chain (one arm, or two arms joined at the root sample); otherwise
      an equivalent cylinder (length = diameter) with the same lateral area, centred on
      the first soma sample.

    Every neurite root section gets parent 0 (it attaches to ``soma(0.5)``). MorphIO's
    sections map one to one to ours (non-root sections start with a copy of their
    parent's last point, as MorphIO reads them); sections are numbered depth first, so a
    parent's index is smaller than its children's. ``swc_type`` is MorphIO's section type
    (1 soma, 2 axon, 3 basal, 4 apical, others kept as their number); ``subregion`` is
    None. MorphIO warnings other than the ones checked here are re-issued as Python
    ``UserWarning``.

    Args:
        path: file name ending in .swc, .asc or .h5 (case-insensitive).

    Returns:
        The `Morphology` (points and radii in um), named after the file stem.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is empty, malformed (an unparsable line, a repeated id), has
            no soma, has a sample whose parent id does not exist, or has a radius <= 0.
            The message names the problem and how to fix it.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"Morphology file not found: {str(path)!r}. Fix: check the path (relative paths "
            f"are resolved from {os.getcwd()!r})."
        )
    if not path.is_file():
        raise ValueError(f"{path}: is not a file. Fix: pass the path of a .swc, .asc or .h5 file.")
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise ValueError(
            f"{path}: unsupported file type {path.suffix!r}. Fix: use an SWC (.swc), "
            "Neurolucida ASCII (.asc) or MorphIO H5 (.h5) file."
        )
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: the file is empty. Fix: point to a complete reconstruction.")
    if suffix == ".swc" and not _swc_has_samples(path):
        raise ValueError(
            f"{path}: the file contains no samples (only comments or blank lines). Fix: "
            "point to a complete reconstruction; SWC sample lines are "
            "'id type x y z radius parent'."
        )

    collector = morphio.WarningHandlerCollector()
    try:
        m = morphio.Morphology(str(path), warning_handler=collector)
    except morphio.MissingParentError as e:
        raise ValueError(
            f"{path}: disconnected tree: {_clean(e)}. Fix: every sample's parent id must be "
            "-1 (a root) or the id of a sample in the file; correct the parent column or "
            "remove the orphaned samples."
        ) from None
    except morphio.SomaError as e:
        raise ValueError(
            f"{path}: invalid soma: {_clean(e)}. Fix: give the soma as one point, the "
            "NeuroMorpho three-point cylinder, a chain of soma samples (SWC) or a closed "
            "contour (ASC)."
        ) from None
    except morphio.RawDataError as e:
        raise ValueError(
            f"{path}: malformed {suffix[1:].upper()} file: {_clean(e)}. Fix: "
            + (
                "every sample line needs 7 numeric columns 'id type x y z radius parent' "
                "with a unique integer id."
                if suffix == ".swc"
                else "correct the file at the reported line (or re-export it)."
                if suffix == ".asc"
                else "re-export the file as a MorphIO H5 morphology (or use SWC / ASC)."
            )
        ) from None
    except morphio.MorphioError as e:
        raise ValueError(
            f"{path}: MorphIO could not read the file: {_clean(e)}. Fix: check that it is a "
            "valid SWC, Neurolucida ASCII or MorphIO H5 morphology."
        ) from None

    soma_points = np.asarray(m.soma.points, dtype=np.float64).reshape(-1, 3)
    if soma_points.shape[0] == 0:
        n_neurite = len(m.root_sections)
        raise ValueError(
            f"{path}: no soma found ({n_neurite} neurite tree(s), no soma samples). Fix: add "
            "the soma to the file (SWC samples of type 1, e.g. one point with the soma "
            "radius, or an ASC CellBody contour)."
        )
    soma = _soma_section(path, m, suffix)

    sections: list[Section] = [soma]
    index: dict[int, int] = {}
    for root in m.root_sections:
        for sec in root.iter():  # depth first, pre-order
            parent = 0 if sec.is_root else index[sec.parent.id]
            index[sec.id] = len(sections)
            points = _frozen(np.asarray(sec.points, dtype=np.float64).reshape(-1, 3))
            radii = _frozen(np.asarray(sec.diameters, dtype=np.float64) / 2.0)
            _check_radii(path, len(sections), int(sec.type), points, radii, collector)
            if points.shape[0] < 2:
                raise ValueError(
                    f"{path}: section {len(sections)} ({_type_name(int(sec.type))}) has a "
                    "single point. Fix: every neurite branch needs at least one sample "
                    "beyond its branch point."
                )
            sections.append(Section(points, radii, int(sec.type), parent))
    _reissue_warnings(path, collector)
    return Morphology(tuple(sections), name=path.stem)


def save_swc(morph: Morphology, path: str | os.PathLike) -> Path:
    """Write `morph` as an SWC file with MorphIO (points and radii in um).

    The soma (section 0) is written as the NeuroMorpho three-point soma when it is a
    cylinder of length 2r and radius r (the form `load_morphology` reads that way and the
    builders make), otherwise as its points; every other section as a MorphIO section of
    its SWC type. Reading the file back with `load_morphology` gives the same sections.

    Args:
        morph: the morphology.
        path: output file name (``.swc``).

    Returns:
        The path written.

    Raises:
        ValueError: a section with one child (SWC cannot store it; merge it with the child)
            or a suffix other than .swc.
    """
    import morphio.mut

    path = Path(path)
    if path.suffix.lower() != ".swc":
        raise ValueError(f"save_swc writes SWC files; got {str(path)!r}. Fix: use a .swc name.")
    soma = morph.sections[0]
    m = morphio.mut.Morphology()
    pts, r = np.asarray(soma.points, float), np.asarray(soma.radii, float)
    centre = pts.mean(axis=0)
    three_point = (pts.shape[0] == 3 and np.allclose(r, r[0])
                   and np.isclose(np.linalg.norm(pts[0] - pts[2]), 2.0 * r[0]))
    if three_point:
        m.soma.points = [pts[1], pts[0], pts[2]]
        m.soma.diameters = list(2.0 * r)
        m.soma.type = morphio.SomaType.SOMA_NEUROMORPHO_THREE_POINT_CYLINDERS
    else:
        m.soma.points = list(pts) if pts.shape[0] > 1 else [centre]
        m.soma.diameters = list(2.0 * r)
    made: dict[int, object] = {}
    for i, sec in enumerate(morph.sections[1:], start=1):
        level = morphio.PointLevel(np.asarray(sec.points, float).tolist(),
                                   (2.0 * np.asarray(sec.radii, float)).tolist())
        kind = morphio.SectionType(int(sec.swc_type))
        if sec.parent == 0:
            made[i] = m.append_root_section(level, kind)
        else:
            made[i] = made[sec.parent].append_section(level, kind)
    try:
        m.write(str(path))
    except morphio.MorphioError as e:
        raise ValueError(f"{path}: MorphIO cannot write this morphology as SWC: {_clean(e)}") \
            from None
    return path


def _soma_section(path: Path, m: morphio.Morphology, suffix: str) -> Section:
    """The soma of a MorphIO morphology as one section (see `load_morphology`)."""
    pts = np.asarray(m.soma.points, dtype=np.float64).reshape(-1, 3)
    diam = np.asarray(m.soma.diameters, dtype=np.float64)
    kind = m.soma.type
    yhat = np.array([0.0, 1.0, 0.0])
    if kind == morphio.SomaType.SOMA_SIMPLE_CONTOUR:
        centre = pts.mean(axis=0)
        r = float(np.mean(np.linalg.norm(pts - centre, axis=1)))
        if not r > 0.0:
            raise ValueError(
                f"{path}: the soma contour has zero size (all {len(pts)} points coincide). "
                "Fix: give the CellBody contour its outline points."
            )
        return _cylinder(centre, r, yhat)
    _check_radii(path, 0, 1, pts, diam / 2.0, None)
    if len(pts) == 1:
        return _cylinder(pts[0], diam[0] / 2.0, yhat)
    if kind == morphio.SomaType.SOMA_NEUROMORPHO_THREE_POINT_CYLINDERS and _conforms(pts, diam):
        axis = (pts[2] - pts[1]) / np.linalg.norm(pts[2] - pts[1])
        return _cylinder(pts[0], diam[0] / 2.0, axis)
    # A stack of cylinders (or an undefined soma with several points).
    edges = _soma_edges(path, pts) if suffix == ".swc" else None
    if edges is None:
        edges = [(i, i + 1) for i in range(len(pts) - 1)]
    order = _chain_order(len(pts), edges)
    if order is not None and np.sum(np.linalg.norm(np.diff(pts[order], axis=0), axis=1)) > 0:
        return Section(_frozen(pts[order]), _frozen(diam[order] / 2.0), 1, -1)
    # Branched soma: one cylinder with the same lateral area as the soma frusta.
    r = diam / 2.0
    area = sum(
        np.pi * (r[a] + r[b]) * np.hypot(np.linalg.norm(pts[b] - pts[a]), r[b] - r[a])
        for a, b in edges
    )
    if not area > 0.0:
        area = 4.0 * np.pi * float(np.max(r)) ** 2
    return _cylinder(pts[0], float(np.sqrt(area / (4.0 * np.pi))), yhat)


def _conforms(pts: np.ndarray, diam: np.ndarray) -> bool:
    """NeuroMorpho three-point soma test of NEURON's Import3d: equal diameters, and the two
    outer points together as far from the centre as the diameter (within 1 %)."""
    arms = np.linalg.norm(pts[1:] - pts[0], axis=1).sum()
    return bool(np.all(diam == diam[0]) and abs(arms / diam[0] - 1.0) < 0.01)


def _cylinder(centre: np.ndarray, r: float, axis: np.ndarray) -> Section:
    """Soma section: a cylinder of length 2r and radius r (um) centred on `centre`."""
    points = np.stack([centre - r * axis, centre, centre + r * axis])
    return Section(_frozen(points), _frozen(np.full(3, float(r))), 1, -1)


def _soma_edges(path: Path, pts: np.ndarray) -> list[tuple[int, int]] | None:
    """Parent-child pairs among the SWC soma samples (indices into `pts`, file order).

    MorphIO gives the soma samples but not their connectivity, so the type-1 lines are
    read here; None if they do not match MorphIO's soma points.
    """
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            cols = line.split("#", 1)[0].split()
            if len(cols) >= 7 and cols[1] in ("1", "1.0"):
                try:
                    rows.append(
                        (int(float(cols[0])), [float(c) for c in cols[2:5]], int(float(cols[6])))
                    )
                except ValueError:
                    return None
    if len(rows) != len(pts) or not np.allclose([r[1] for r in rows], pts, rtol=0, atol=1e-3):
        return None
    pos = {sid: i for i, (sid, _, _) in enumerate(rows)}
    return [(pos[pid], i) for i, (_, _, pid) in enumerate(rows) if pid in pos]


def _chain_order(n: int, edges: list[tuple[int, int]]) -> list[int] | None:
    """The n points in path order if the edges form one unbranched chain, else None."""
    nbrs: list[list[int]] = [[] for _ in range(n)]
    for a, b in edges:
        nbrs[a].append(b)
        nbrs[b].append(a)
    ends = [i for i, nb in enumerate(nbrs) if len(nb) == 1]
    if any(len(nb) > 2 for nb in nbrs) or len(ends) != 2:
        return None
    order, prev = [ends[0]], -1
    while len(order) < n:
        nxt = [j for j in nbrs[order[-1]] if j != prev]
        if not nxt:
            return None  # the soma samples are not connected
        prev = order[-1]
        order.append(nxt[0])
    return order


def _check_radii(path, isec, swc_type, points, radii, collector) -> None:
    """Raise ValueError naming the first point with a radius <= 0 (or not finite)."""
    bad = np.flatnonzero(~(radii > 0.0))
    if bad.size == 0:
        return
    k = int(bad[0])
    where = "the soma" if isec == 0 else f"section {isec} ({_type_name(swc_type)})"
    lines = ""
    if collector is not None:
        nums = [
            w.warning.line_number
            for w in collector.get_all()
            if w.warning.warning() == morphio.Warning.zero_diameter
            and getattr(w.warning, "line_number", -1) > 0
        ]
        if nums:
            lines = f" (MorphIO reports diameters <= 0 at file line(s) {sorted(set(nums))})"
    x, y, z = points[k]
    raise ValueError(
        f"{path}: {where} has radius {radii[k]:g} um at its point {k} of {len(radii)}, "
        f"(x, y, z) = ({x:g}, {y:g}, {z:g}) um{lines}; {bad.size} point(s) of it have a radius "
        f"<= 0. Fix: correct {_RADIUS_FIELD.get(path.suffix.lower(), 'the radius')} of "
        "these samples in the file to a positive value."
    )


def _reissue_warnings(path: Path, collector) -> None:
    """Re-issue MorphIO's warnings (except the ones checked here) as UserWarning."""
    for w in collector.get_all():
        if w.warning.warning() in _CHECKED_HERE:
            continue
        warnings.warn(f"{path}: MorphIO: {_clean(w.warning.msg())}", UserWarning, stacklevel=3)


def _swc_has_samples(path: Path) -> bool:
    """True if an SWC file has at least one non-comment, non-blank line."""
    with open(path, encoding="utf-8", errors="replace") as f:
        return any(line.split("#", 1)[0].strip() for line in f)


def _clean(e) -> str:
    """A MorphIO message on one line, without colour codes; "file:N:error" -> "line N:"."""
    msg = " ".join(_ANSI.sub("", str(e)).split())
    return _LOCATION.sub(r"line \1:", msg).rstrip(":")


def _type_name(swc_type: int) -> str:
    return SWC_NAMES.get(swc_type, f"type {swc_type}")


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.float64)
    a.flags.writeable = False
    return a
