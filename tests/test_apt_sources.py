"""kiln's private apt configuration: the machine's Debian mirror read from its apt sources (both
formats), renamed to the suite a pin names; every architecture kiln pins for."""
from __future__ import annotations

import pytest

from kiln.toolchain.apt_sources import PrivateApt, Source, host_sources, sources_for
from kiln.toolchain.errors import FetchError

DEB822 = """Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
Enabled: no
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
"""
ONE_LINE = """# a comment
deb [arch=amd64] http://other.example/debian bookworm main
deb-src http://other.example/debian bookworm main
deb https://nodesource.example/node nodistro main
"""


@pytest.fixture
def etc(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    (tmp_path / "sources.list").write_text(ONE_LINE)
    return tmp_path


def test_reads_both_formats_and_skips_disabled_and_source_entries(etc):
    sources = host_sources(etc)
    assert Source("http://other.example/debian", "bookworm", ("main",)) in sources
    assert Source("http://mirror.example/debian-security", "bookworm-security", ("main",)) in sources
    assert not any("disabled" in s.uri for s in sources)
    assert len(sources) == 5  # other, nodesource, and the three deb822 suites


def test_renames_the_machines_release_to_the_pins_suite(etc):
    text = sources_for("trixie", host_sources(etc), "bookworm")
    assert text.splitlines() == [
        "deb [arch=amd64,arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://mirror.example/debian trixie main",
        "deb [arch=amd64,arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://mirror.example/debian trixie-updates main",
        "deb [arch=amd64,arm64] http://mirror.example/debian-security trixie-security main",
        "deb [arch=amd64,arm64] http://other.example/debian trixie main",
    ]


def test_no_debian_entry_is_one_clear_error(etc):
    with pytest.raises(FetchError, match="the machine's apt sources name no Debian 'bookworm' main archive"):
        sources_for("trixie", [Source("https://nodesource.example/node", "nodistro", ("main",))], "bookworm")


def test_private_state_is_per_suite_and_names_every_architecture(etc, tmp_path, monkeypatch):
    monkeypatch.setattr("kiln.toolchain.apt_sources.host_codename", lambda: "bookworm")
    bookworm, trixie = PrivateApt("bookworm", tmp_path / "cache", etc), PrivateApt("trixie", tmp_path / "cache", etc)
    assert bookworm.root != trixie.root and (trixie.root / "sources.list").read_text().count(" trixie") == 4
    options = trixie.options
    assert "-oAPT::Architectures::=amd64" in options and "-oAPT::Architectures::=arm64" in options
    assert f"-oDir::State::status={trixie.root / 'status'}" in options
    assert not trixie.has_lists()
