"""Bridge to NEURON: build the same cell in NEURON for reference simulations.

Only the geometry lives here for now; mechanisms are inserted on the returned sections.
NEURON (the ``neuron`` package) is imported lazily, so jaxdend does not depend on it.
Units: um for points and diameters, Ohm cm for Ra, uF/cm2 for cm.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .morphology._types import SWC_NAMES, Compartments, Morphology


def to_neuron_sections(
    morph: Morphology, comps: Compartments, ra: float = 100.0, cm: float = 1.0
) -> tuple[list[Any], list[tuple[int, float] | None]]:
    """Build NEURON sections with the geometry and segmentation of `comps`.

    Every section gets its 3-D points (``pt3dadd`` with diameter 2 r), ``nseg`` from
    ``comps.nseg``, ``Ra = ra`` and ``cm = cm``. Children of section 0 (the soma) are
    connected to ``soma(0.5)``, other children to ``parent(1)``, exactly as `discretize`
    assumes, so NEURON's ``seg.area()`` and ``seg.ri()`` equal ``comps.area`` and
    ``ra * comps.axial_geom * 1e-2``. The sections live as long as the returned list (NEURON
    deletes a Python-created section when its last reference goes).

    Args:
        morph: the reconstruction that `comps` was made from.
        comps: its discretisation (gives nseg per section).
        ra: axial resistivity in Ohm cm.
        cm: membrane capacitance in uF/cm2.

    Returns:
        ``(sections, node_to_segment)``: the NEURON sections in the order of
        ``morph.sections``, and for every node of `comps` its segment as
        ``(section_index, x)`` (use ``sections[i](x)``), or None for junction nodes
        (NEURON's ``sec(1)`` nodes, which carry no membrane).

    Raises:
        ValueError: `comps` does not belong to `morph`.
    """
    from neuron import h

    if comps.morphology is not None and comps.morphology is not morph:
        raise ValueError(
            "comps was made from another morphology. Fix: pass the Morphology given to "
            "discretize(...) (comps.morphology)."
        )
    if len(comps.nseg) != len(morph.sections):
        raise ValueError(
            f"comps has nseg for {len(comps.nseg)} sections but the morphology has "
            f"{len(morph.sections)}. Fix: discretize this morphology."
        )
    sections = []
    for i, s in enumerate(morph.sections):
        sec = h.Section(name=f"{SWC_NAMES.get(s.swc_type, f'type{s.swc_type}')}_{i}")
        for (x, y, z), r in zip(s.points, s.radii):
            h.pt3dadd(float(x), float(y), float(z), 2.0 * float(r), sec=sec)
        sec.Ra = ra
        sec.cm = cm
        sections.append(sec)
    for i, s in enumerate(morph.sections):
        if s.parent >= 0:
            sections[i].connect(sections[s.parent](0.5 if s.parent == 0 else 1.0), 0.0)
    for sec, n in zip(sections, comps.nseg):
        sec.nseg = int(n)
    node_to_segment = [
        None if junction else (int(isec), float(x))
        for isec, x, junction in zip(comps.section, comps.x, comps.is_junction)
    ]
    return sections, node_to_segment


# --------------------------------------------------------------------------- mechanisms
#: jaxdend channel -> (NEURON suffix, {jaxdend parameter: NEURON range name without suffix}).
#: Parameters named e_na / e_k set the ion's reversal potential (NEURON's ena / ek), which is
#: shared by all mechanisms of a segment. ``None`` means "same names as jaxdend".
NEURON_MECHANISMS: dict[str, tuple[str, dict[str, str] | None]] = {
    "HH": ("hh", {"g_na": "gnabar", "g_k": "gkbar", "g_l": "gl", "e_l": "el"}),
    "Leak": ("pas", {"g": "g", "e": "e"}),
    "PospischilNa": ("jd_pna", None),
    "PospischilKd": ("jd_pkd", None),
    "PospischilM": ("jd_pm", None),
    "MainenNa": ("jd_mna", None),
    "MainenKv": ("jd_mkv", None),
    "Ih": ("jd_ih", None),
}
_ION_PARAMS = {"e_na": "ena", "e_k": "ek"}


class NeuronModel:
    """A jaxdend `Cell` rebuilt in NEURON (same geometry, segments, mechanisms, parameters).

    Attributes:
        sections: NEURON sections in the order of the morphology's sections.
        node_to_segment: per node, ``(section_index, x)`` or None for junction nodes.
        cell: the jaxdend cell it was built from.
    """

    def __init__(self, cell, morph=None, *, usetable: bool = False):
        """Build the NEURON model of `cell` (float parameters are read out of the cell).

        Args:
            cell: a `jaxdend.Cell` whose compartments came from `discretize(morph)`.
            morph: the `Morphology` (default: ``cell.comps.morphology``).
            usetable: NEURON's ``usetable_hh``: False (exact rate functions, what jaxdend
                computes by default), True (NEURON's default: rates from 1 mV tables on
                -100..100 mV, the counterpart of ``jaxdend.RateTable(dv=1.0)``).

        Raises:
            ValueError: a parameter varies within a NEURON section where NEURON cannot
                (``Ra``), or two mechanisms set different reversal potentials of one ion.
            KeyError: a channel has no NEURON counterpart (see `NEURON_MECHANISMS`; the
                ``jd_*`` mechanisms need the mod files of ``jaxdend/nmodl`` compiled and loaded).
        """
        import numpy as np
        from neuron import h

        h.load_file("stdrun.hoc")
        comps = cell.comps
        morph = comps.morphology if morph is None else morph
        if morph is None:
            raise ValueError("The cell's compartments carry no morphology; pass morph=.")
        self.cell = cell
        self.sections, self.node_to_segment = to_neuron_sections(morph, comps)
        ra = np.asarray(cell.ra)
        cm = np.asarray(cell.cm)
        for isec, sec in enumerate(self.sections):
            nodes = np.nonzero(comps.section == isec)[0]
            if np.ptp(ra[nodes]) > 1e-12 * abs(ra[nodes]).max():
                raise ValueError(
                    f"ra varies within section {isec}; NEURON has one Ra per section."
                )
            sec.Ra = float(ra[nodes[0]])
        h.celsius = float(cell.celsius)
        self.usetable = bool(usetable)  # NEURON's flag is global: `run` sets it again
        if hasattr(h, "usetable_hh"):
            h.usetable_hh = int(self.usetable)  # 0: exact rates (jaxdend's default)
        segs = {}
        for node, where in enumerate(self.node_to_segment):
            if where is not None:
                segs[node] = self.sections[where[0]](where[1])
                segs[node].cm = float(cm[node])
        ion_set: dict[tuple[int, str], float] = {}
        for ch, mask in zip(cell.channels, cell.masks):
            kind = type(ch).__name__
            if kind not in NEURON_MECHANISMS:
                raise KeyError(f"No NEURON mechanism known for channel {kind}.")
            suffix, names = NEURON_MECHANISMS[kind]
            mask = np.asarray(mask)
            params = {f: np.broadcast_to(np.asarray(getattr(ch, f), float), (comps.n,))
                      for f in (fld.name for fld in dataclasses.fields(ch))}
            for isec, sec in enumerate(self.sections):
                nodes = [n for n in np.nonzero(comps.section == isec)[0] if n in segs]
                if not any(mask[n] for n in nodes):
                    continue
                sec.insert(suffix)
                for n in nodes:
                    seg = segs[n]
                    mech = getattr(seg, suffix)
                    for f, values in params.items():
                        value = float(values[n]) if mask[n] else 0.0
                        if f in _ION_PARAMS:
                            if not mask[n]:
                                continue
                            key = (n, _ION_PARAMS[f])
                            if key in ion_set and abs(ion_set[key] - value) > 1e-12:
                                raise ValueError(
                                    f"Two channels set different {_ION_PARAMS[f]} at node {n}; "
                                    "NEURON shares one reversal potential per ion and segment."
                                )
                            ion_set[key] = value
                            setattr(seg, _ION_PARAMS[f], value)
                            continue
                        if not mask[n] and f not in ch.conductance_names:
                            continue
                        name = (names or {}).get(f, f) if names is not None else f
                        if names is not None and f not in names:
                            continue
                        setattr(mech, name, value)

    def _synapses(self, stim, keep):
        """Point processes and NetCons for the cell's synapse groups (Exp2Syn, jd_nmda)."""
        import numpy as np
        from neuron import h

        from .synapses import NMDA

        if self.cell.gap_junctions is not None:
            raise NotImplementedError("Gap junctions are not translated to NEURON.")
        netcons = []
        for grp in self.cell.synapses:
            if grp.stp is not None:
                raise NotImplementedError("Short-term plasticity is not translated to NEURON.")
            times = stim.spike_times(grp.name)
            rec = grp.receptor
            params = {f: np.broadcast_to(np.asarray(getattr(rec, f), float), (grp.n,))
                      for f in (fld.name for fld in dataclasses.fields(rec))}
            gmax = np.asarray(grp.gmax, float)
            for k, node in enumerate(grp.node):
                seg = self.segment(node)
                if isinstance(rec, NMDA):
                    syn = h.jd_nmda(seg)
                    syn.mg, syn.mg_slope, syn.mg_k = (
                        float(params[f][k]) for f in ("mg", "mg_slope", "mg_k"))
                else:
                    syn = h.Exp2Syn(seg)
                syn.tau1, syn.tau2 = float(params["tau_rise"][k]), float(params["tau_decay"][k])
                syn.e = float(params["e_rev"][k])
                nc = h.NetCon(None, syn)
                nc.weight[0] = 1e-3 * float(gmax[k])  # nS -> uS
                keep += [syn, nc]
                if times is not None:
                    row = np.asarray(times[k])
                    netcons.append((nc, row[np.isfinite(row)]))
        return netcons

    def segment(self, node: int):
        """The NEURON segment of `node` (not a junction node)."""
        where = self.node_to_segment[node]
        if where is None:
            raise ValueError(f"Node {node} is a junction node; it has no NEURON segment.")
        return self.sections[where[0]](where[1])

    def run(self, stimulus, t1: float, dt: float, record_nodes, v_init: float | None = None):
        """Run NEURON's fixed-step backward Euler and record membrane potentials.

        Args:
            stimulus: jaxdend clamps and synaptic inputs (a `CurrentClamp`, `Input`, list, or
                `Stimulus`); Step and Sampled waveforms (IClamp, played vector); synapse groups
                become Exp2Syn (AMPA, GABA) or jd_nmda point processes fed by NetCon events.
            t1: duration, ms.
            dt: time step, ms.
            record_nodes: node indices to record v at.
            v_init: initial potential in mV (default the cell's).

        Returns:
            ``(t, v, seconds)``: times (ms, n_steps + 1), voltages (mV, n_steps + 1 x nodes)
            and the wall time of the run itself (init + integration).
        """
        import time

        import numpy as np
        from neuron import h

        from .stimulus import Sampled, Step, as_stimulus

        stim = as_stimulus(stimulus)
        keep = []
        netcons = self._synapses(stim, keep)
        for clamp in stim.clamps:
            ic = h.IClamp(self.segment(clamp.node))
            wf = clamp.waveform
            if isinstance(wf, Step):
                ic.delay, ic.dur, ic.amp = float(wf.delay), float(wf.dur), float(wf.amp)
            elif isinstance(wf, Sampled):
                ic.delay, ic.dur = 0.0, 1e9
                tv, iv = h.Vector(np.asarray(wf.t)), h.Vector(np.asarray(wf.i))
                iv.play(ic._ref_amp, tv, True)
                keep += [tv, iv]
            else:
                raise TypeError(f"{type(wf).__name__} waveforms are not translated to NEURON.")
            keep.append(ic)
        vecs = []
        for node in np.atleast_1d(record_nodes):
            vec = h.Vector()
            vec.record(self.segment(int(node))._ref_v)
            vecs.append(vec)
        t_vec = h.Vector()
        t_vec.record(h._ref_t)
        h.cvode_active(0)
        if hasattr(h, "usetable_hh"):
            h.usetable_hh = int(self.usetable)
        h.secondorder = 0
        h.dt = dt
        h.steps_per_ms = 1.0 / dt
        v0 = float(self.cell.v_init) if v_init is None else float(v_init)
        start = time.perf_counter()
        h.finitialize(v0)
        for nc, times in netcons:
            for te in times:
                nc.event(float(te))
        h.continuerun(t1)
        seconds = time.perf_counter() - start
        t = np.asarray(t_vec)
        v = np.stack([np.asarray(x) for x in vecs], axis=1)
        del keep
        return t, v, seconds


# --------------------------------------------------------------------------- mod files
#: NMODL files of the jaxdend mechanisms without a NEURON built-in (``jd_*``).
MOD_DIR = __import__("pathlib").Path(__file__).resolve().parent / "nmodl"


def mod_suffixes() -> tuple[str, ...]:
    """Mechanism names of the mod files in `MOD_DIR` (taken from the file names)."""
    return tuple(sorted(p.stem for p in MOD_DIR.glob("*.mod")))


def loaded_mechanisms() -> set[str]:
    """Names of the density and point-process mechanisms NEURON currently knows."""
    from neuron import h

    names = set()
    for kind in (0, 1):
        mech_type = h.MechanismType(kind)
        name = h.ref("")
        for i in range(int(mech_type.count())):
            mech_type.select(i)
            mech_type.selected(name)
            names.add(name[0])
    return names


def compile_mechanisms(build_dir) -> str:
    """Compile the jaxdend mod files with ``nrnivmodl`` in `build_dir` (a writable folder).

    Returns:
        Path of the compiled library (``<arch>/libnrnmech.so`` or ``.dylib``).

    Raises:
        RuntimeError: ``nrnivmodl`` is missing or fails (its output is in the message).
    """
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    build_dir = Path(build_dir)
    exe = Path(sys.executable).parent / "nrnivmodl"
    exe = str(exe) if exe.exists() else shutil.which("nrnivmodl")
    if exe is None:
        raise RuntimeError("nrnivmodl not found; install NEURON (pip install neuron).")
    build_dir.mkdir(parents=True, exist_ok=True)
    for mod in sorted(MOD_DIR.glob("*.mod")):
        shutil.copy(mod, build_dir / mod.name)
    proc = subprocess.run([exe, "."], cwd=build_dir, capture_output=True, text=True)
    libs = [p for p in sorted(build_dir.glob("*/libnrnmech.*"))
            if p.suffix in (".so", ".dylib", ".dll")]
    if proc.returncode != 0 or not libs:
        raise RuntimeError(f"nrnivmodl failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return str(libs[0])


def load_mechanisms(build_dir=None):
    """Make the ``jd_*`` mechanisms available in NEURON (compiling them if needed).

    Args:
        build_dir: where to compile (default: a new temporary folder).

    Returns:
        NEURON's ``h``.
    """
    import tempfile

    from neuron import h

    if set(mod_suffixes()) <= loaded_mechanisms():
        return h
    build_dir = tempfile.mkdtemp(prefix="jaxdend_nrnmech_") if build_dir is None else build_dir
    h.nrn_load_dll(compile_mechanisms(build_dir))
    missing = set(mod_suffixes()) - loaded_mechanisms()
    if missing:
        raise RuntimeError(f"Mechanisms missing after loading: {sorted(missing)}.")
    return h
