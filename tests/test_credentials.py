"""Credentials written into a URL or repository never reach kiln's output (issue 16, item 6)."""

from __future__ import annotations

import subprocess
import sys

from fixtures.remote.servers import free_port


def test_remote_cache_password_is_redacted_in_the_warning(workspace):
    workspace.write("p/BUILD.kiln", 'genrule(name = "a", outs = ["a.txt"], cmd = "echo a > $@")\n')
    done = workspace.kiln("build", "//p:a", f"--remote_cache=http://user:s3cret@127.0.0.1:{free_port()}", check=True)
    assert "s3cret" not in done.stderr + done.stdout
    assert "WARNING: remote http://***@127.0.0.1:" in done.stderr


def test_remote_cache_password_is_redacted_in_the_error(workspace):
    done = workspace.kiln("build", "//...", "--remote_cache=ftp://user:s3cret@cache.internal/x")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "s3cret" not in done.stderr and "--remote_cache=ftp://***@cache.internal/x" in done.stderr


def test_repository_with_credentials_is_refused_without_printing_them(tmp_path):
    done = subprocess.run([sys.executable, "-m", "kiln.build_rules.oci.push", str(tmp_path / "layout"),
                           "--repository", "user:s3cret@127.0.0.1:5000/mnist"], capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr and "s3cret" not in done.stderr + done.stdout
    assert "'***@127.0.0.1:5000/mnist': credentials do not belong in the repository" in done.stderr
