"""The build configuration: accelerator platforms plus exactly one host, from `--platform`."""

from __future__ import annotations

import platform as _platform
from dataclasses import dataclass

from kiln.build_rules.errors import UserError
from kiln.compiler.platforms import FALLBACK, HOSTS, PLATFORMS

_MACHINE_HOSTS = {machine: h.name for h in HOSTS.values() for machine in h.machines}


@dataclass(frozen=True, order=True)
class Platform:
    name: str  # a key of kiln.compiler.platforms.PLATFORMS
    arch: str = ""  # optional qualifier: sm_90, gfx942

    def __str__(self) -> str:
        return f"{self.name}:{self.arch}" if self.arch else self.name


@dataclass(frozen=True)
class Configuration:
    platforms: tuple[Platform, ...]  # sorted, always including the fallback (cpu)
    host: str

    @property
    def name(self) -> str:
        """Directory name under kiln-out/, e.g. `linux-amd64-cpu-rocm_gfx942`."""
        parts = [str(p).replace(":", "_") for p in self.platforms]
        return "-".join([self.host, *parts])

    @property
    def flag(self) -> str:
        return ",".join([*(str(p) for p in self.platforms), self.host])

    def has(self, accelerator: str) -> bool:
        return any(p.name == accelerator for p in self.platforms)

    def archs(self, accelerator: str) -> tuple[str, ...]:
        return tuple(p.arch for p in self.platforms if p.name == accelerator and p.arch)


def machine_host() -> str:
    machine = _platform.machine().lower()
    if machine not in _MACHINE_HOSTS:
        raise UserError(f"this machine ({machine}) is not a supported host; use --platform with one of {', '.join(HOSTS)}")
    return _MACHINE_HOSTS[machine]


def parse_platforms(flag: str | None) -> Configuration:
    """Parse `cpu,rocm:gfx942,linux-arm64`; default: cpu and this machine's host."""
    hosts: list[str] = []
    platforms = {Platform(FALLBACK.name)}
    for word in (w.strip() for w in (flag or "").split(",")):
        if not word:
            continue
        if word in HOSTS:
            hosts.append(word)
            continue
        name, _, arch = word.partition(":")
        if name not in PLATFORMS:
            raise UserError(f"--platform: unknown platform '{word}'; valid: "
                            f"{', '.join(PLATFORMS)} (optionally name:arch) and one host of {', '.join(HOSTS)}")
        if arch and not PLATFORMS[name].default_archs:
            raise UserError(f"--platform: '{name}' takes no arch qualifier (got '{word}')")
        platforms.add(Platform(name, arch))
    if len(hosts) > 1:
        raise UserError(f"--platform names {len(hosts)} hosts ({', '.join(hosts)}); give exactly one")
    return Configuration(tuple(sorted(platforms)), hosts[0] if hosts else machine_host())


def exec_configuration() -> Configuration:
    """The configuration tools run in: this machine, cpu only."""
    return Configuration((Platform(FALLBACK.name),), machine_host())
