"""`kiln fetch` and `kiln why`: the pinned external artifacts behind targets, and the trimmed bundles."""

from __future__ import annotations

from kiln.build_rules.analysis import Analyzer
from kiln.build_rules.config import Configuration
from kiln.build_rules.errors import UserError
from kiln.build_rules.labels import Label
from kiln.build_rules.loading import Loader
from kiln.build_rules.providers import ModelInfo
from kiln.build_rules.workspace import Workspace
from kiln.compiler.platforms import HOSTS


def fetch_for_targets(loader: Loader, labels: list[Label], config: Configuration, everything: bool) -> list[str]:
    from kiln.toolchain.fetch import FetchError, ensure, fetch_all
    try:
        if everything:
            return [f"kiln: have {tree}" for tree in fetch_all(HOSTS[config.host].arch)]
        analyzer = Analyzer(loader)
        for label in labels:
            analyzer.analyze(label, config)
        wanted = sorted({t.fetch for a in analyzer.actions for t in a.all_tools() if t.fetch})
        return [f"kiln: have {name} ({arch}) in {ensure(name, arch, suite)}" for name, arch, suite in wanted]
    except FetchError as error:
        raise UserError(str(error)) from None


def explain_file(workspace: Workspace, loader: Loader, label: Label, config: Configuration, file: str) -> str:
    from kiln.runtime_trim.closure import host_provided
    from kiln.runtime_trim.report import explain
    model = _model_of(loader, label, config)
    base = file.rsplit("/", 1)[-1]
    reports = [(p, workspace.root / r.path) for p, r in model.runtime_reports]
    built = [(p, r) for p, r in reports if r.is_file()]
    if len(built) < len(reports):
        raise UserError(f"kiln why: build {label} with --platform={config.flag} first")
    for _, report in built:
        text = explain(report, file)
        if " is in the " in text:
            return text
    if built:
        return "\n".join(explain(r, file) for _, r in built)
    reason = host_provided(base, ()) or "nothing the launcher loads needs it"
    target = loader.target(label)
    if target and target.rule.name == "oci_image" and reason.startswith("glibc"):
        reason = "glibc family, in the image's base layer (pinned Debian packages)"
    return (f"{base} is not in the bundle of {label}: it bundles no vendor runtime "
            f"(platforms: {', '.join(str(p) for p in config.platforms)}); {reason}")


def _model_of(loader: Loader, label: Label, config: Configuration) -> ModelInfo:
    providers = Analyzer(loader).analyze(label, config)
    model = providers.get(ModelInfo)
    if model is None:
        target = loader.target(label)
        dep = target.attrs.get("model") if target else None
        if dep is None:
            raise UserError(f"kiln why: {label} is not a model, archive or image target")
        model = Analyzer(loader).analyze(dep, config).get(ModelInfo)
    if model is None:
        raise UserError(f"kiln why: {label} bundles no model")
    return model
