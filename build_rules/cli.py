"""The `kiln` command: build, run, query, clean, info, inspect.

Each command imports the parts of the engine it uses when it runs (the imports inside the command
functions): `kiln --help` or `kiln clean` should not pay for starlark, onnx, llvmlite or gRPC."""

from __future__ import annotations

import os
import signal
import sys
from argparse import ArgumentTypeError
from pathlib import Path

import click

from kiln.build_rules.actions import DEFAULT_ACTION_TIMEOUT
from kiln.build_rules.errors import UserError
from kiln.compiler.platforms import HOSTS, PLATFORMS

_PLATFORM_HELP = (f"Accelerator platforms ({', '.join(p.usage() for p in PLATFORMS.values())}) and one host "
                  f"({', '.join(HOSTS)}).")


class _Terminated(Exception):
    """kiln got SIGTERM."""


def _stop(signum: int, frame) -> None:
    """SIGINT/SIGTERM: kill the running actions (their execroots go as their threads unwind), then leave."""
    from kiln.build_rules.sandbox import stop_all
    stop_all()
    raise KeyboardInterrupt if signum == signal.SIGINT else _Terminated


class _Group(click.Group):
    """Turns a user mistake into one line on stderr and exit code 1; a signal into 130 or 143."""

    def invoke(self, ctx: click.Context):
        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        try:
            return super().invoke(ctx)
        except UserError as error:
            click.echo(f"ERROR: {error}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("kiln: interrupted", err=True)
            sys.exit(130)
        except _Terminated:
            click.echo("kiln: terminated", err=True)
            sys.exit(143)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """kiln: a hermetic build-and-deploy system for compiled ML models."""


def _session(platform: str | None):
    from kiln.build_rules.config import parse_platforms
    from kiln.build_rules.loading import Loader
    from kiln.build_rules.workspace import find_workspace
    workspace = find_workspace(Path.cwd())
    return workspace, Loader(workspace), parse_platforms(platform)


def _remote_flags(command):
    """The --remote_* options of `build` and `run` (also read from the workspace's .kilnrc)."""
    flags = [
        click.option("--remote_cache", help="Bazel's HTTP cache (http://HOST:PORT[/prefix]) or a REAPI cache (grpc://HOST:PORT)."),
        click.option("--remote_executor", help="A REAPI execution service (grpc://HOST:PORT) that runs the actions."),
        click.option("--remote_header", multiple=True, help="NAME=VALUE sent with every remote request; repeatable."),
        click.option("--remote_upload_local_results/--noremote_upload_local_results", default=None,
                     help="Upload the results of local actions to the remote cache (default: yes)."),
        click.option("--remote_timeout", type=float, help="Seconds to wait for the remote (default: 60)."),
        click.option("--remote_instance_name", help="The REAPI instance name."),
    ]
    for flag in reversed(flags):
        command = flag(command)
    return command


def _remote_options(workspace, command: str, flags: dict):
    from kiln.build_rules.remote.options import resolve
    return resolve(workspace.root, command, flags)


def _current_package(workspace) -> str:
    try:
        return workspace.package_of(Path.cwd())
    except ValueError:
        return ""


@main.command()
@click.argument("patterns", nargs=-1, required=True)
@click.option("--platform", help=_PLATFORM_HELP)
@click.option("--jobs", "-j", type=int, default=os.cpu_count(), show_default=True, help="Actions run at once.")
@click.option("--keep_going", "--keep-going", "-k", is_flag=True, help="Build as much as possible after a failure.")
@click.option("--execution_log", type=click.Path(dir_okay=False), help="Write a JSON list of the actions and how each ended.")
@click.option("--action_timeout", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_ACTION_TIMEOUT, show_default=True,
              help="Seconds an action may run unless its target sets timeout.")
@click.option("--sandbox_debug", is_flag=True, help="Keep a failed action's sandbox and write a script that replays it.")
@_remote_flags
def build(patterns: tuple[str, ...], platform: str | None, jobs: int, keep_going: bool,
          execution_log: str | None, action_timeout: float, sandbox_debug: bool, **remote: object) -> None:
    """Build targets: //pkg:name, //pkg, //pkg:all, //..."""
    from kiln.build_rules.build import build as run_build
    workspace, loader, config = _session(platform)
    labels = loader.expand(list(patterns), _current_package(workspace))
    options = _remote_options(workspace, "build", remote)
    result = run_build(workspace, labels, loader, config, jobs, keep_going, remote=options,
                       action_timeout=action_timeout, sandbox_debug=sandbox_debug)
    if execution_log:
        import json
        Path(execution_log).write_text(json.dumps(result.stats.log, indent=1))
    sys.exit(0 if result.ok else 1)


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("target")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--platform", help=_PLATFORM_HELP)
@click.option("--jobs", "-j", type=int, default=os.cpu_count())
@_remote_flags
def run(target: str, args: tuple[str, ...], platform: str | None, jobs: int, **remote: object) -> None:
    """Build TARGET, then run it with ARGS (after --)."""
    from kiln.build_rules.build import build as run_build
    from kiln.build_rules.running import run_target
    workspace, loader, config = _session(platform)
    labels = loader.expand([target], _current_package(workspace))
    if len(labels) != 1:
        raise UserError(f"kiln run needs exactly one target; '{target}' names {len(labels)}")
    result = run_build(workspace, labels, loader, config, jobs, quiet=True,
                       remote=_remote_options(workspace, "run", remote))
    if not result.ok:
        sys.exit(1)
    sys.exit(run_target(workspace, labels[0], result.targets[labels[0]], config, list(args)))


@main.command()
@click.argument("expression")
@click.option("--output", type=click.Choice(["label", "graph"]), default="label", show_default=True)
def query(expression: str, output: str) -> None:
    """Query the target graph: a pattern, deps(x), rdeps(universe, x), somepath(from, to)."""
    from kiln.build_rules.query import TargetGraph, evaluate, to_dot
    workspace, loader, _ = _session(None)
    graph = TargetGraph(loader)
    labels, edges = evaluate(graph, expression, _current_package(workspace))
    if output == "graph":
        click.echo(to_dot(graph, labels, edges or None))
    else:
        for label in labels:
            click.echo(str(label))


@main.command()
@click.option("--expunge", is_flag=True, help="Also delete the shared cache ($XDG_CACHE_HOME/kiln).")
def clean(expunge: bool) -> None:
    """Delete kiln-out/ (and with --expunge the cache)."""
    from kiln.build_rules.build import workspace_lock
    from kiln.build_rules.fsutil import remove_tree
    from kiln.build_rules.store import cache_root
    from kiln.build_rules.workspace import find_workspace
    workspace = find_workspace(Path.cwd())
    with workspace_lock(workspace):
        for child in workspace.output_root.iterdir():
            if child.name != ".lock":
                remove_tree(child)
    if expunge:
        remove_tree(cache_root())
    click.echo(f"kiln: removed {workspace.output_root}" + (f" and {cache_root()}" if expunge else ""), err=True)


@main.command()
@click.argument("key", required=False)
def info(key: str | None) -> None:
    """Print facts about the workspace, cache and toolchain (or one of them)."""
    from kiln.build_rules.info import collect
    facts = collect()
    if key:
        if key not in facts:
            raise UserError(f"kiln info: unknown key '{key}'; known: {', '.join(facts)}")
        click.echo(facts[key])
        return
    for name, value in facts.items():
        click.echo(f"{name}: {value}")


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--weights", type=click.Path(dir_okay=False), help="safetensors file with the initializers.")
@click.option("--batch", type=int, default=1, show_default=True)
@click.option("--batch-sizes", "batch_sizes", metavar="B0,B1,...",
              help="Show every shape bucket's graph, as model(batch_sizes = [...]) compiles them.")
@click.option("--shapes", metavar="JSON",
              help='Show every shape bucket\'s graph, as model(shapes = [...]) compiles them: [{"ids": [1, 16]}, ...].')
@click.option("--platform", default="cpu", show_default=True, help="The platform whose backend to show or check.")
@click.option("--input-value", "input_values", multiple=True, metavar="NAME=V0,V1,...",
              help="Fix an input's value at build time (repeat per input), as model(input_values = ...).")
@click.option("--check", is_flag=True, help="List everything kiln cannot compile in the model (exit 1 if any).")
@click.option("--profile", is_flag=True,
              help="Compile the model, printing the time of each pass, kernel and LLVM step and the peak RSS.")
def inspect(model: str, weights: str | None, batch: int, batch_sizes: str | None, shapes: str | None,
            platform: str, input_values: tuple[str, ...], check: bool, profile: bool) -> None:
    """Print a model's graph after the compiler's passes: ops, shapes and FLOPs."""
    from kiln.compiler.check import check_model, report
    from kiln.compiler.errors import CompileError
    from kiln.compiler.__main__ import input_value
    from kiln.compiler.inspect import inspect_model
    try:
        values = dict(input_value(v) for v in input_values)
        if check:
            problems = check_model(model, weights=weights, batch=batch, platform=platform, input_values=values)
            click.echo(report(model, problems, platform), nl=False)
            sys.exit(1 if problems else 0)
        if profile:
            from kiln.compiler.profile import profile_compile
            click.echo(profile_compile(model, weights=weights, batch=batch, platform=platform, input_values=values),
                       nl=False)
            return
        if batch_sizes is not None:
            from kiln.compiler.__main__ import batch_sizes as parse_sizes
            from kiln.compiler.inspect import inspect_buckets
            click.echo(inspect_buckets(model, parse_sizes(batch_sizes), weights=weights, platform=platform,
                                       input_values=values))
            return
        if shapes is not None:
            from kiln.compiler.__main__ import shapes_list
            from kiln.compiler.inspect import inspect_shapes
            click.echo(inspect_shapes(model, shapes_list(shapes), weights=weights, platform=platform,
                                      input_values=values))
            return
        click.echo(inspect_model(model, weights=weights, batch=batch, platform=platform, input_values=values))
    except (CompileError, ArgumentTypeError) as error:
        raise UserError(str(error)) from None


@main.command()
@click.argument("patterns", nargs=-1)
@click.option("--platform", help=_PLATFORM_HELP)
@click.option("--all", "everything", is_flag=True, help="Every artifact pinned for the host, not only what targets need.")
def fetch(patterns: tuple[str, ...], platform: str | None, everything: bool) -> None:
    """Download and verify the pinned external artifacts targets need, for offline builds."""
    from kiln.build_rules.fetching import fetch_for_targets
    workspace, loader, config = _session(platform)
    labels = loader.expand(list(patterns or ("//...",)), _current_package(workspace))
    for line in fetch_for_targets(loader, labels, config, everything):
        click.echo(line, err=True)


@main.command()
@click.option("--update", "names", multiple=True, required=True, metavar="NAME", help="Move NAME's pins to the newest version.")
def lock(names: tuple[str, ...]) -> None:
    """Rewrite pins in toolchain/lock.toml (version, file name, size, sha256)."""
    from kiln.toolchain.errors import FetchError
    from kiln.toolchain.lock import update_pin
    from kiln.toolchain.lockfile import DEFAULT_LOCK
    for name in names:
        previous = DEFAULT_LOCK.read_text()
        try:
            updated = update_pin(name)
            _check_pjrt_plugins(updated)
        except FetchError as error:
            raise UserError(str(error)) from None
        except UserError:
            DEFAULT_LOCK.write_text(previous)
            raise
        for artifact in updated:
            click.echo(f"kiln: pinned {artifact.label} sha256:{artifact.sha256}", err=True)


def _check_pjrt_plugins(artifacts: list) -> None:
    """A new PJRT plugin pin is kept only if it takes the struct sizes kiln's launcher passes."""
    import tempfile
    from kiln.compiler import pjrt_struct_check
    from kiln.toolchain.fetch import ensure
    from kiln.toolchain.lockfile import load
    plugins = [a for a in artifacts if a.provides.endswith("pjrt plugin") and a.arch == "amd64"]
    if not plugins:
        return
    with tempfile.TemporaryDirectory(prefix="kiln-pjrt-") as scratch:
        probe = pjrt_struct_check.build_probe(Path(scratch) / "probe")
        for artifact in plugins:
            entry = load().vendor(artifact.provides.split()[0]).entry[0]
            plugin = next(ensure(artifact.name, artifact.arch).rglob(entry))
            found = pjrt_struct_check.problems(probe, plugin)
            if found:
                raise UserError(f"{artifact.label} is not kept: {found[0]}" +
                                (f" (and {len(found) - 1} more)" if len(found) > 1 else ""))


@main.command()
@click.argument("target")
@click.argument("file")
@click.option("--platform", help=_PLATFORM_HELP)
def why(target: str, file: str, platform: str | None) -> None:
    """Why FILE is (or is not) in TARGET's bundle: the chain from the launcher to it."""
    from kiln.build_rules.fetching import explain_file
    workspace, loader, config = _session(platform)
    labels = loader.expand([target], _current_package(workspace))
    click.echo(explain_file(workspace, loader, labels[0], config, file))
