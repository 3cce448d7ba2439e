"""Decay factors against closed forms and against numerical integration."""
from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pytest

from recon.quant.decay import (
    acquisition_decay_factor,
    activity_at,
    average_count_rate_time,
    decay_constant,
    decay_correction_factor,
    decay_factor,
    decay_to_reference,
)

HL = 6586.2


def test_one_half_life_halves():
    assert decay_factor(HL, HL) == pytest.approx(0.5, rel=1e-15)
    assert decay_factor(HL, 3 * HL) == pytest.approx(0.125, rel=1e-14)
    assert decay_factor(HL, -HL) == pytest.approx(2.0, rel=1e-15)
    assert decay_correction_factor(HL, HL) == pytest.approx(2.0, rel=1e-15)


def test_half_life_by_name_and_datetimes():
    t0 = datetime(2025, 1, 1, 23, 0)
    t1 = t0 + timedelta(hours=6.0067)  # across midnight
    assert decay_factor("Tc-99m", t0, t1) == pytest.approx(0.5, rel=1e-6)
    assert decay_constant("F-18") == pytest.approx(math.log(2) / (109.77 * 60), rel=1e-3)
    assert activity_at(100.0, t0, t0 + timedelta(seconds=HL), HL) == pytest.approx(50.0)


def test_acquisition_factor_closed_form_and_integral():
    lam = math.log(2) / HL
    for t in (1.0, 300.0, 1800.0, 3 * HL):
        closed = (1 - math.exp(-lam * t)) / (lam * t)
        assert acquisition_decay_factor(HL, t) == pytest.approx(closed, rel=1e-12)
        # mean of exp(-lam s) over [0, T] by the midpoint rule
        s = (np.arange(200000) + 0.5) / 200000 * t
        assert acquisition_decay_factor(HL, t) == pytest.approx(np.exp(-lam * s).mean(), rel=1e-9)
    assert acquisition_decay_factor(HL, 0.0) == 1.0
    assert acquisition_decay_factor(HL, 1e-9) == pytest.approx(1.0, abs=1e-12)
    arr = acquisition_decay_factor(HL, np.array([0.0, HL]))
    assert arr[1] == pytest.approx(0.5 / math.log(2), rel=1e-12)
    with pytest.raises(ValueError):
        acquisition_decay_factor(HL, -1.0)


def test_average_count_rate_time():
    lam = math.log(2) / HL
    t = 600.0
    t_ave = average_count_rate_time(HL, t)
    # activity at t_ave equals the frame mean
    assert math.exp(-lam * t_ave) == pytest.approx((1 - math.exp(-lam * t)) / (lam * t), rel=1e-12)
    assert average_count_rate_time(HL, 1e-3) == pytest.approx(0.5e-3, rel=1e-4)
    assert t_ave < t / 2


def test_decay_to_reference():
    lam = math.log(2) / HL
    t_ref = datetime(2025, 1, 1, 10, 0)
    t_start = datetime(2025, 1, 1, 11, 0)
    # instantaneous value one hour after the reference
    assert decay_to_reference(1.0, HL, t_start, t_ref) == pytest.approx(math.exp(lam * 3600), rel=1e-12)
    # a frame-mean value over T = 300 s
    t = 300.0
    expect = math.exp(lam * 3600) * lam * t / (1 - math.exp(-lam * t))
    assert decay_to_reference(1.0, HL, t_start, t_ref, acquisition_duration_s=t) == pytest.approx(expect, rel=1e-12)
    assert decay_to_reference(2.0, HL, 3600.0, 0.0) == pytest.approx(2 * math.exp(lam * 3600), rel=1e-12)
    with pytest.raises(TypeError):
        decay_to_reference(1.0, HL, 3600.0, t_ref)


def test_bad_half_life():
    with pytest.raises(ValueError):
        decay_factor(0.0, 1.0)
    with pytest.raises(KeyError):
        decay_factor("Xx-1", 1.0)
