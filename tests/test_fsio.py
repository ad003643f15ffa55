import os
import threading
from pathlib import Path

import pytest

from kiln.toolchain.fsio import atomic_path, atomic_write, atomic_write_files, human_bytes


def test_failure_mid_write_keeps_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_modes(tmp_path: Path) -> None:
    atomic_write(tmp_path / "ro", b"x", 0o444)
    assert (tmp_path / "ro").stat().st_mode & 0o777 == 0o444
    umask = os.umask(0o022)
    try:
        atomic_write(tmp_path / "default", "text")
    finally:
        os.umask(umask)
    assert (tmp_path / "default").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "default").read_text() == "text"


def test_write_files_creates_dir(tmp_path: Path) -> None:
    atomic_write_files(tmp_path / "d", {"a": b"1", "b": b"22"})
    assert sorted(os.listdir(tmp_path / "d")) == ["a", "b"]


def test_concurrent_readers_never_see_half_file(tmp_path: Path) -> None:
    target = tmp_path / "f"
    payloads = [bytes([i]) * 200_000 for i in range(1, 6)]
    atomic_write(target, payloads[0])
    seen: set[bytes] = set()
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            seen.add(target.read_bytes())

    reader = threading.Thread(target=read)
    reader.start()
    for _ in range(20):
        for payload in payloads:
            atomic_write(target, payload)
    done.set()
    reader.join()
    assert seen <= set(payloads)
    assert os.listdir(tmp_path) == ["f"]


@pytest.mark.parametrize("size,text", [(0, "0 B"), (812, "812 B"), (4_800_000, "4.8 MB"), (204_320_563, "204 MB"),
                                       (1_600_000_000, "1.6 GB"), (12_345, "12 kB")])
def test_human_bytes(size, text):
    assert human_bytes(size) == text
