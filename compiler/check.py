"""`kiln inspect --check`: every reason kiln cannot compile a model for a platform, listed at once
rather than one per build."""
from __future__ import annotations

from pathlib import Path

from .driver import unsupported_ops
from .errors import CompileError
from .frontend.onnx import Shapes, Values, load_onnx, unsupported_nodes
from .passes.pipeline import run_pipeline
from .platforms import resolve


def check_model(path: Path | str, weights: Path | str | None = None, batch: int = 1,
                platform: str = "cpu", input_shapes: Shapes | None = None, input_values: Values | None = None
                ) -> list[str]:
    """The problems, one line each; empty when kiln compiles the model for `platform`."""
    path = Path(path)
    problems = unsupported_nodes(path)
    if problems:
        return problems
    backend = resolve(platform)[0].load_backend()
    try:
        graph = run_pipeline(load_onnx(path, Path(weights) if weights else None, batch, input_shapes, input_values),
                             passes=backend.passes)
    except CompileError as error:
        return [str(error)]
    return unsupported_ops(backend, graph)


def report(path: Path | str, problems: list[str], platform: str) -> str:
    name = Path(path).name
    if not problems:
        return f"{name}: kiln compiles every node for {platform}\n"
    lines = [f"{name}: {len(problems)} problem{'s' if len(problems) > 1 else ''} for {platform}"]
    return "\n".join(lines + [f"  {p}" for p in problems]) + "\n"
