"""Runtime trimming on a small vendor set built here with zig: linker search rules, dlopen and data
manifests, host-provided libraries, the bundle, the report, `why` and the SBOM."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from kiln.runtime_trim import closure, report, sbom
from kiln.runtime_trim.elf import read_elf
from kiln.runtime_trim.sysroot import Sysroot
from kiln.runtime_trim.trim import trim
from kiln.toolchain.lockfile import load

LIB = "usr/lib/x86_64-linux-gnu"
LOCK = """
[vendor.demo]
sets = ["demo"]
entry = ["libentry.so.1"]
dlopen = [
    { by = "libentry.so.1", opens = "libplugin.so.1" },
    { by = "libentry.so.1", opens = "libgone.so.1", optional = true },
]
data = [{ by = "libplugin.so.1", paths = ["usr/share/demo/table.dat"] }]
arch_data = [{ by = "libplugin.so.1", paths = ["usr/lib/*/demo/kernels_{isa}.bin"] }]
"""


def zig(output: Path, source: str, *flags: str, target: str = "x86_64-linux-gnu.2.28") -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:  # sources stay out of the package trees
        c_file = Path(scratch, output.name.split(".")[0] + ".c")
        c_file.write_text(source)
        subprocess.run([sys.executable, "-m", "ziglang", "cc", "-target", target, "-o", str(output), str(c_file),
                        *flags], check=True, capture_output=True)
    return output


def shared(tree: Path, rel: str, soname: str, source: str, *flags: str, **kw) -> Path:
    return zig(tree / rel, source, "-shared", "-fPIC", f"-Wl,-soname,{soname}", *flags, **kw)


def extra_tree(tree: Path) -> Path:
    """A second package: libdep needs libdeep, both in a private directory outside the library path."""
    private = tree / "opt/demo/lib"
    shared(tree, "opt/demo/lib/libdeep.so.1", "libdeep.so.1", "int deep(void) { return 3; }")
    shared(tree, "opt/demo/lib/libdep.so.1", "libdep.so.1", "int deep(void);\nint dep(void) { return deep(); }",
           f"-L{private}", "-l:libdeep.so.1")
    return tree


def core_tree(tree: Path, extra: Path, entry_search: str) -> Path:
    """The vendor's main package. libentry finds libdep through its RPATH or RUNPATH (`entry_search`);
    libdep then finds libdeep only through an inherited RPATH (a RUNPATH never is)."""
    shared(tree, "usr/lib/libdep.so.1", "libdep.so.1", "int dep(void) { return 0; }", target="aarch64-linux-gnu.2.28")
    dtags = "--disable-new-dtags" if entry_search == "rpath" else "--enable-new-dtags"
    shared(tree, f"{LIB}/libentry.so.1.2.3", "libentry.so.1",
           '#include <math.h>\nint dep(void);\nconst char *names[] = {"libplugin.so.1", "libmystery.so.7"};\n'
           "double entry(double x) { return sqrt(x) + dep(); }", f"-L{extra / 'opt/demo/lib'}", "-l:libdep.so.1",
           "-lm", f"-Wl,{dtags}", "-Wl,-rpath,$ORIGIN/../../../opt/demo/lib")
    (tree / LIB / "libentry.so.1").symlink_to("libentry.so.1.2.3")
    shared(tree, f"{LIB}/libplugin.so.1.0", "libplugin.so.1", "int plugin(void) { return 1; }")
    (tree / LIB / "libplugin.so.1").symlink_to(f"/{LIB}/libplugin.so.1.0")  # absolute: inside the tree, not the host
    shared(tree, f"{LIB}/libunused.so.1", "libunused.so.1", "int unused(void) { return 0; }")
    for rel, text in [("usr/share/demo/table.dat", "table"), (f"{LIB}/demo/kernels_90a.bin", "a"),
                      (f"{LIB}/demo/kernels_942.bin", "b"), ("usr/share/doc/demo/README", "docs")]:
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(text)
    (tree / ".kiln-artifact.json").write_text(json.dumps(
        {"name": "demo-core", "version": "1.0-1", "kind": "deb", "arch": "amd64", "sha256": "ab" * 32}))
    return tree


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    lock_path = root / "lock.toml"
    lock_path.write_text(LOCK)
    launcher = zig(root / "bin/launcher", '#include <dlfcn.h>\nint main(void) { return !dlopen("libentry.so.1", 2); }',
                   "-ldl")
    extra = extra_tree(root / "extra")
    return {"rpath": [core_tree(root / "rpath", extra, "rpath"), extra],
            "runpath": [core_tree(root / "runpath", extra, "runpath"), extra],
            "lock": load(lock_path), "launcher": launcher}


def compute(demo, trees: str = "rpath", archs=("gfx90a",)) -> closure.Closure:
    return closure.compute(demo["lock"].vendor("demo"), Sysroot(demo[trees]), [demo["launcher"]], ["libentry.so.1"],
                           list(archs))


def test_closure_follows_needed_dlopen_and_data(demo):
    result = compute(demo)
    assert sorted(result.kept) == sorted(["libentry.so.1", "libdep.so.1", "libdeep.so.1", "libplugin.so.1",
                                          "usr/share/demo/table.dat", f"{LIB}/demo/kernels_90a.bin"])
    chain = [(s.name, s.how) for s in result.kept["libdeep.so.1"].chain]
    assert chain == [("launcher", "root"), ("libentry.so.1", "entry"), ("libdep.so.1", "DT_NEEDED"),
                     ("libdeep.so.1", "DT_NEEDED")]
    assert result.kept["libplugin.so.1"].chain[-1].how == "dlopen"
    assert result.kept["libplugin.so.1"].located.real.name == "libplugin.so.1.0"  # absolute link kept in the tree
    assert result.kept["libdep.so.1"].info.machine == "EM_X86_64"  # the aarch64 copy earlier in the path is skipped
    assert {"libc.so.6", "libm.so.6", "libdl.so.2"} <= set(result.host)
    assert result.absent_optional == [("libgone.so.1", "libentry.so.1")]
    assert ("libmystery.so.7", "libentry.so.1") in result.possible_dlopen


def test_runpath_is_not_inherited(demo):
    with pytest.raises(closure.ClosureError, match=r"libdep.so.1 needs libdeep.so.1 \(DT_NEEDED\).*"
                                                   r"chain: launcher -> libentry.so.1 -> libdep.so.1"):
        compute(demo, "runpath")


def test_arch_data_only_for_requested_archs(demo):
    assert f"{LIB}/demo/kernels_942.bin" in compute(demo, archs=["gfx942"]).kept
    assert not any("kernels" in name for name in compute(demo, archs=[]).kept)
    missing = compute(demo, archs=["gfx1100"]).missing_data
    assert missing == ["gfx1100: no usr/lib/*/demo/kernels_1100.bin (opened by libplugin.so.1)"]


def test_host_provided_set():
    for name in ("libc.so.6", "libm.so.6", "libpthread.so.0", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1",
                 "libcuda.so.1", "libnvidia-ml.so.1", "libnss_dns.so.2"):
        assert closure.host_provided(name, ()), name
    assert closure.host_provided("libstdc++.so.6", ()) is None
    assert closure.host_provided("libstdc++.so.6", ("libstdc++.so.*",))


@pytest.fixture(scope="module")
def trimmed(demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    result = trim("demo", ["gfx90a"], [demo["launcher"]], [], demo["rpath"], out, demo["lock"])
    return out, result


def test_bundle_has_origin_runpath_and_loads_inside_itself(trimmed):
    out, _ = trimmed
    libraries = sorted((out / "lib/demo").iterdir())
    assert [p.name for p in libraries] == ["libdeep.so.1", "libdep.so.1", "libentry.so.1", "libplugin.so.1"]
    assert (out / "share/demo/demo/table.dat").read_text() == "table"
    for library in libraries:
        info = read_elf(library)
        assert info.runpath == ("$ORIGIN",) and info.rpath == ()
        listing = subprocess.run(["/lib64/ld-linux-x86-64.so.2", "--list", str(library)], capture_output=True,
                                 text=True, check=True, env={}).stdout
        for line in listing.splitlines():
            if "=>" in line and not closure.host_provided(line.split()[0], ()):
                assert str(out / "lib/demo") in line, line


def test_report_and_text(trimmed):
    out, result = trimmed
    saved = json.loads((out / "trim-report.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert saved["full_set"]["files"] == 10  # 6 libraries and 4 data files; symlinks are not counted
    entry = next(k for k in saved["kept"] if k["name"] == "libentry.so.1")
    assert entry["package"]["name"] == "demo-core" and entry["source"] == f"{LIB}/libentry.so.1.2.3"
    assert saved["glibc_floor"]["version"].startswith("2.")
    assert saved["summary"].startswith("demo: kept 6 of 10 files")
    assert "removed" in saved["summary"] and "needs glibc >= 2." in saved["summary"]
    text = (out / "trim-report.txt").read_text()
    assert saved["summary"] in text and "libmystery.so.7 (in libentry.so.1)" in text
    assert any(left["path"].endswith("libunused.so.1") for left in saved["not_kept"])


def test_why(trimmed):
    report_path = trimmed[0] / "trim-report.json"
    why = report.explain(report_path, "libdeep.so.1").splitlines()
    assert why[0].startswith("lib/demo/libdeep.so.1 is in the demo bundle (") and why[0].endswith(" kB):")
    assert why[1:] == ["  launcher", "  -> libentry.so.1  [entry]", "  -> libdep.so.1  [DT_NEEDED]",
                       "  -> libdeep.so.1  [DT_NEEDED]"]
    assert "glibc family" in report.explain(report_path, "libm.so.6")
    assert "nothing the launcher loads needs it" in report.explain(report_path, "libunused.so.1")
    assert "not in its vendor set" in report.explain(report_path, "libelsewhere.so.9")


def test_sbom(trimmed):
    _, result = trimmed
    pins = [sbom.Component("mnist.onnx", "", "cd" * 32, "model"), sbom.Component("ziglang", "0.17.1", "ef" * 32,
                                                                                 "toolchain")]
    doc = sbom.document("mnist", [result], pins)
    assert doc == sbom.document("mnist", [result], list(reversed(pins)))  # deterministic
    assert doc["spdxVersion"] == "SPDX-2.3" and doc["documentNamespace"].startswith("urn:kiln:spdx:mnist:")
    assert len(doc["files"]) == len(result["kept"])
    assert all({c["algorithm"] for c in f["checksums"]} == {"SHA1", "SHA256"} for f in doc["files"])
    vendor = next(p for p in doc["packages"] if p["name"] == "demo-core")
    assert vendor["versionInfo"] == "1.0-1"
    assert vendor["externalRefs"][0]["referenceLocator"] == "pkg:deb/debian/demo-core@1.0-1?arch=amd64"
    kinds = {(r["relationshipType"]) for r in doc["relationships"]}
    assert kinds == {"DESCRIBES", "CONTAINS", "GENERATED_FROM", "BUILD_TOOL_OF"}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kiln.runtime_trim", *args], capture_output=True, text=True)


def test_cli_trim_why_and_sbom(demo, tmp_path):
    lock = tmp_path / "lock.toml"
    lock.write_text(LOCK)
    out = tmp_path / "out"
    for trees, expected in (("runpath", 1), ("rpath", 0)):
        tree_args = [arg for tree in demo[trees] for arg in ("--vendor-tree", str(tree))]
        done = run_cli("trim", "--platform", "demo", "--arch", "gfx942", "--lock", str(lock),
                       "--root", str(demo["launcher"]), *tree_args, "--out", str(out))
        assert done.returncode == expected, done.stderr
    assert done.stdout.startswith("demo: kept 6 of 10 files") and done.stdout.count("\n") == 1
    assert (out / "share/demo/demo/kernels_942.bin").exists() and (out / "trim-report.txt").exists()
    why = run_cli("why", "--report", str(out / "trim-report.json"), "libplugin.so.1")
    assert why.stdout.splitlines()[-1] == "  -> libplugin.so.1  [dlopen]"
    model = tmp_path / "model.onnx"
    model.write_bytes(b"onnx")
    done = run_cli("sbom", "--name", "demo", "--report", str(out / "trim-report.json"), "--model", str(model),
                   "--pin", f"libc6:amd64==2.36-9:{'ab' * 32}", "--pin", "ziglang==0.17.1@linux-arm64",
                   "--out", str(tmp_path / "sbom.json"))
    assert done.returncode == 0, done.stderr
    packages = {p["name"]: p for p in json.loads((tmp_path / "sbom.json").read_text())["packages"]}
    assert set(packages) == {"demo", "demo-core", "model.onnx", "libc6:amd64", "ziglang"}
    assert packages["libc6:amd64"]["checksums"] == [{"algorithm": "SHA256", "checksumValue": "ab" * 32}]
    assert packages["ziglang"]["comment"] == "kiln toolchain, built code for linux-arm64"
    assert "checksums" not in packages["ziglang"]


def test_cli_errors_are_one_line(demo, tmp_path):
    lock = tmp_path / "lock.toml"
    lock.write_text(LOCK)
    trees = [arg for tree in demo["runpath"] for arg in ("--vendor-tree", str(tree))]
    done = run_cli("trim", "--platform", "demo", "--lock", str(lock), "--root", str(demo["launcher"]), *trees,
                   "--out", str(tmp_path / "out"))
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "libdep.so.1 needs libdeep.so.1" in done.stderr
    done = run_cli("trim", "--platform", "quantum", "--lock", str(lock), *trees, "--out", str(tmp_path / "out"))
    assert done.stderr == "runtime_trim: error: lock.toml has no [vendor.quantum] table (have: demo)\n"
    for pin, form in (("ziglang==0.17.1@", "NAME==VERSION@TARGET"), ("ziglang==0.17.1:ab", "NAME==VERSION:SHA256")):
        done = run_cli("sbom", "--name", "demo", "--pin", pin, "--out", str(tmp_path / "sbom.json"))
        assert done.returncode == 1 and done.stderr.count("\n") == 1 and form in done.stderr, done.stderr


def test_runtime_trim_never_imports_the_build_engine():
    package = Path(closure.__file__).parent
    for source in package.glob("*.py"):
        assert "build_rules" not in source.read_text(), source.name
