"""What the emitter needs to know about one code variant of a host."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    name: str                 # descriptor name, e.g. "x86-64-v3"
    cpu: str                  # LLVM target-cpu
    features: str             # LLVM target-features ("" = the cpu's own)
    required_features: int    # enum kiln_cpu_feature mask checked by the launcher
    vector_width: int         # f32 lanes per native vector register
    tile_vectors: int         # vectors per GEMM micro-tile row (tile = 6 x width*vectors)
    fma: bool                 # fused multiply-add available (else mul + add)
    wide: bool = False        # 512-bit vectors: tell LLVM to really use them

    @property
    def symbol(self) -> str:
        return self.name.replace("-", "_")

    def function_attributes(self) -> list[str]:
        attrs = [f'"target-cpu"="{self.cpu}"']
        if self.features:
            attrs.append(f'"target-features"="{self.features}"')
        if self.wide:
            attrs += ['"min-legal-vector-width"="512"', '"prefer-vector-width"="512"']
        return attrs


@dataclass(frozen=True)
class Host:
    name: str                 # "linux-amd64"
    triple: str
    cpu: str                  # baseline cpu of the target machine
    features: str
    variants: tuple[Variant, ...]   # best first
