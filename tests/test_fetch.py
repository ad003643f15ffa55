"""The lock file and the fetcher without a network: pins, verification, unpacking, locking, interruption."""

from __future__ import annotations

import io
import json
import lzma
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import pytest
import zstandard

from kiln.toolchain import debian, fetch, wheels
from kiln.toolchain.errors import FetchError
from kiln.toolchain.lockfile import DEFAULT_LOCK, Artifact, Lock, load, rewrite_pin


def test_lock_pins_everything_without_hosts():
    lock = load()
    assert len(lock.artifacts) > 50
    for artifact in lock.artifacts:
        assert len(artifact.sha256) == 64 and artifact.size > 0 and artifact.version, artifact.label
        suffix = {"wheel": ".whl", "deb": ".deb", "dsc": ".orig.tar.xz"}[artifact.kind]
        assert artifact.filename.endswith(suffix), artifact.label
    text = DEFAULT_LOCK.read_text()
    assert "://" not in text and "http" not in text.lower()
    names = {a.name for a in lock.artifacts}
    assert {"libamdhip64-5", "libhsa-runtime64-1", "libhsakmt1", "libamd-comgr2", "librocsparse0", "librocrand1",
            "rocm-device-libs", "nvidia-cuda-runtime", "nvidia-cublas", "nvidia-cuda-nvrtc", "nvidia-nvjitlink",
            "nvidia-cuda-nvcc-cu12", "libtpu", "libc6", "libgcc-s1", "libstdc++6"} <= names
    for base in ("libc6", "libgcc-s1", "libstdc++6"):
        assert lock.find(base, "amd64").arch == "amd64" and lock.find(base, "arm64").arch == "arm64"


def test_vendor_facts():
    rocm = load().vendor("rocm")
    assert rocm.entry == ("libhsa-runtime64.so.1",)
    assert any(d.by == "libamdhip64.so.5" and d.opens == "libamd_comgr.so.2" and not d.optional for d in rocm.dlopen)
    assert any("amdgpu.ids" in p for d in rocm.data for p in d.paths)
    assert load().vendor("tpu").entry == ("libtpu.so",)


def test_provides_matches_whole_words():
    lock = load()
    rocm = {a.name for a in lock.matching("rocm", "amd64")}
    assert {"libhsa-runtime64-1", "libamdhip64-5", "librocsparse0", "libdrm-common"} <= rocm
    assert {a.name for a in lock.matching("rocm runtime", "amd64")} < rocm
    assert lock.matching("roc", "amd64") == []
    assert "librocsparse0" not in {a.name for a in lock.matching("rocm", "arm64")}  # Debian builds it for amd64 only
    assert {a.name for a in lock.matching("base", "arm64")} == {"libc6", "libgcc-s1", "libstdc++6"}


def test_missing_pins_are_fetch_errors():
    with pytest.raises(FetchError, match="libtpu has no pin for arm64 in lock.toml \\(pinned: amd64\\)"):
        fetch.ensure("libtpu", "arm64")
    with pytest.raises(FetchError, match="no-such-package is not in lock.toml"):
        fetch.ensure("no-such-package")
    with pytest.raises(FetchError, match="no pinned artifact provides 'quantum'"):
        fetch.ensure_set("quantum", "amd64")


def test_rewrite_pin_keeps_everything_else(tmp_path):
    path = tmp_path / "lock.toml"
    path.write_text(DEFAULT_LOCK.read_text())
    old = load(path).find("libnuma1", "arm64")
    rewrite_pin(path, old.pinned("9.9-1", "libnuma1_9.9-1_arm64.deb", 123, "0" * 64))
    new_text, old_text = path.read_text().splitlines(), DEFAULT_LOCK.read_text().splitlines()
    assert len(new_text) == len(old_text)
    assert sum(a != b for a, b in zip(new_text, old_text)) == 4  # version, filename, size, sha256
    assert load(path).find("libnuma1", "arm64").version == "9.9-1"
    assert load(path).find("libnuma1", "amd64") == load().find("libnuma1", "amd64")


def test_wheel_tags_come_from_the_pinned_file_name():
    assert wheels.tag_options("libtpu-0.0.52-cp311-cp311-manylinux_2_31_x86_64.whl") == [
        "--platform=manylinux_2_31_x86_64", "--python-version=3.11", "--implementation=cp", "--abi=cp311"]
    assert wheels.tag_options("nvidia_cublas-13.10.0.20-py3-none-manylinux1_x86_64.manylinux_2_5_x86_64.whl") == [
        "--platform=manylinux1_x86_64", "--platform=manylinux_2_5_x86_64"]
    newest = wheels.platform_options("arm64")
    assert newest[0] == "--platform=manylinux_2_36_aarch64" and "--platform=manylinux2014_aarch64" in newest


def fake_artifact(path: Path, kind: str = "deb", **changes) -> Artifact:
    fields = {"name": "demo", "kind": kind, "arch": "amd64", "version": "1.0", "filename": path.name,
              "size": path.stat().st_size, "sha256": fetch.sha256_file(path), "provides": "demo"}
    return Artifact(**{**fields, **changes})


def test_verify_names_the_artifact_and_both_digests(tmp_path):
    archive = tmp_path / "demo_1.0_amd64.deb"
    archive.write_bytes(b"x" * 100)
    good = fake_artifact(archive)
    fetch.verify(good, archive)
    archive.write_bytes(b"y" * 100)
    with pytest.raises(FetchError) as mismatch:
        fetch.verify(good, archive)
    assert str(mismatch.value) == (f"demo 1.0 (deb, amd64): sha256 mismatch for demo_1.0_amd64.deb: "
                                   f"expected {good.sha256}, got {fetch.sha256_file(archive)}")
    archive.write_bytes(b"x" * 60)
    with pytest.raises(FetchError, match="truncated download of demo_1.0_amd64.deb: 60 of 100 bytes"):
        fetch.verify(good, archive)
    with pytest.raises(FetchError, match="delivered demo_1.0_amd64.deb, the pin is other.deb"):
        fetch.verify(fake_artifact(archive, filename="other.deb"), archive)


def make_deb(path: Path, compression: str = "xz") -> Path:
    """A minimal .deb: a file, a relative and an absolute symlink, a directory."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for name, kind, target in [("./usr/lib/demo/", tarfile.DIRTYPE, ""),
                                   ("./usr/lib/demo/libdemo.so.1.0", None, ""),
                                   ("./usr/lib/demo/libdemo.so.1", tarfile.SYMTYPE, "libdemo.so.1.0"),
                                   ("./lib64/ld-demo.so", tarfile.SYMTYPE, "/usr/lib/demo/libdemo.so.1.0")]:
            info = tarfile.TarInfo(name)
            payload = b"\x7fELF demo" if kind is None else b""
            info.type, info.linkname, info.size = kind or tarfile.REGTYPE, target, len(payload)
            tar.addfile(info, io.BytesIO(payload))
    compressed = lzma.compress(data.getvalue()) if compression == "xz" else zstandard.compress(data.getvalue())
    members = [(b"debian-binary", b"2.0\n"), (b"control.tar.xz", lzma.compress(b"")),
               (f"data.tar.{compression}".encode(), compressed)]
    blob = b"!<arch>\n"
    for name, content in members:
        blob += name.ljust(16) + b"0".ljust(12) + b"0".ljust(6) * 2 + b"100644".ljust(8)
        blob += str(len(content)).encode().ljust(10) + b"`\n" + content + (b"\n" if len(content) % 2 else b"")
    path.write_bytes(blob)
    return path


@pytest.mark.parametrize("compression", ["xz", "zst"])
def test_deb_unpacks_without_dpkg(tmp_path, compression):
    deb = make_deb(tmp_path / "demo_1.0_amd64.deb", compression)
    debian.extract(deb, tmp_path / "tree")
    lib = tmp_path / "tree/usr/lib/demo"
    assert (lib / "libdemo.so.1.0").read_bytes() == b"\x7fELF demo"
    assert (lib / "libdemo.so.1").readlink() == Path("libdemo.so.1.0")
    assert (tmp_path / "tree/lib64/ld-demo.so").readlink() == Path("/usr/lib/demo/libdemo.so.1.0")  # verbatim



@pytest.mark.parametrize("compression", ["xz"])
def test_deb_unpacks_on_a_python_without_tar_filters(tmp_path, monkeypatch, compression):
    monkeypatch.delattr(tarfile, "data_filter")  # Debian 12's python3.11 (3.11.2) predates them
    test_deb_unpacks_without_dpkg(tmp_path, compression)


def _source_tarball(path: Path, name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.size = kind, link, 0 if link else 2
        tar.addfile(info, io.BytesIO(b"ok"))
    return path


@pytest.mark.parametrize("filters", [True, False], ids=["tar-filters", "no-tar-filters"])
@pytest.mark.parametrize("name, kind, link", [("../outside.c", tarfile.REGTYPE, ""),
                                              ("src/up", tarfile.SYMTYPE, "../../etc"),
                                              ("src/abs", tarfile.SYMTYPE, "/etc/passwd")])
def test_source_tarball_members_that_escape_are_refused(tmp_path, monkeypatch, filters, name, kind, link):
    if not filters:
        monkeypatch.delattr(tarfile, "data_filter")
    tarball = _source_tarball(tmp_path / "demo.orig.tar.gz", name, kind, link)
    with pytest.raises((FetchError, tarfile.FilterError) if filters else FetchError):
        debian.extract_source(tarball, tmp_path / "tree")
    assert not (tmp_path / "outside.c").exists()


@pytest.mark.parametrize("filters", [True, False], ids=["tar-filters", "no-tar-filters"])
def test_source_tarball_unpacks_below_the_destination(tmp_path, monkeypatch, filters):
    if not filters:
        monkeypatch.delattr(tarfile, "data_filter")
    for name in ("demo-1.0/demo.c", "/demo-1.0/abs.c"):
        debian.extract_source(_source_tarball(tmp_path / "demo.orig.tar.gz", name), tmp_path / "tree")
    assert [(tmp_path / f"tree/demo-1.0/{n}").read_bytes() for n in ("demo.c", "abs.c")] == [b"ok", b"ok"]

def test_wheel_unpack_keeps_executable_bits(tmp_path):
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        tool = zipfile.ZipInfo("demo/bin/ptxas")
        tool.external_attr = 0o755 << 16
        archive.writestr(tool, "#!/bin/sh\n")
        archive.writestr("demo/lib/data.txt", "data")
    wheels.extract(wheel, tmp_path / "tree")
    assert (tmp_path / "tree/demo/bin/ptxas").stat().st_mode & 0o111
    assert not (tmp_path / "tree/demo/lib/data.txt").stat().st_mode & 0o111


@pytest.fixture
def fake_apt(tmp_path, monkeypatch):
    """A throwaway cache and an apt that hands out one local .deb, counting downloads."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    deb = make_deb(tmp_path / "demo_1.0_amd64.deb")
    artifact = fake_artifact(deb)
    calls = []

    def download(pinned: Artifact, directory: Path) -> Path:
        calls.append(pinned.name)
        time.sleep(0.2)  # long enough for concurrent callers to pile up on the lock
        directory.mkdir(parents=True, exist_ok=True)
        (directory / deb.name).write_bytes(deb.read_bytes())
        return directory / deb.name

    monkeypatch.setattr(debian, "download", download)
    return Lock(tmp_path / "lock.toml", (artifact,), {}), artifact, calls


def test_ensure_unpacks_once_and_records_identity(fake_apt):
    lock, artifact, calls = fake_apt
    tree = fetch.ensure("demo", lock=lock)
    assert tree == fetch.external_root() / artifact.sha256
    assert (tree / "usr/lib/demo/libdemo.so.1.0").is_file()
    assert json.loads((tree / fetch.ARTIFACT_FILE).read_text())["version"] == "1.0"
    assert fetch.ensure("demo", lock=lock) == tree and calls == ["demo"]


def test_concurrent_ensure_downloads_once(fake_apt):
    lock, _, calls = fake_apt
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(fetch.ensure("demo", lock=lock))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1 and len(results) == 4 and calls == ["demo"]


def test_interrupted_unpack_leaves_nothing_trusted(fake_apt, monkeypatch):
    lock, artifact, _ = fake_apt
    real_extract = debian.extract

    def killed(deb: Path, destination: Path) -> None:
        real_extract(deb, destination)
        raise KeyboardInterrupt  # after writing files, before the rename

    monkeypatch.setattr(debian, "extract", killed)
    with pytest.raises(KeyboardInterrupt):
        fetch.ensure("demo", lock=lock)
    root = fetch.external_root()
    assert not (root / artifact.sha256).exists()
    (root / f".{artifact.sha256}.left-by-a-killed-process").mkdir()
    monkeypatch.setattr(debian, "extract", real_extract)
    assert (fetch.ensure("demo", lock=lock) / "usr/lib/demo/libdemo.so.1").is_symlink()
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []
