"""oci_load: load an image into Docker when `kiln run` runs the target.

    oci_load(name = "load", image = ":image", tag = "mnist:latest")

Writes a `docker load`-compatible tarball at run time (kiln-out/<config>/<package>/<name>.tar; it
is not a cached build output) and loads it through the Docker SDK when a daemon answers; with
no daemon it says so and leaves the tarball for `docker load -i`.
"""

from __future__ import annotations

from kiln.build_rules.actions import Artifact
from kiln.build_rules.analysis import RuleContext
from kiln.build_rules.attrs import Attr
from kiln.build_rules.providers import DefaultInfo, Providers, RunInfo
from kiln.build_rules.targets import RuleSpec
from kiln.build_rules.rules.oci_image import OCI_TOOL
from kiln.build_rules.rules.oci_push import image_layout
from kiln.build_rules.rules.toolchains import python_tool
from kiln.build_rules.workspace import OUTPUT_DIR


def _implementation(ctx: RuleContext) -> Providers:
    layout = image_layout(ctx)
    tarball = Artifact("/".join(p for p in (OUTPUT_DIR, ctx.config.name, ctx.label.package, f"{ctx.label.name}.tar") if p))
    tag = ctx.attr["tag"] or f"{ctx.label.package.rsplit('/', 1)[-1] or ctx.label.name}:latest"
    argv = (python_tool(*OCI_TOOL).path, "-m", "kiln.build_rules.oci.load", layout, "--tag", tag, "--output", tarball)
    return Providers(DefaultInfo(files=(layout,)), {RunInfo: RunInfo(argv)})


RULE = RuleSpec(
    name="oci_load",
    attrs={
        "image": Attr("label", mandatory=True, doc="An oci_image() target."),
        "tag": Attr("string", "", doc="name:tag for the loaded image (default <package>:latest)."),
    },
    implementation=_implementation,
    doc=__doc__,
)
