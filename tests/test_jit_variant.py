"""The JIT harness runs the best code variant the host CPU can execute, like the launcher's CPUID check."""
from __future__ import annotations

import pytest

from kiln.compiler.backend.cpu import x86_64
from kiln.compiler.jit import best_variant, cpu_mask

VARIANTS = [{"name": v.name, "required_features": v.required_features} for v in x86_64.HOST.variants]
V2 = dict.fromkeys(["sse3", "ssse3", "sse4.1", "sse4.2", "popcnt", "cx16"], True)
V3 = {**V2, **dict.fromkeys(["avx", "avx2", "bmi", "bmi2", "f16c", "fma", "lzcnt", "movbe"], True)}
V4 = {**V3, **dict.fromkeys(["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"], True)}


@pytest.mark.parametrize("features, expected", [
    (V4, "x86-64-v4"),
    ({**V4, "avx512bw": False}, "x86-64-v3"),   # AVX-512F alone is not level 4
    (V3, "x86-64-v3"),
    ({**V3, "fma": False}, "x86-64-v2"),         # AVX2 without FMA (some VMs hide it)
    (V2, "x86-64-v2"),
])
def test_best_variant_the_host_can_run(features, expected):
    assert best_variant(VARIANTS, cpu_mask(features)) == expected


def test_no_runnable_variant_is_an_error():
    with pytest.raises(ValueError, match="runs none of the variants"):
        best_variant(VARIANTS, cpu_mask({**V2, "popcnt": False}))
