"""An SPDX 2.3 JSON SBOM for a bundle: every vendor file it ships (from the trim reports) with the package,
version and sha256 it came from, plus the model files and toolchain pins the build passes in.

Deterministic: identifiers come from names, the namespace from a digest of the content, and the
creation time is fixed (a rebuild must give the same bytes).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

SPDX_VERSION = "SPDX-2.3"
CREATED = "1970-01-01T00:00:00Z"
BUNDLE_ID = "SPDXRef-Bundle"


@dataclass(frozen=True)
class Component:
    """Something the bundle was built from that is not a vendor file: a model file or a toolchain pin."""
    name: str
    version: str
    sha256: str  # "" for a toolchain, which is named by the target it built for instead
    role: str  # model | toolchain
    target: str = ""


def document(name: str, reports: list[dict], components: list[Component]) -> dict:
    packages, files, relationships = _vendor_files(reports)
    packages.insert(0, _bundle_package(name))
    relationships.insert(0, _rel("SPDXRef-DOCUMENT", "DESCRIBES", BUNDLE_ID))
    for component in sorted(components, key=lambda c: (c.role, c.name)):
        component_id = _id("Package", f"{component.role}-{component.name}")
        packages.append(_component_package(component_id, component))
        relationships.append(_rel(BUNDLE_ID, "CONTAINS", component_id) if component.role == "model"
                             else _rel(component_id, "BUILD_TOOL_OF", BUNDLE_ID))
    content = json.dumps([packages, files, relationships], sort_keys=True).encode()
    return {"spdxVersion": SPDX_VERSION, "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT", "name": name,
            "documentNamespace": f"urn:kiln:spdx:{quote(name)}:{hashlib.sha256(content).hexdigest()}",
            "creationInfo": {"created": CREATED, "creators": ["Tool: kiln"]},
            "documentDescribes": [BUNDLE_ID], "packages": packages, "files": files, "relationships": relationships}


def _vendor_files(reports: list[dict]) -> tuple[list[dict], list[dict], list[dict]]:
    """Each bundled file, contained in the bundle and generated from the vendor package it was copied from."""
    packages, files, relationships, package_ids = [], [], [], {}
    for kept in sorted((k for r in reports for k in r["kept"]), key=lambda k: k["path"]):
        file_id = _id("File", kept["path"])
        files.append({"SPDXID": file_id, "fileName": f"./{kept['path']}",
                      "checksums": [{"algorithm": "SHA1", "checksumValue": kept["sha1"]},
                                    {"algorithm": "SHA256", "checksumValue": kept["sha256"]}]})
        relationships.append(_rel(BUNDLE_ID, "CONTAINS", file_id))
        package = kept["package"]
        if package:
            if package["sha256"] not in package_ids:
                package_ids[package["sha256"]] = _id("Package", _key(package))
                packages.append(_vendor_package(package_ids[package["sha256"]], package))
            relationships.append(_rel(file_id, "GENERATED_FROM", package_ids[package["sha256"]]))
    return packages, files, relationships


def write(path: Path, name: str, reports: list[dict], components: list[Component]) -> None:
    path.write_text(json.dumps(document(name, reports, components), indent=1, sort_keys=True) + "\n")


def _bundle_package(name: str) -> dict:
    return {"SPDXID": BUNDLE_ID, "name": name, "downloadLocation": "NOASSERTION", "filesAnalyzed": False,
            "primaryPackagePurpose": "APPLICATION"}


def _vendor_package(package_id: str, package: dict) -> dict:
    purl = (f"pkg:deb/debian/{package['name']}@{quote(package['version'])}?arch={package['arch']}"
            if package["kind"] == "deb" else f"pkg:pypi/{package['name']}@{quote(package['version'])}")
    return {"SPDXID": package_id, "name": package["name"], "versionInfo": package["version"],
            "downloadLocation": "NOASSERTION", "filesAnalyzed": False, "primaryPackagePurpose": "LIBRARY",
            "checksums": [{"algorithm": "SHA256", "checksumValue": package["sha256"]}],
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                              "referenceLocator": purl}]}


def _component_package(component_id: str, component: Component) -> dict:
    package = {"SPDXID": component_id, "name": component.name, "versionInfo": component.version,
               "downloadLocation": "NOASSERTION", "filesAnalyzed": False,
               "primaryPackagePurpose": "FILE" if component.role == "model" else "INSTALL",
               "comment": f"kiln {component.role}"}
    if component.sha256:
        package["checksums"] = [{"algorithm": "SHA256", "checksumValue": component.sha256}]
    if component.target:
        package["comment"] += f", built code for {component.target}"
    return package


def _key(package: dict) -> str:
    return f"{package['name']}-{package['version']}-{package['arch']}"


def _id(kind: str, text: str) -> str:
    return f"SPDXRef-{kind}-{re.sub(r'[^A-Za-z0-9.]+', '-', text)}"


def _rel(element: str, kind: str, related: str) -> dict:
    return {"spdxElementId": element, "relationshipType": kind, "relatedSpdxElement": related}
