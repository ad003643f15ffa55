"""oci_push: push an image to a registry when `kiln run` runs the target (never as a build action).

    oci_push(name = "push", image = ":image", repository = "registry.example/mnist", tags = ["latest"])

    kiln run //mnist:push -- --repository 127.0.0.1:5000/mnist --tag v1   # overrides both

Blobs the registry has are skipped; tags are written last, so a failed push leaves none.
Credentials come from ~/.docker/config.json ($DOCKER_CONFIG) and its credential helpers.
Prints REPOSITORY@sha256:DIGEST.
"""

from __future__ import annotations

from dataclasses import dataclass

from kiln.build_rules.analysis import RuleContext
from kiln.build_rules.attrs import Attr
from kiln.build_rules.providers import DefaultInfo, Providers, RunInfo
from kiln.build_rules.targets import RuleSpec
from kiln.build_rules.rules.oci_image import OCI_TOOL, ImageInfo
from kiln.build_rules.rules.toolchains import python_tool


@dataclass(frozen=True)
class PushInfo:
    repository: str  # where the target pushes by default ("" when only `-- --repository` says)


def image_info(ctx: RuleContext) -> ImageInfo:
    image = ctx.attr["image"].get(ImageInfo)
    if image is None:
        raise ctx.fail(f"image {ctx.attr['image'].label} is not an oci_image() target")
    return image


def image_layout(ctx: RuleContext):
    return image_info(ctx).layout


def _implementation(ctx: RuleContext) -> Providers:
    image = image_info(ctx)
    layout = image.layout
    argv = [python_tool(*OCI_TOOL).path, "-m", "kiln.build_rules.oci.push", layout]
    if ctx.attr["repository"]:
        argv += ["--default-repository", ctx.attr["repository"]]
    argv += [f"--default-tag={t}" for t in ctx.attr["tags"]]
    return Providers(DefaultInfo(files=(layout,)),
                     {RunInfo: RunInfo(tuple(argv)), ImageInfo: image, PushInfo: PushInfo(ctx.attr["repository"])})


RULE = RuleSpec(
    name="oci_push",
    attrs={
        "image": Attr("label", mandatory=True, doc="An oci_image() target."),
        "repository": Attr("string", "", doc="HOST[:PORT]/NAME; `-- --repository` overrides it."),
        "tags": Attr("string_list", (), doc="Tags to set after the push; `-- --tag` overrides them."),
    },
    implementation=_implementation,
    doc=__doc__,
)
