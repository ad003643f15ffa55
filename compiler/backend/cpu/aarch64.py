"""aarch64: one NEON baseline variant (32 vector registers: a 6 x 16 tile fits)."""
from .target import Host, Variant

HOST = Host(
    name="linux-arm64",
    triple="aarch64-unknown-linux-gnu",
    cpu="generic",
    features="+neon",
    variants=(Variant("aarch64", "generic", "+neon", 0, 4, 4, True),),
)
