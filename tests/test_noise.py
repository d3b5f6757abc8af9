"""The counter-based noise stream: its contract (known answers, positions) and its law."""

import math

import numpy as np
import pytest
import torch

from ebmcore.sampling.noise import NoiseStream, splitmix64


def test_splitmix64_known_answer():
    # SplitMix64 from seed 0: its first output is the published 0xE220A8397B1DCDAF.
    assert splitmix64(0, 0) == 0xE220A8397B1DCDAF


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_uniforms_are_the_outputs_bits(dtype):
    s = NoiseStream(123)
    u = s.uniform_(torch.empty(5, dtype=dtype)).tolist()
    if dtype == torch.float32:  # two per output: the high, then the low 24 bits
        z = [splitmix64(123, k) for k in range(3)]
        want = [b * 2.0**-24 for k in z for b in ((k >> 40), (k & 0xFFFFFFFF) >> 8)][:5]
        assert s.position == 3
    else:  # one per output: its top 53 bits
        want = [(splitmix64(123, k) >> 11) * 2.0**-53 for k in range(5)]
        assert s.position == 5
    assert u == want


def test_a_chain_s_numbers_do_not_depend_on_the_chains_after_it():
    few = NoiseStream(4).normal_(torch.empty(10, 2))
    many = NoiseStream(4).normal_(torch.empty(1000, 2))
    assert torch.equal(few, many[:10])


def test_the_normals_have_the_standard_normal_law():
    # 2e6 draws: the mean's standard error is 1/sqrt(n) = 7e-4, the variance's sqrt(2/n) =
    # 1e-3 and the fourth moment's sqrt(96/n) = 7e-3; 5 standard errors each (a false alarm
    # below 1e-6).  The Kolmogorov distance's 1e-6 quantile is about 2.7/sqrt(n) = 1.9e-3.
    n = 2_000_000
    x = NoiseStream(2024).normal_(torch.empty(n, dtype=torch.float64)).numpy()
    assert abs(x.mean()) < 5 / math.sqrt(n)
    assert abs(x.var() - 1) < 5 * math.sqrt(2 / n)
    assert abs((x**4).mean() - 3) < 5 * math.sqrt(96 / n)
    xs = np.sort(x)
    cdf = 0.5 * (1 + np.vectorize(math.erf)(xs[::1000] / math.sqrt(2)))
    assert np.abs(cdf - (np.arange(0, n, 1000) + 0.5) / n).max() < 2.7 / math.sqrt(n)
    # the two normals of one output are uncorrelated (standard error 1/sqrt(n/2))
    assert abs(np.mean(x[0::2] * x[1::2])) < 5 / math.sqrt(n / 2)
    assert np.abs(x).max() <= math.sqrt(64 * math.log(2)) + 1e-5


def test_float32_normals_are_the_float64_ones_rounded():
    a = NoiseStream(5).normal_(torch.empty(1000, dtype=torch.float32))
    b = NoiseStream(5).normal_(torch.empty(1000, dtype=torch.float64))
    assert torch.equal(a.double(), b)


def test_the_stream_refuses_what_it_cannot_fill():
    with pytest.raises(ValueError):
        NoiseStream(1).normal_(torch.empty(4, 2).t())
