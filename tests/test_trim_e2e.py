"""Trimming the real pinned vendor sets, checked against the dynamic linker itself (`ld.so --list` with
the library path set to the trees only), and a trimmed ROCm bundle loaded by a program built with zig.

The vendor sets come from the real cache ($XDG_CACHE_HOME/kiln/external), shared with every later
run: the full Debian ROCm set is ~150 MB of .debs (~1 minute to fetch and unpack the first time).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from tool_skips import needs_tool

from kiln.runtime_trim import closure, isa_table
from kiln.runtime_trim.elf import read_elf
from kiln.runtime_trim.sysroot import Sysroot
from kiln.runtime_trim.trim import trim
from kiln.toolchain import fetch
from kiln.toolchain.lockfile import Artifact, Lock, load

pytestmark = [pytest.mark.e2e,
              needs_tool("apt-get (pinned .debs come through apt-get)", shutil.which("apt-get") is not None)]
LOADER = "/lib64/ld-linux-x86-64.so.2"
LIBRARY_DIRS = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib", "usr/lib")
PROBE = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
static int show(struct dl_phdr_info *info, size_t size, void *data) {
    if (info->dlpi_name[0]) printf("loaded %s\n", info->dlpi_name);
    return 0;
}
int main(void) {
    void *hsa = dlopen("libhsa-runtime64.so.1", RTLD_NOW);  /* found through RUNPATH $ORIGIN/../lib/rocm */
    if (!hsa) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 1; }
    int (*hsa_init)(void) = (int (*)(void))dlsym(hsa, "hsa_init");
    if (!hsa_init) { fprintf(stderr, "no hsa_init\n"); return 2; }
    printf("hsa_init returned 0x%x\n", hsa_init());  /* no GPU here: an error status, but no crash */
    dl_iterate_phdr(show, NULL);
    return 0;
}
"""


@pytest.fixture(scope="module")
def rocm_trees() -> list[Path]:
    return fetch.vendor_trees("rocm", "amd64")


def find(trees: list[Path], name: str) -> Path:
    """A file by name, found by walking the trees (independently of the trimmer's own search)."""
    hits = sorted(p for t in trees for p in t.rglob(name) if p.is_file())
    assert hits, name
    return hits[0]


def ld_so_closure(files: list[Path], trees: list[Path]) -> set[Path]:
    """What the real dynamic linker loads from the trees for `files`, with only the trees on its path."""
    library_path = ":".join(str(t / d) for t in trees for d in LIBRARY_DIRS if (t / d).is_dir())
    loaded = {f.resolve() for f in files}
    for file in files:
        listing = subprocess.run([LOADER, "--library-path", library_path, "--list", str(file)], env={},
                                 capture_output=True, text=True, check=True).stdout
        for match in re.finditer(r"^\s*\S+ => (\S+) \(", listing, re.MULTILINE):
            path = Path(match.group(1)).resolve()
            if any(path.is_relative_to(t.resolve()) for t in trees):
                loaded.add(path)
    return loaded


def trimmer_closure(trees: list[Path], platform: str, entries: list[str]) -> set[Path]:
    result = closure.compute(load().vendor(platform), Sysroot(trees), [], entries, [])
    return {k.located.real.resolve() for k in result.kept.values() if k.info}


def test_hsa_closure_matches_the_dynamic_linker(rocm_trees):
    expected = ld_so_closure([find(rocm_trees, "libhsa-runtime64.so.1")], rocm_trees)
    assert trimmer_closure(rocm_trees, "rocm", ["libhsa-runtime64.so.1"]) == expected
    assert {p.name.split(".so")[0] for p in expected} == {"libhsa-runtime64", "libhsakmt", "libelf-0.188", "libz",
                                                         "libdrm", "libdrm_amdgpu", "libnuma", "libstdc++", "libgcc_s"}


def test_hip_closure_brings_in_comgr_through_the_dlopen_manifest(rocm_trees):
    hip, comgr = find(rocm_trees, "libamdhip64.so.5"), find(rocm_trees, "libamd_comgr.so.2")
    assert "libamd_comgr.so.2" not in read_elf(hip).needed  # HIP dlopens it: DT_NEEDED cannot see it
    expected = ld_so_closure([hip, comgr], rocm_trees)
    assert any(p.name.startswith("libLLVM-15") for p in expected)
    assert trimmer_closure(rocm_trees, "rocm", ["libamdhip64.so.5"]) == expected


def test_tpu_closure_matches_the_dynamic_linker():
    trees = fetch.vendor_trees("tpu", "amd64")
    assert trimmer_closure(trees, "tpu", ["libtpu.so"]) == ld_so_closure([find(trees, "libtpu.so")], trees)


@pytest.fixture(scope="module")
def rocm_bundle(rocm_trees, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("rocm-bundle")
    launcher = out / "bin" / "probe"
    launcher.parent.mkdir()
    source = out / "probe.c"
    source.write_text(PROBE)
    subprocess.run([sys.executable, "-m", "ziglang", "cc", "-target", "x86_64-linux-gnu.2.28", str(source), "-o",
                    str(launcher), "-ldl", "-Wl,-rpath,$ORIGIN/../lib/rocm"], check=True, capture_output=True)
    return out, trim("rocm", ["gfx90a"], [launcher], [], rocm_trees, out, load())


def test_rocm_bundle_is_small(rocm_bundle):
    _, report = rocm_bundle
    assert report["removed_percent"] >= 95.0, report["summary"]
    assert report["full_set"]["bytes"] > 1_000_000_000
    assert {k["path"] for k in report["kept"]} >= {"lib/rocm/libhsa-runtime64.so.1", "share/rocm/libdrm/amdgpu.ids"}
    assert report["glibc_floor"]["version"] == "2.36" and report["glibc_floor"]["set_by"] == "libstdc++.so.6"
    kept = {k["path"]: k for k in report["kept"]}
    hsa = kept["lib/rocm/libhsa-runtime64.so.1"]
    assert hsa["package"]["version"].startswith("6.1")
    # built against glibc 2.41, the runtime's C23 imports alone would set the floor to 2.38
    assert hsa["c23_repointed"] == ["__isoc23_sscanf", "__isoc23_strtol", "__isoc23_strtoul", "__isoc23_strtoull"]
    with (rocm_bundle[0] / hsa["path"]).open("rb") as handle:
        imports = {s.name for s in ELFFile(handle).get_section_by_name(".dynsym").iter_symbols()}
    assert "__isoc99_sscanf" in imports and not any(name.startswith("__isoc23_") for name in imports)


def test_trimmed_rocm_bundle_loads_and_calls_hsa_init(rocm_bundle):
    out, report = rocm_bundle
    done = subprocess.run([str(out / "bin" / "probe")], env={}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "hsa_init returned 0x" in done.stdout
    loaded = {Path(line.split(" ", 1)[1]).resolve() for line in done.stdout.splitlines() if line.startswith("loaded /")}
    bundled = {(out / k["path"]).resolve() for k in report["kept"] if k["kind"] == "library"}
    assert bundled <= loaded  # every bundled library was loaded from the bundle ...
    for path in loaded - bundled:  # ... and nothing else but the host's glibc
        assert closure.host_provided(path.name, ()), path


def test_every_default_gfx_arch_is_in_the_runtimes_isa_table(rocm_bundle, rocm_trees, tmp_path):
    out, _ = rocm_bundle
    probe = out / "bin" / "probe"
    trim("rocm", ["gfx90a", "gfx942", "gfx1100"], [probe], [], rocm_trees, tmp_path, load())
    with pytest.raises(closure.ClosureError) as refused:
        trim("rocm", ["gfx942", "gfx1200"], [probe], [], rocm_trees, tmp_path, load())
    message = str(refused.value)
    assert message.startswith("gfx1200 is not in the ISA table of the bundled libhsa-runtime64.so.1 "
                              "(libhsa-runtime64-1 6.1.2-3), so it would never find that GPU")


def test_a_bundled_library_without_a_needed_version_is_refused(rocm_bundle, rocm_trees, tmp_path):
    """bookworm's libstdc++ ahead of trixie's in the trees: the bundle would not load, so no bundle."""
    old_cxx = fetch.ensure("libstdc++6", "amd64", "bookworm")
    with pytest.raises(closure.ClosureError) as refused:
        trim("rocm", ["gfx90a"], [rocm_bundle[0] / "bin" / "probe"], [], [old_cxx, *rocm_trees], tmp_path, load())
    assert str(refused.value).startswith("libhsa-runtime64.so.1 needs GLIBCXX_3.4.32 from libstdc++.so.6, which the "
                                         "bundled copy (libstdc++6 12.2.0-14+deb12u1) does not define")


def test_debian_12s_rocm_runtime_lacks_mi300_and_rdna3():
    """Why the runtime comes from Debian 13: bookworm's ROCm 5.2.3 ISA table stops at gfx1035."""
    bookworm = Artifact("libhsa-runtime64-1", "deb", "amd64", "5.2.3-3", "libhsa-runtime64-1_5.2.3-3_amd64.deb",
                        439400, "9b633756945b16124376b274dbc681e4022c2b9704b8bdfa04637b09c7bfad93", "rocm runtime",
                        "bookworm")
    tree = fetch.ensure(bookworm.name, lock=Lock(Path("old.toml"), (bookworm,), {}))
    known = isa_table.known_isas(next(tree.rglob("libhsa-runtime64.so.1.*")))
    assert {"gfx90a", "gfx1030", "gfx1035"} <= known and not known & {"gfx942", "gfx1100"}


@pytest.fixture(scope="module")
def cuda_trees() -> list[Path]:
    return fetch.vendor_trees("cuda", "amd64")


def test_cuda_bundles_with_and_without_cublaslt(cuda_trees, tmp_path):
    plain = trim("cuda", [], [], [], cuda_trees, tmp_path / "plain", load())
    assert plain["kept"] == [] and plain["removed_percent"] == 100.0
    blas = trim("cuda", [], [], ["libcublasLt.so.13"], cuda_trees, tmp_path / "blas", load())
    assert {k["name"] for k in blas["kept"]} == {"libcublasLt.so.13", "libnvrtc.so.13", "libnvrtc-builtins.so.13.5",
                                                 "libstdc++.so.6", "libgcc_s.so.1"}  # the last two for the builtins
    assert all(read_elf(tmp_path / "blas" / k["path"]).runpath == ("$ORIGIN",) for k in blas["kept"])
    assert os.path.getsize(tmp_path / "blas/lib/cuda/libcublasLt.so.13") > 100_000_000
