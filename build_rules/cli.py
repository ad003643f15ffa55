"""The `kiln` command: build, run, query, clean, info, inspect."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from kiln.build_rules.errors import UserError

_PLATFORM_HELP = "Accelerator platforms (cpu, cuda, rocm, tpu; optionally name:arch) and one host (linux-amd64, linux-arm64)."


class _Group(click.Group):
    """Turns a user mistake into one line on stderr and exit code 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as error:
            click.echo(f"ERROR: {error}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("kiln: interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """kiln: a hermetic build-and-deploy system for compiled ML models."""


def _session(platform: str | None):
    from kiln.build_rules.config import parse_platforms
    from kiln.build_rules.loading import Loader
    from kiln.build_rules.workspace import find_workspace
    workspace = find_workspace(Path.cwd())
    return workspace, Loader(workspace), parse_platforms(platform)


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
def build(patterns: tuple[str, ...], platform: str | None, jobs: int, keep_going: bool,
          execution_log: str | None) -> None:
    """Build targets: //pkg:name, //pkg, //pkg:all, //..."""
    from kiln.build_rules.build import build as run_build
    workspace, loader, config = _session(platform)
    labels = loader.expand(list(patterns), _current_package(workspace))
    result = run_build(workspace, labels, loader, config, jobs, keep_going)
    if execution_log:
        import json
        Path(execution_log).write_text(json.dumps(result.stats.log, indent=1))
    sys.exit(0 if result.ok else 1)


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("target")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--platform", help=_PLATFORM_HELP)
@click.option("--jobs", "-j", type=int, default=os.cpu_count())
def run(target: str, args: tuple[str, ...], platform: str | None, jobs: int) -> None:
    """Build TARGET, then run it with ARGS (after --)."""
    from kiln.build_rules.build import build as run_build
    from kiln.build_rules.running import run_target
    workspace, loader, config = _session(platform)
    labels = loader.expand([target], _current_package(workspace))
    if len(labels) != 1:
        raise UserError(f"kiln run needs exactly one target; '{target}' names {len(labels)}")
    result = run_build(workspace, labels, loader, config, jobs, quiet=True)
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
def inspect(model: str, weights: str | None, batch: int) -> None:
    """Print a model's graph after the compiler's passes: ops, shapes and FLOPs."""
    from kiln.compiler.errors import CompileError
    from kiln.compiler.inspect import inspect_model
    try:
        click.echo(inspect_model(model, weights=weights, batch=batch))
    except CompileError as error:
        raise UserError(str(error)) from None
