"""kiln never creates a symlink under kiln-out, so one found there is foreign (committed to a repo, say):
kiln refuses to write or delete through it."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from kiln.build_rules.errors import UserError


def refuse_symlinks(output_root: Path) -> None:
    """Fail before kiln writes or deletes anything through a symlink under (or at) `output_root`."""
    found = [output_root] if output_root.is_symlink() else []
    for directory, subdirs, files in os.walk(output_root):
        found += [Path(directory, n) for n in (*subdirs, *files) if os.path.islink(os.path.join(directory, n))]
    if found:
        raise UserError(f"{found[0]} is a symlink (to {os.readlink(found[0])}); kiln does not write or delete "
                        f"through symlinks it did not create: remove it")


def open_no_follow(path: Path) -> int:
    """A descriptor for writing `path`, created if missing, never through a symlink."""
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as error:
        if error.errno != errno.ELOOP:
            raise
        raise UserError(f"{path} is a symlink (to {os.readlink(path)}); kiln does not write through symlinks "
                        f"it did not create: remove it") from None
