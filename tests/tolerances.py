"""Numeric tolerances of the test suite, derived once from what is compared.

Two kinds of comparison appear in the tests, and they get different tolerances.

**Parity with the reference package** (``PARITY_TOL = 1e-5``, absolute). That is
the product claim of the project ("outputs within 1e-5 of ``lpips``"), not a
property of one CPU: it stays fixed, and a test that needs more is a bug.

**Two float32 evaluations of the same quantity by our own code paths** (eager vs
TorchScript, traced or ONNX; fast vs reference-style route; channels-last vs
NCHW; batch of N vs N batches of 1; d(x, y) vs d(y, x)). Both are exact in real
arithmetic; they differ only in the order of the float32 roundings, and oneDNN
picks that order per instruction set (AVX2, AVX-512, AMX), per thread count and
per memory layout, so the difference is CPU-dependent and has to be bounded, not
measured on one machine. The model used here:

* A dot product of ``K`` terms, summed in two different orders, differs by a
  random walk of about ``K`` roundings of relative size ``eps/2``
  (``eps = 2**-23``, float32's machine epsilon): standard deviation
  ``~ eps * sqrt(K) / 2`` relative to the magnitude of the sum.
* The relative errors of successive layers add up (they are independent), so a
  trunk of convolutions with fan-ins ``K_1 .. K_L`` gives
  ``~ eps * sqrt(K_1 + ... + K_L)`` relative error on its taps. The unit
  normalisation, the squared difference, the 1x1 weighting and the spatial mean
  add a handful of roundings each and do not change the order of magnitude.
* ``SAFETY`` standard deviations on top (4: a 4-sigma event over the few
  hundred comparisons of a run is rare on any CPU).

So ``tol = SAFETY * eps * sqrt(sum of fan-ins) * magnitude``, where the
magnitude is that of the compared values (a distance, a spatial map, a tap).
For alex that is ``4.6e-5`` times the magnitude, for vgg ``8.7e-5``, for squeeze
``3.5e-5``: two to three orders of magnitude below the size of any real bug in
the paths compared (a wrong layout, a dropped layer or a wrong weight moves a
distance by 1e-3 or more), and above what was seen on AVX2 and AVX-512 alike:
the largest, TorchScript vs eager on squeeze v0.0 spatial maps of magnitude 3.4
under AVX2 with 2 threads, was 1.7e-6, 1.4% of its bound of 1.2e-4. The linear
worst case (``K`` roundings all in one direction) would be ``sqrt(K)`` times
looser still; rounding errors do not line up like that in practice.

Quantities that are exactly zero in every path (d(x, x), a padded row) are
compared with ``==`` or with an absolute ``ZERO_TOL``; a relative bound there
would be meaningless.
"""

from __future__ import annotations

import functools
import math

import torch

#: Product claim: every output within this absolute distance of the reference ``lpips``.
PARITY_TOL = 1e-5

#: float32 machine epsilon (2**-23 = 1.19e-7).
F32_EPS = torch.finfo(torch.float32).eps

#: Standard deviations of the rounding random walk allowed (see module docstring).
SAFETY = 4.0

#: Absolute bound for quantities that are 0 in exact arithmetic and come from a
#: few roundings of O(1) values (e.g. 1 - |u| for a unit vector u).
ZERO_TOL = 16 * F32_EPS


@functools.cache
def trunk_accumulations(net: str) -> int:
    """Sum over the trunk's convolutions of their fan-in (in_channels / groups * kh * kw).

    Read from torchvision's architecture (not from ``lpips_core``), so the
    tolerance does not come from the code it checks: alex 9,451, vgg 33,435,
    squeeze 5,339.
    """
    import torch.nn as nn
    import torchvision.models as tvm

    build = {"alex": tvm.alexnet, "vgg": tvm.vgg16, "squeeze": tvm.squeezenet1_1}[net]
    return sum(
        m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        for m in build(weights=None).features.modules()
        if isinstance(m, nn.Conv2d)
    )


def float32_tol(magnitude: float, accumulations: int, safety: float = SAFETY) -> float:
    """Absolute tolerance for two float32 evaluations that differ only in rounding order.

    Args:
        magnitude: size of the compared values (their max abs).
        accumulations: number of roundings in the longest chain (sum of fan-ins).
        safety: standard deviations of the random walk to allow.
    """
    return safety * F32_EPS * math.sqrt(accumulations) * magnitude


def path_tol(expected: torch.Tensor | float, net: str = "alex", safety: float = SAFETY) -> float:
    """Tolerance for comparing two of our own float32 code paths of an LPIPS output.

    Args:
        expected: the values one path produced (a distance, a map, a tap), any shape.
        net: the trunk they went through.
    """
    expected = torch.as_tensor(expected)
    magnitude = float(expected.abs().max()) if expected.numel() else 0.0
    return max(float32_tol(magnitude, trunk_accumulations(net), safety), ZERO_TOL * magnitude)


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    return float((a - b).abs().max()) if a.numel() else 0.0


def assert_paths_agree(got: torch.Tensor, expected: torch.Tensor, net: str = "alex", what: str = "") -> None:
    """Assert two of our own float32 code paths agree within ``path_tol`` (see module docstring)."""
    assert torch.as_tensor(got).shape == torch.as_tensor(expected).shape, (what, got.shape, expected.shape)
    diff, tol = max_abs_diff(got, expected), path_tol(expected, net)
    assert diff <= tol, f"{what}: max abs diff {diff:.3g} > float32 path tolerance {tol:.3g} ({net})"


def assert_parity(got: torch.Tensor, expected: torch.Tensor, what: str = "") -> None:
    """Assert the product claim: within ``PARITY_TOL`` of the reference package's output."""
    assert torch.as_tensor(got).shape == torch.as_tensor(expected).shape, (what, got.shape, expected.shape)
    diff = max_abs_diff(got, expected)
    assert diff <= PARITY_TOL, f"{what}: max abs diff {diff:.3g} to the reference > {PARITY_TOL}"


#: **Lower precisions** (tests/test_precision.py). These are not rounding-order bounds:
#: bf16 and int8 change the numbers by design, and each mode promises a measured contract
#: instead (``results/precision/contract.md``, from human data). The test checks each mode
#: on a fixed set of real photographs (32 distances and 48 2AFC choices per trunk, 64x64);
#: the bounds are about twice what was measured there, so that the test fails on a real
#: fault (a wrong scale, zero point or layout moves distances by tens of percent and
#: scrambles the order) and not on the instruction set: on AVX2 without VNNI the int8 trunk
#: uses 7-bit weights (``precision.weight_bits``: u8 x s8 pair sums saturate int16 there),
#: with AVX-512 VNNI or AMX 8-bit ones, which err less, so the AMD EPYC (AVX2) is the worse
#: case. Measured on it (2026-12-06, 1 thread), median / max relative error, SROCC with the
#: fp32 distances, choices flipped of 48: int8 alex 1.8% / 6.9% / 0.998 / 0, squeeze 2.8% /
#: 6.3% / 0.994 / 0, vgg 1.3% / 3.9% / 0.9985 / 1; bf16 (forced, alex) 0.23% / 0.8% /
#: 0.9993 / 1. The 48 choices include close calls (two distortions almost equally far
#: from the reference), which is why even bf16 flips one; 3 of 48 is the bound.
PRECISION_CONTRACT = {
    "bf16": {"median_rel": 0.005, "max_rel": 0.02, "srocc": 0.997, "flipped": 3 / 48},
    "int8": {"median_rel": 0.05, "max_rel": 0.15, "srocc": 0.985, "flipped": 3 / 48},
}
