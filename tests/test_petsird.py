"""PETSIRD list-mode files written through petsird's own writer API, read into our objects.

The test scanner is described in PETSIRD terms only (flat modules of box crystals replicated
around and along the axis); what we derive (ring diameter, rings, crystals per ring, crystal
positions, TOF) is checked against the numbers used to build it, never against our presets.
"""
import math
from datetime import datetime, timezone

import numpy as np
import pytest

from recon.data.pet_sinogram import SinogramLayout
from recon.data.pet_histogram import histogram_prompts
from recon.io.petsird import PETSIRDError, read_petsird

petsird = pytest.importorskip("petsird")

C_MM_PER_PS = 0.299792458

# the test scanner, in PETSIRD terms
FACE_RADIUS = 150.0
DEPTH, TRANS, AXIAL = 20.0, 3.9, 4.0
N_MODULES_AROUND, N_MODULES_AXIAL = 30, 2
N_TRANS, N_AX = 8, 3  # crystals per module: transaxial x axial
N_TOF, TOF_WIDTH_MM, TOF_FWHM_MM = 9, 15.0, 60.0
N_ENERGY = 2
START_ANGLE = 0.05  # rad: crystal 0 does not sit on +x


def _mat(rot, t):
    m = np.zeros((3, 4), np.float32)
    m[:, :3] = rot
    m[:, 3] = t
    return petsird.RigidTransformation(matrix=m)


def _box(lx, ly, lz):
    pts = [(x, y, z) for x in (0, lx) for y in (0, ly) for z in (0, lz)]
    return petsird.BoxSolidVolume(shape=petsird.BoxShape(
        corners=[petsird.Coordinate(c=np.array(p, np.float32)) for p in pts]), material_id=1)


def _scanner_info(n_trans=N_TRANS, pitch=None, radial_jitter=None, n_tof=N_TOF):
    """Flat modules: crystals at x = FACE_RADIUS (+ box depth along x), y transaxial, z axial."""
    pitch = 2 * FACE_RADIUS * math.tan(math.pi / N_MODULES_AROUND) / N_TRANS if pitch is None else pitch
    crystal = _box(DEPTH, TRANS, AXIAL)
    elements = petsird.ReplicatedBoxSolidVolume(object=crystal)
    for j in range(n_trans):
        for k in range(N_AX):
            # the box's corner at (0,0,0): shift so that its centre sits at (R + D/2, y_j, z_k)
            y = (j - (N_TRANS - 1) / 2) * pitch
            z = (k - (N_AX - 1) / 2) * AXIAL
            elements.transforms.append(_mat(np.eye(3), (FACE_RADIUS, y - TRANS / 2, z - AXIAL / 2)))
    module = petsird.DetectorModule(detecting_elements=elements)
    rep = petsird.ReplicatedDetectorModule(object=module)
    for m in range(N_MODULES_AROUND):
        a = START_ANGLE + 2 * math.pi * m / N_MODULES_AROUND
        rot = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
        for ax in range(N_MODULES_AXIAL):
            dz = (ax - (N_MODULES_AXIAL - 1) / 2) * N_AX * AXIAL
            if radial_jitter is not None:
                rot = rot * (1 + radial_jitter * (m % 2))
            rep.transforms.append(_mat(rot, (0, 0, dz)))
    info = petsird.ScannerInformation(model_name="TinyCyl", scanner_geometry=petsird.ScannerGeometry(replicated_modules=[rep]))
    edges = (np.arange(n_tof + 1) - n_tof / 2) * TOF_WIDTH_MM
    info.tof_bin_edges = [[petsird.BinEdges(edges=edges.astype(np.float32))]]
    info.tof_resolution = [[TOF_FWHM_MM]]
    info.event_energy_bin_edges = [petsird.BinEdges(edges=np.linspace(430, 650, N_ENERGY + 1).astype(np.float32))]
    info.energy_resolution_at_511 = [0.11]
    info.prompt_event_policy = petsird.CoincidencePolicy.REJECT_HIGHER_MULTIPLES
    info.delayed_event_policy = petsird.CoincidencePolicy.REJECT_HIGHER_MULTIPLES
    return info


def _exam():
    exam = petsird.ExamInformation(patient=petsird.DICOMPatientInformation(
        patient_id="X1", patients_sex="F", patients_size=1.65, patients_weight=61.0))
    o = exam.patient_orientation
    o.patient_orientation_modifier_code_sequence.code_meaning = "supine"
    o.patient_gantry_relationship_code_sequence.code_meaning = "headfirst"
    when = petsird.DateTime.from_components(2026, 5, 6, 9, 0, 0)
    exam.start_of_acquisition = petsird.DateTime.from_components(2026, 5, 6, 10, 0, 0)
    exam.radiopharmaceuticals = [petsird.DICOMRadiopharmaceuticalInformation(
        radionuclide_total_dose=2.5e8, radiopharmaceutical_start_date_time=when)]
    return exam


def _element_centre(info, module, element):
    rep = info.scanner_geometry.replicated_modules[0]
    corners = np.array([c.c for c in rep.object.detecting_elements.object.shape.corners], float)
    e = rep.object.detecting_elements.transforms[element].matrix.astype(float)
    m = rep.transforms[module].matrix.astype(float)
    p = e[:, :3] @ corners.mean(0) + e[:, 3]
    return m[:, :3] @ p + m[:, 3]


def _write(path, info, n_events=3000, seed=0, n_blocks=4, block_ms=500, delayed_every=7, exam=True):
    """Random coincidences; returns the (bin_a, bin_b, tof, block, delayed) truth."""
    rng = np.random.default_rng(seed)
    n_bins = len(info.scanner_geometry.replicated_modules[0].transforms) * \
        len(info.scanner_geometry.replicated_modules[0].object.detecting_elements.transforms) * N_ENERGY
    n_tof = len(info.tof_bin_edges[0][0].edges) - 1
    truth = []
    with petsird.BinaryPETSIRDWriter(str(path)) as writer:
        writer.write_header(petsird.Header(scanner=info, exam=_exam() if exam else None))
        blocks = []
        for b in range(n_blocks):
            prompts, delayeds = [], []
            for i in range(n_events // n_blocks):
                a, c = sorted(rng.choice(n_bins, 2, replace=False).tolist(), reverse=True)  # PETSIRD: bin1 >= bin2
                t = int(rng.integers(0, n_tof))
                ev = petsird.CoincidenceEvent(detection_bins=[a, c], tof_idx=t)
                is_delayed = i % delayed_every == 0
                (delayeds if is_delayed else prompts).append(ev)
                truth.append((a, c, t, b, is_delayed))
            blocks.append(petsird.TimeBlock.EventTimeBlock(petsird.EventTimeBlock(
                time_interval=petsird.TimeInterval(start=b * block_ms, stop=(b + 1) * block_ms),
                prompt_events=[[prompts]], delayed_events=[[delayeds]])))
        writer.write_time_blocks(blocks)
    return np.array(truth, dtype=np.int64)


def test_geometry_is_derived_from_the_file(tmp_path):
    info = _scanner_info()
    path = tmp_path / "scan.petsird"
    _write(path, info, n_events=40)
    sc = read_petsird(path).scanner
    assert sc.name == "TinyCyl"
    assert sc.n_rings == N_MODULES_AXIAL * N_AX
    assert sc.crystals_per_ring == N_MODULES_AROUND * N_TRANS
    assert sc.gap_crystals_per_block == 0 and sc.crystal_present().all()
    assert (sc.crystal_depth_mm, sc.crystal_axial_mm) == pytest.approx((DEPTH, AXIAL))
    assert sc.crystal_transaxial_mm == pytest.approx(TRANS)
    assert sc.ring_spacing_mm == pytest.approx(AXIAL, abs=1e-4)
    # crystal centres of flat modules lie at radius (R + D/2) / cos(offset angle): mean within 0.5 mm
    assert sc.lor_radius_mm == pytest.approx(FACE_RADIUS + DEPTH / 2, abs=0.5)
    assert sc.ring_diameter_mm == pytest.approx(2 * FACE_RADIUS, abs=1.0)
    assert sc.n_tof_bins == N_TOF
    assert sc.tof_bin_width_ps == pytest.approx(2 * TOF_WIDTH_MM / C_MM_PER_PS, rel=1e-5)
    assert sc.tof_fwhm_ps == pytest.approx(2 * TOF_FWHM_MM / C_MM_PER_PS, rel=1e-5)
    assert sc.tof_bin_width_mm == pytest.approx(TOF_WIDTH_MM, rel=1e-5)


def test_events_map_to_the_right_detectors_and_tof_bins(tmp_path):
    info = _scanner_info()
    path = tmp_path / "scan.petsird"
    truth = _write(path, info, n_events=4000)
    truth = truth[np.argsort(truth[:, 3] * 2 + truth[:, 4], kind="stable")]  # per block: prompts, then delayed
    acq = read_petsird(path)
    sc, ev = acq.scanner, acq.events
    assert ev.n_events == len(truth)
    n_el = len(info.scanner_geometry.replicated_modules[0].object.detecting_elements.transforms)
    # each event's detectors sit where PETSIRD puts its detecting elements (within the flat-module sag)
    for col, ids in ((0, ev.detector_a), (1, ev.detector_b)):
        elem = truth[:, col] // N_ENERGY
        expected = np.array([_element_centre(info, e // n_el, e % n_el) for e in elem])
        ours = sc.detector_positions_mm(ids)
        assert np.abs(ours - expected).max() < 1.5
    np.testing.assert_array_equal(ev.tof_bin, truth[:, 2])  # same index, same sign convention
    np.testing.assert_array_equal(ev.delayed, truth[:, 4].astype(bool))
    np.testing.assert_allclose(ev.time_s, truth[:, 3] * 0.5)
    assert ev.acquisition_duration_s == pytest.approx(2.0)
    np.testing.assert_allclose(acq.time_blocks_s, [[0, 0.5], [0.5, 1.0], [1.0, 1.5], [1.5, 2.0]])
    # exam metadata
    assert acq.patient.weight_kg == pytest.approx(61.0) and acq.patient.sex == "F"
    assert acq.dose.injected_activity_bq == pytest.approx(2.5e8)
    assert acq.dose.injection_time == datetime(2026, 5, 6, 9, 0, tzinfo=timezone.utc)
    assert acq.info.start_time == datetime(2026, 5, 6, 10, 0, tzinfo=timezone.utc)
    assert acq.placement.patient_position == "HFS"
    # and they histogram: every event with a valid bin counted once
    layout = SinogramLayout(sc, n_radial=sc.crystals_per_ring // 2 - 1, tof=True)
    _, valid = layout.bins_of_events(ev.detector_a, ev.detector_b, ev.tof_bin)
    assert histogram_prompts(ev, layout).sum() == np.count_nonzero(valid & ~ev.delayed)


def test_tof_sign_matches_ours(tmp_path):
    """PETSIRD stores (t1 - t2) c / 2: positive = annihilation towards the second detector = our sign."""
    info = _scanner_info()
    sc = read_petsird(_write_one(tmp_path, info)).scanner
    edges = np.asarray(info.tof_bin_edges[0][0].edges, float)
    centres_petsird = (edges[:-1] + edges[1:]) / 2
    ours = (np.arange(sc.n_tof_bins) - (sc.n_tof_bins - 1) / 2) * sc.tof_bin_width_mm
    np.testing.assert_allclose(ours, centres_petsird, atol=1e-4)


def _write_one(tmp_path, info, name="one.petsird"):
    path = tmp_path / name
    _write(path, info, n_events=8, n_blocks=1, exam=False)
    return path


def test_block_gaps_become_virtual_crystals(tmp_path):
    # 7 of 8 crystal positions filled in every module: one gap crystal per block
    pitch = 2 * FACE_RADIUS * math.tan(math.pi / N_MODULES_AROUND) / N_TRANS
    info = _scanner_info(n_trans=7, pitch=pitch)
    path = tmp_path / "gaps.petsird"
    truth = _write(path, info, n_events=1000, n_blocks=1, delayed_every=10 ** 6)
    truth = truth[np.argsort(truth[:, 4], kind="stable")]
    acq = read_petsird(path)
    sc = acq.scanner
    assert (sc.crystals_per_block, sc.gap_crystals_per_block, sc.blocks_per_ring) == (7, 1, N_MODULES_AROUND)
    assert sc.crystals_per_ring == N_MODULES_AROUND * 8
    present = sc.crystal_present()
    n_el = 7 * N_AX
    for col, ids in ((0, acq.events.detector_a), (1, acq.events.detector_b)):
        assert present[ids % sc.crystals_per_ring].all()  # real crystals map to real slots, never to gap slots
        elem = truth[:, col] // N_ENERGY
        expected = np.array([_element_centre(info, e // n_el, e % n_el) for e in elem])
        assert np.abs(sc.detector_positions_mm(ids) - expected).max() < 1.5


def test_non_cylindrical_layouts_are_refused(tmp_path):
    info = _scanner_info(radial_jitter=0.2)  # every other module 20 % further out
    with pytest.raises(PETSIRDError, match="not on one cylinder"):
        read_petsird(_write_one(tmp_path, info))


def test_unequal_tof_bins_are_refused(tmp_path):
    info = _scanner_info()
    edges = np.asarray(info.tof_bin_edges[0][0].edges).copy()
    edges[0] -= 5.0
    info.tof_bin_edges = [[petsird.BinEdges(edges=edges)]]
    with pytest.raises(PETSIRDError, match="unequal widths"):
        read_petsird(_write_one(tmp_path, info))


def test_unsupported_version_is_refused(tmp_path):
    path = _write_one(tmp_path, _scanner_info())
    data = bytearray(path.read_bytes())
    i = data.find(b'"name":"PETSIRD"')
    j = data.find(b"radiopharmaceuticalVolume")
    assert i > 0 and j > 0
    data[j:j + 25] = b"radiopharmaceuticalVOLUME"  # another schema of the same length: another PETSIRD version
    bad = tmp_path / "other_version.petsird"
    bad.write_bytes(bytes(data))
    with pytest.raises(PETSIRDError, match="unsupported version") as exc:
        read_petsird(bad)
    assert "\n" not in str(exc.value)


def test_not_a_petsird_file(tmp_path):
    bad = tmp_path / "x.petsird"
    bad.write_bytes(b"hello world, not yardl")
    with pytest.raises(PETSIRDError, match="not a PETSIRD binary file"):
        read_petsird(bad)


def test_petsird_to_our_listmode_cache_round_trip(tmp_path):
    from recon.io.hdf5 import read_pet_listmode, write_pet_listmode

    acq = read_petsird(_write_one(tmp_path, _scanner_info()))
    back, _ = read_pet_listmode(write_pet_listmode(acq, tmp_path / "cache.h5"))
    assert back.scanner == acq.scanner  # the derived geometry, first crystal angle included
    for name in ("detector_a", "detector_b", "tof_bin", "time_s", "delayed"):
        np.testing.assert_array_equal(getattr(back.events, name), getattr(acq.events, name))
    np.testing.assert_array_equal(back.time_blocks_s, acq.time_blocks_s)


@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_truncated_file_is_refused(tmp_path, keep):
    path = tmp_path / "full.petsird"
    _write(path, _scanner_info(), n_events=400)
    data = path.read_bytes()
    cut = tmp_path / "cut.petsird"
    cut.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(PETSIRDError, match="truncated"):
        read_petsird(cut)
