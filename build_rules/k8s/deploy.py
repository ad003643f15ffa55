"""Print a k8s_deployment's YAML, or apply it: `python -m kiln.build_rules.k8s.deploy`.

    kiln run //mnist:deploy                  # prints the YAML
    kiln run //mnist:deploy -- --apply       # kubectl apply -f - (kubectl's current context)
    kiln run //mnist:deploy -- --apply --context prod --dry-run=server

Nothing reaches a cluster unless `--apply` is given.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path


def apply(text: str, kubectl_args: list[str]) -> int:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        print("k8s.deploy: error: --apply needs kubectl on PATH; without --apply the YAML is printed "
              "for `kubectl apply -f -`", file=sys.stderr)
        return 1
    return subprocess.run([kubectl, "apply", "-f", "-", *kubectl_args], input=text, text=True).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifests", help="the YAML the k8s_deployment target built")
    parser.add_argument("--apply", action="store_true", help="kubectl apply -f - instead of printing")
    parser.add_argument("--context", help="kubectl context to apply to")
    parser.add_argument("--dry-run", choices=("client", "server"), help="kubectl apply's --dry-run")
    args = parser.parse_args(argv)
    try:
        text = Path(args.manifests).read_text()
    except OSError as e:
        print(f"k8s.deploy: error: {e}", file=sys.stderr)
        return 1
    if not args.apply:
        sys.stdout.write(text)
        return 0
    kubectl_args = [*([f"--context={args.context}"] if args.context else []),
                    *([f"--dry-run={args.dry_run}"] if args.dry_run else [])]
    return apply(text, kubectl_args)


if __name__ == "__main__":
    sys.exit(main())
