"""Tests of the morphology layer: reading, builders, discretisation and NEURON agreement.

Units: um, um^2, 1/um (axial factor), MOhm (NEURON's seg.ri()), Ohm cm, uF/cm2.
"""

import os
from pathlib import Path

import morphio
import numpy as np
import pytest

import jaxdend.morphology as jm
from jaxdend.morphology import SWC_TYPES, Morphology, Section
from jaxdend.neuron_bridge import to_neuron_sections

L5_SWC = "morphology/C060114A5_derived.swc"
L5_ASC = "morphology/C060114A5.asc"
CA1_SWC = "morphology/jaxley_morph_ca1_n120.swc"

# Geometry is computed like NEURON (single-precision 3-D points, same frustum integrals),
# so agreement is at double-precision round-off; measured ~1e-14.
NEURON_RTOL = 1e-9


def _data_file(shared_data: Path, rel: str) -> Path:
    path = shared_data / rel
    if not path.is_file():
        msg = f"Data file {path} is missing."
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="module")
def l5_swc(shared_data):
    return jm.load_morphology(_data_file(shared_data, L5_SWC))


@pytest.fixture(scope="module")
def l5_asc_file(shared_data):
    return _data_file(shared_data, L5_ASC)


@pytest.fixture(scope="module")
def l5_asc(l5_asc_file):
    return jm.load_morphology(l5_asc_file)


@pytest.fixture(scope="module")
def ca1(shared_data):
    return jm.load_morphology(_data_file(shared_data, CA1_SWC))


@pytest.fixture(scope="module")
def h():
    neuron = pytest.importorskip("neuron")
    neuron.h.load_file("stdrun.hoc")
    return neuron.h


def _region_stats(morph: Morphology) -> dict[int, tuple[float, int]]:
    out: dict[int, tuple[float, int]] = {}
    for s in morph.sections[1:]:
        length, count = out.get(s.swc_type, (0.0, 0))
        out[s.swc_type] = (length + s.length, count + 1)
    return out


# ---------------------------------------------------------------- reading real files


@pytest.mark.parametrize("which", ["l5_swc", "l5_asc"])
def test_l5_region_lengths_match_readme(which, request):
    morph = request.getfixturevalue(which)
    stats = _region_stats(morph)
    # README: basal 4852 um / 74 sections, apical 9256 / 121, axon 18705 / 180 (rounded to
    # 1 um, hence the 0.5 um tolerance; section counts exact).
    expected = {"basal": (4852.0, 74), "apical": (9256.0, 121), "axon": (18705.0, 180)}
    assert set(stats) == {SWC_TYPES[k] for k in expected}
    for region, (length, count) in expected.items():
        got_length, got_count = stats[SWC_TYPES[region]]
        assert got_count == count, region
        assert abs(got_length - length) <= 0.5, (region, got_length)
    assert len(morph.sections) == 1 + 74 + 121 + 180


def test_l5_soma_representations(l5_swc, l5_asc, l5_asc_file):
    # SWC: NeuroMorpho 3-point soma of radius 11.6738 um -> cylinder of length 2r, radius r.
    soma = l5_swc.sections[0]
    assert soma.swc_type == 1 and soma.parent == -1
    np.testing.assert_allclose(soma.radii, 11.6738, rtol=1e-6)
    np.testing.assert_allclose(soma.length, 2 * 11.6738, rtol=1e-6)
    np.testing.assert_allclose(soma.points[1], [0.0, 0.0, 0.0], atol=1e-6)
    # ASC: 25-point contour -> equivalent cylinder with r = mean distance to the centroid,
    # which is how the derived SWC's soma radius was made.
    contour = np.asarray(morphio.Morphology(str(l5_asc_file)).soma.points, float)
    r_eq = np.mean(np.linalg.norm(contour - contour.mean(0), axis=1))
    soma = l5_asc.sections[0]
    np.testing.assert_allclose(soma.radii, r_eq, rtol=1e-12)
    np.testing.assert_allclose(soma.length, 2 * r_eq, rtol=1e-12)
    np.testing.assert_allclose(r_eq, 11.6738, rtol=1e-5)


def test_l5_asc_and_swc_have_the_same_neurites(l5_swc, l5_asc):
    # The SWC was converted from the ASC with exact neurites: same points section by
    # section up to the SWC's 4 decimals (radii differ only at the copied branch points,
    # which MorphIO takes from the parent for SWC and from the child for ASC).
    assert len(l5_swc.sections) == len(l5_asc.sections)
    for a, b in zip(l5_swc.sections[1:], l5_asc.sections[1:]):
        assert a.parent == b.parent and a.swc_type == b.swc_type
        # The SWC text has 4 decimals.
        np.testing.assert_allclose(a.points, b.points, rtol=0, atol=1e-4)
        np.testing.assert_allclose(a.radii[1:], b.radii[1:], rtol=0, atol=1e-4)


@pytest.mark.parametrize("which", ["l5_swc", "l5_asc", "ca1"])
def test_sections_are_a_depth_first_tree(which, request):
    morph = request.getfixturevalue(which)
    secs = morph.sections
    assert secs[0].parent == -1 and secs[0].swc_type == 1
    for i, s in enumerate(secs[1:], start=1):
        assert 0 <= s.parent < i
        assert s.points.shape == (len(s.radii), 3) and len(s.radii) >= 2
        assert np.all(s.radii > 0)
        assert s.subregion is None
        if s.parent > 0:  # MorphIO copies the branch point as the child's first point
            np.testing.assert_array_equal(s.points[0], secs[s.parent].points[-1])


def test_ca1_regions_and_soma(ca1):
    stats = _region_stats(ca1)
    # README: basal 7432 um, apical 4420 um (rounded to 1 um).
    assert set(stats) == {3, 4}
    assert abs(stats[3][0] - 7432.0) <= 0.5
    assert abs(stats[4][0] - 4420.0) <= 0.5
    # The 12 soma samples form two arms from the root sample; the soma section follows
    # them as one path (no jump between consecutive points).
    soma = ca1.sections[0]
    assert soma.points.shape == (12, 3)
    steps = np.linalg.norm(np.diff(soma.points, axis=0), axis=1)
    assert np.all(steps < 5.0)
    np.testing.assert_allclose(soma.length, 20.80, atol=0.01)


def test_h5_round_trip(l5_asc, l5_asc_file, tmp_path):
    path = tmp_path / "cell.h5"
    morphio.mut.Morphology(str(l5_asc_file)).write(str(path))
    morph = jm.load_morphology(path)
    assert morph.name == "cell"
    assert len(morph.sections) == len(l5_asc.sections)
    for a, b in zip(morph.sections, l5_asc.sections):
        assert a.parent == b.parent and a.swc_type == b.swc_type
        np.testing.assert_array_equal(a.points, b.points)
        np.testing.assert_array_equal(a.radii, b.radii)


# ---------------------------------------------------------------- bad input


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


_SOMA = "1 1 0 0 0 5 -1\n"

BAD_SWC = {
    "empty": ("", ["empty", "Fix"]),
    "comments_only": ("# nothing here\n\n", ["no samples", "Fix"]),
    "short_line": (_SOMA + "2 3 0 5\n", ["malformed", "line 2", "7 numeric columns"]),
    "non_numeric": (_SOMA + "2 3 0 a 0 1 1\n", ["malformed", "line 2", "7 numeric columns"]),
    "repeated_id": (_SOMA + "2 3 0 5 0 1 1\n2 3 0 9 0 1 1\n", ["Repeated ID", "unique"]),
    "no_soma": ("1 3 0 0 0 1 -1\n2 3 0 5 0 1 1\n", ["no soma", "type 1"]),
    "zero_radius": (
        _SOMA + "2 3 0 5 0 1 1\n3 3 0 9 0 0 2\n4 3 0 12 0 1 3\n",
        ["section 1 (basal)", "radius 0 um", "point 1", "(0, 9, 0)", "positive"],
    ),
    "negative_radius": (
        _SOMA + "2 2 0 -5 0 1 1\n3 2 0 -9 0 -0.5 2\n",
        ["section 1 (axon)", "radius -0.5 um", "point 1", "positive"],
    ),
    "zero_soma_radius": (
        "1 1 0 0 0 0 -1\n2 3 0 5 0 1 1\n3 3 0 9 0 1 2\n",
        ["the soma", "radius 0 um", "positive"],
    ),
    "disconnected": (
        _SOMA + "2 3 0 5 0 1 1\n3 3 0 9 0 1 7\n",
        ["disconnected tree", "parent ID: 7", "parent id must be -1"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SWC))
def test_bad_swc_raises_with_problem_and_fix(case, tmp_path):
    text, fragments = BAD_SWC[case]
    path = _write(tmp_path, f"{case}.swc", text)
    with pytest.raises(ValueError) as info:
        jm.load_morphology(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "Fix" in msg
    for frag in fragments:
        assert frag in msg, (frag, msg)
    assert "\x1b" not in msg  # no terminal colour codes from MorphIO


def test_missing_file_and_unknown_suffix(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found.*Fix"):
        jm.load_morphology(tmp_path / "nope.swc")
    path = _write(tmp_path, "cell.txt", _SOMA)
    with pytest.raises(ValueError, match="unsupported file type.*Fix"):
        jm.load_morphology(path)


def test_disconnected_neurite_warns_and_attaches_to_soma(tmp_path):
    path = _write(tmp_path, "w.swc", _SOMA + "2 3 0 5 0 1 1\n3 3 0 9 0 1 2\n4 3 20 0 0 1 -1\n"
                  "5 3 25 0 0 1 4\n")  # fmt: skip
    with pytest.warns(UserWarning, match="disconnected neurite"):
        morph = jm.load_morphology(path)
    assert [s.parent for s in morph.sections] == [-1, 0, 0]


def test_single_point_soma(tmp_path):
    morph = jm.load_morphology(_write(tmp_path, "p.swc", _SOMA + "2 3 0 5 0 1 1\n3 3 0 9 0 1 2\n"))
    soma = morph.sections[0]
    np.testing.assert_allclose(soma.radii, 5.0)
    np.testing.assert_allclose(soma.length, 10.0)
    np.testing.assert_allclose(soma.points[1], 0.0)
    np.testing.assert_allclose(morph.sections[1].points, [[0, 5, 0], [0, 9, 0]])


def test_soma_sample_chains(tmp_path):
    # Two arms from the root sample: one soma section along the path, arms joined.
    chain = "1 1 0 0 0 4 -1\n2 1 0 -3 0 3 1\n3 1 0 3 0 3 1\n4 3 0 8 0 1 3\n5 3 0 12 0 1 4\n"
    with pytest.warns(UserWarning) as record:
        soma = jm.load_morphology(_write(tmp_path, "chain.swc", chain)).sections[0]
    assert any("Three Point Soma" in str(w.message) for w in record)  # not NeuroMorpho's
    np.testing.assert_allclose(soma.points, [[0, -3, 0], [0, 0, 0], [0, 3, 0]])
    np.testing.assert_allclose(soma.radii, [3, 4, 3])
    # Three arms: an equivalent cylinder (length = diameter) with the frusta's area.
    branched = chain.replace("4 3 0 8", "6 1 3 0 0 3 1\n4 3 0 8")
    soma = jm.load_morphology(_write(tmp_path, "branched.swc", branched)).sections[0]
    area = 3 * np.pi * 7 * np.hypot(3, 1)
    np.testing.assert_allclose(2 * np.pi * soma.radii[0] * soma.length, area)
    np.testing.assert_allclose(soma.length, 2 * soma.radii[0])


def test_zero_radius_in_asc(tmp_path):
    text = (
        '("CellBody"\n  (CellBody)\n  (0 0 0 0)\n  (4 4 0 0)\n  (0 4 0 0)\n)\n'
        "( (Dendrite)\n  (0 0 0 1)\n  (0 10 0 1)\n  (0 20 0 0)\n)\n"
    )
    with pytest.raises(ValueError, match=r"section 1 \(basal\).*point 2.*diameter \(4th value\)"):
        jm.load_morphology(_write(tmp_path, "zero.asc", text))


def test_discretize_rejects_invalid_morphologies():
    good = jm.ball_and_stick()
    soma, dend = good.sections
    zero_r = Section(dend.points, np.array([1.0, 0.0]), 3, 0)
    with pytest.raises(ValueError, match=r"section 1 \(basal\).*radius 0"):
        jm.discretize(Morphology((soma, zero_r)))
    flat = Section(np.zeros((2, 3)), np.ones(2), 3, 0)
    with pytest.raises(ValueError, match="zero length"):
        jm.discretize(Morphology((soma, flat)))
    with pytest.raises(ValueError, match="parent"):
        jm.discretize(Morphology((soma, Section(dend.points, dend.radii, 3, 5))))
    cyc = (soma, Section(dend.points, dend.radii, 3, 2), Section(dend.points, dend.radii, 3, 1))
    with pytest.raises(ValueError, match="cycle"):
        jm.discretize(Morphology(cyc))
    for kwargs in ({"d_lambda": 0.0}, {"nseg": 0}, {"nseg": 2.5}, {"nseg": {7: 3}},
                   {"max_nseg": 0}, {"nseg": lambda i, s: -1}):  # fmt: skip
        with pytest.raises(ValueError):
            jm.discretize(good, **kwargs)


# ---------------------------------------------------------------- discretisation


def _check_hines(comps) -> None:
    assert comps.parent[0] == -1 and comps.section[0] == 0
    assert np.all(comps.parent[1:] >= 0)
    assert np.all(comps.parent[1:] < np.arange(1, comps.n))
    # A section's nodes are contiguous.
    changes = np.flatnonzero(np.diff(comps.section)) + 1
    starts = comps.section[np.r_[0, changes]]
    assert len(np.unique(starts)) == len(starts)
    assert len(comps.nseg) == len(comps.morphology.sections)
    # One node per segment, one junction per section with children.
    has_children = np.zeros(len(comps.nseg), bool)
    has_children[[s.parent for s in comps.morphology.sections[1:]]] = True
    has_children[0] = False  # soma children attach to the soma centre
    assert comps.n == comps.nseg.sum() + has_children.sum()
    assert np.array_equal(np.unique(comps.section[comps.is_junction]), np.flatnonzero(has_children))
    assert np.all(comps.area[comps.is_junction] == 0) and np.all(comps.area[~comps.is_junction] > 0)
    assert np.all(comps.axial_geom[1:] > 0)


@pytest.mark.parametrize("which", ["l5_swc", "ca1"])
def test_real_cell_hines_order_and_sizes(which, request):
    morph = request.getfixturevalue(which)
    comps = jm.discretize(morph)
    _check_hines(comps)
    one = jm.discretize(morph, nseg=1)
    _check_hines(one)
    # The total membrane area does not depend on the segmentation.
    np.testing.assert_allclose(one.area.sum(), comps.area.sum(), rtol=1e-12)
    np.testing.assert_allclose(comps.length.sum(), sum(s.length for s in morph.sections))
    if which == "l5_swc":
        # 376 sections, 179 of them (excluding the soma) with children.
        assert one.n == 376 + 179
        assert comps.n == 1953


def test_nseg_options(l5_swc):
    base = jm.discretize(l5_swc)
    assert base.nseg[0] == 1 and np.all(base.nseg % 2 == 1)
    three = jm.discretize(l5_swc, nseg=3)
    assert three.nseg[0] == 1 and np.all(three.nseg[1:] == 3)
    capped = jm.discretize(l5_swc, max_nseg=5)
    np.testing.assert_array_equal(capped.nseg, np.minimum(base.nseg, 5))
    mapped = jm.discretize(l5_swc, nseg={0: 3, 5: 2})
    assert mapped.nseg[0] == 3 and mapped.nseg[5] == 2
    np.testing.assert_array_equal(np.delete(mapped.nseg, [0, 5]), np.delete(base.nseg, [0, 5]))
    called = jm.discretize(l5_swc, nseg=lambda i, s: 4 if s.swc_type == 2 else None)
    axon = np.array([s.swc_type == 2 for s in l5_swc.sections])
    assert np.all(called.nseg[axon] == 4)
    np.testing.assert_array_equal(called.nseg[~axon], base.nseg[~axon])
    finer = jm.discretize(l5_swc, d_lambda=0.05, freq=200.0, ra=150.0, cm=2.0)
    assert np.all(finer.nseg[1:] >= base.nseg[1:]) and finer.n > base.n


def _neuron_reference(h, morph, comps, ra, d_lambda=0.1, freq=100.0, cm=1.0):
    """NEURON's area, ri, diam and distance per node, and its d_lambda nseg per section."""
    secs, node_to_seg = to_neuron_sections(morph, comps, ra=ra, cm=cm)
    n = comps.n
    area, ri, diam, dist = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    origin = secs[0](0.5)
    for k in range(n):
        isec, x = (int(comps.section[k]), 1.0) if node_to_seg[k] is None else node_to_seg[k]
        seg = secs[isec](x)
        area[k] = seg.area() if node_to_seg[k] is not None else 0.0
        diam[k] = seg.diam
        dist[k] = h.distance(origin, seg)
        p = comps.parent[k]
        if p >= 0:
            # NEURON's ri(seg) is the resistance to the neighbour towards x = 0 (or to the
            # parent section): take it at the more distal node of the pair.
            if comps.section[p] == isec and not comps.is_junction[k] and comps.x[p] > x:
                ri[k] = secs[isec](comps.x[p]).ri()
            else:
                ri[k] = seg.ri()
    nseg = []
    for sec in secs:  # NEURON's d_lambda rule (stdlib.hoc lambda_f)
        sec.nseg = int((sec.L / (d_lambda * h.lambda_f(freq, sec=sec)) + 0.9) / 2) * 2 + 1
        nseg.append(sec.nseg)
    del secs, origin, seg
    return area, ri, diam, dist, np.array(nseg)


def _compare_with_neuron(h, morph, comps, ra):
    area, ri, diam, dist, _ = _neuron_reference(h, morph, comps, ra)
    seg = ~comps.is_junction
    np.testing.assert_allclose(comps.area, area, rtol=NEURON_RTOL, atol=0)
    np.testing.assert_allclose(ra * comps.axial_geom[1:] * 1e-2, ri[1:], rtol=NEURON_RTOL)
    np.testing.assert_allclose(2 * comps.radius[seg], diam[seg], rtol=NEURON_RTOL)
    np.testing.assert_allclose(comps.distance, dist, rtol=NEURON_RTOL, atol=1e-9)


@pytest.mark.parametrize("which", ["l5_swc", "l5_asc", "ca1"])
def test_d_lambda_nseg_equals_neuron(which, request, h):
    morph = request.getfixturevalue(which)
    for ra, cm, freq, d_lambda in ((100.0, 1.0, 100.0, 0.1), (35.4, 2.0, 500.0, 0.05)):
        comps = jm.discretize(morph, d_lambda=d_lambda, freq=freq, ra=ra, cm=cm)
        *_, nseg = _neuron_reference(h, morph, comps, ra, d_lambda, freq, cm)
        assert nseg[0] == 1  # the d_lambda rule also gives one segment for the soma
        np.testing.assert_array_equal(comps.nseg, nseg)
    assert len(list(h.allsec())) == 0


@pytest.mark.parametrize(
    "which, nseg",
    [("l5_swc", None), ("l5_swc", {0: 3}), ("l5_asc", 1), ("ca1", lambda i, s: 2 if i == 0 else 3)],
    ids=["swc-dlambda", "swc-soma3", "asc-nseg1", "ca1-soma2"],
)
def test_geometry_equals_neuron_real_cells(which, nseg, request, h):
    morph = request.getfixturevalue(which)
    comps = jm.discretize(morph, nseg=nseg)
    _compare_with_neuron(h, morph, comps, ra=123.0)
    assert len(list(h.allsec())) == 0


def test_geometry_equals_neuron_builders(h):
    for morph in (jm.ball_and_stick(), jm.y_cell(), jm.reduced_pyramidal()):
        _compare_with_neuron(h, morph, jm.discretize(morph), ra=80.0)
        _compare_with_neuron(h, morph, jm.discretize(morph, nseg={0: 4}), ra=80.0)
    assert len(list(h.allsec())) == 0


def test_frustum_geometry_by_hand():
    # A section with a radius jump between two coincident points: the annulus belongs to
    # the proximal segment when the jump sits on a segment boundary (as in NEURON).
    soma = jm.ball_and_stick().sections[0]
    pts = np.array([[0, 10, 0], [0, 20, 0], [0, 20, 0], [0, 30, 0]], float)
    dend = Section(pts, np.array([1.0, 1.0, 3.0, 3.0]), 3, 0)
    comps = jm.discretize(Morphology((soma, dend)), nseg=2)
    np.testing.assert_allclose(comps.area[1:], [2 * np.pi * 10 + np.pi * 8, 2 * np.pi * 3 * 10])
    # Half segments: 5 um of radius 1, then 5 + 5 um across the jump, then 5 um of radius 3.
    np.testing.assert_allclose(comps.axial_geom[1:], [5 / np.pi, 5 / np.pi + 5 / (9 * np.pi)])
    np.testing.assert_allclose(comps.radius[1:], [1.0, 3.0])
    np.testing.assert_allclose(comps.distance[1:], [5.0, 15.0])
    np.testing.assert_allclose(comps.xyz[1:], [[0, 15, 0], [0, 25, 0]])
    # A tapered frustum: lateral area pi (r1 + r2) sqrt(L^2 + (r2 - r1)^2).
    cone = Section(np.array([[0, 10, 0], [0, 110, 0]], float), np.array([2.0, 1.0]), 3, 0)
    comps = jm.discretize(Morphology((soma, cone)), nseg=1)
    np.testing.assert_allclose(comps.area[1], np.pi * 3 * np.sqrt(100**2 + 1))
    # Half the cone, radius 2 -> 1.5 over 50 um: integral of ds / (pi r^2).
    np.testing.assert_allclose(comps.axial_geom[1], 50 / (np.pi * 2 * 1.5))
    np.testing.assert_allclose(comps.radius[1], 1.5)


# ---------------------------------------------------------------- builders


def test_ball_and_stick():
    morph = jm.ball_and_stick(soma_diam=20.0, dend_length=500.0, dend_diam=2.0)
    assert [s.swc_type for s in morph.sections] == [1, 3]
    comps = jm.discretize(morph)
    _check_hines(comps)
    soma = comps.mask("soma")
    np.testing.assert_allclose(comps.area[soma].sum(), np.pi * 20.0**2)  # sphere's area
    np.testing.assert_allclose(comps.area[~soma].sum(), np.pi * 2.0 * 500.0)
    np.testing.assert_allclose(comps.distance[~soma].max(), 500.0 * (1 - 0.5 / comps.nseg[1]))
    assert np.all(comps.branch_order == 0)
    with pytest.raises(ValueError, match="dend_diam"):
        jm.ball_and_stick(dend_diam=0.0)


def test_y_cell():
    morph = jm.y_cell()
    assert [s.parent for s in morph.sections] == [-1, 0, 1, 1]
    d_parent, d_daughter = 2 * morph.sections[1].radii[0], 2 * morph.sections[2].radii[0]
    np.testing.assert_allclose(d_parent**1.5, 2 * d_daughter**1.5)  # Rall's 3/2 rule
    comps = jm.discretize(morph)
    _check_hines(comps)
    assert comps.is_junction.sum() == 1
    daughters = comps.section >= 2
    assert np.all(comps.branch_order[daughters] == 1) and np.all(
        comps.branch_order[~daughters] == 0
    )
    tips = comps.distance[daughters].max()
    np.testing.assert_allclose(tips, 200.0 + 150.0 * (1 - 0.5 / comps.nseg[2]))


def test_reduced_pyramidal():
    morph = jm.reduced_pyramidal()
    comps = jm.discretize(morph)
    _check_hines(comps)
    secs = morph.sections
    by = {name: [s for s in secs if s.subregion == name] for name in ("trunk", "oblique", "tuft")}
    assert len(by["oblique"]) == 3 and len(by["tuft"]) == 3
    assert all(s.swc_type == 4 for v in by.values() for s in v)
    np.testing.assert_allclose(sum(s.length for s in by["trunk"]), 550.0)
    trunk_ids = {i for i, s in enumerate(secs) if s.subregion == "trunk"}
    assert all(s.parent in trunk_ids for s in by["oblique"] + by["tuft"])
    assert sum(s.swc_type == 3 for s in secs) == 4
    assert [s.swc_type for s in secs].count(2) == 1
    # Taper: trunk radii decrease monotonically along the trunk.
    trunk_r = np.concatenate([s.radii for s in by["trunk"]])
    assert np.all(np.diff(trunk_r) <= 0) and trunk_r[0] == 2.0 and trunk_r[-1] == 1.0
    # Masks by region and subregion.
    assert set(comps.subregion_names) == {"trunk", "oblique", "tuft", "ais"}
    assert np.array_equal(comps.mask("apical"), comps.mask(["trunk", "oblique", "tuft"]))
    assert np.all(comps.swc_type[comps.mask("basal")] == 3)
    assert comps.mask("tuft").sum() == 3 * comps.nseg[[secs.index(s) for s in by["tuft"]][0]]
    assert comps.distance[comps.mask("tuft")].max() > 800.0
    no_axon = jm.reduced_pyramidal(axon=False)
    assert all(s.swc_type != 2 for s in no_axon.sections)
    with pytest.raises(ValueError, match="n_tuft"):
        jm.reduced_pyramidal(n_tuft=-1)


def test_sections_in_any_order_give_hines_order():
    soma, parent, left, right = jm.y_cell().sections
    shuffled = Morphology(
        (
            soma,
            Section(left.points, left.radii, 3, 3),
            Section(right.points, right.radii, 3, 3),
            Section(parent.points, parent.radii, 3, 0),
        )
    )
    comps = jm.discretize(shuffled)
    _check_hines(comps)
    reference = jm.discretize(jm.y_cell())
    np.testing.assert_allclose(np.sort(comps.distance), np.sort(reference.distance))
    np.testing.assert_allclose(np.sort(comps.area), np.sort(reference.area))
