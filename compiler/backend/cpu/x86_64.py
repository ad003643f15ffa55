"""x86_64: three feature levels in one object, chosen by the launcher with CPUID."""
from .target import Host, Variant

SSE42, AVX2, FMA, AVX512 = 1, 2, 4, 8

HOST = Host(
    name="linux-amd64",
    triple="x86_64-unknown-linux-gnu",
    cpu="x86-64",
    features="",
    variants=(
        Variant("x86-64-v4", "x86-64-v4", "", SSE42 | AVX2 | FMA | AVX512, 16, 4, True, wide=True),
        Variant("x86-64-v3", "x86-64-v3", "", SSE42 | AVX2 | FMA, 8, 2, True),
        Variant("x86-64-v2", "x86-64-v2", "", SSE42, 4, 2, False),
    ),
)
