"""`make manifests`: keep the chart's copy of crds/ and the plain manifests/vibexp.yaml in step with the chart.

    python hack/manifests.py write   # copy crds/*.yaml into the chart, render manifests/vibexp.yaml
    python hack/manifests.py check   # exit 1, naming the stale file, when either is out of date

The manifests are `helm template` of charts/vibexp with its default values for release "vibexp" in namespace
"vibexp", behind a header; the migration Job (a Helm hook in the chart) is an ordinary Job there.
"""

from __future__ import annotations

import argparse
import shutil
import sys

from helmlib import CRDS_IN_CHART, CRDS_SOURCE, MANIFESTS, MANIFESTS_NAMESPACE, MANIFESTS_RELEASE, Helm

__all__ = ["crd_copies_stale", "expected_manifests", "main"]

HEADER = f"""\
# VibeXP: plain `kubectl apply -f` manifests, rendered by `make manifests` from charts/vibexp with its default
# values (release "{MANIFESTS_RELEASE}", namespace "{MANIFESTS_NAMESPACE}"). Do not edit: change the chart and run
# `make manifests` (tests/chart fails when this file is stale).
#
# Before applying: create the namespace and the Secret the workloads read (database URL and session secret key):
#   kubectl create namespace {MANIFESTS_NAMESPACE}
#   kubectl -n {MANIFESTS_NAMESPACE} create secret generic vibexp-database \\
#     --from-literal=url='postgresql+asyncpg://USER:PASSWORD@HOST:5432/vibexp' \\
#     --from-literal=secret-key="$(openssl rand -hex 32)"
#   kubectl apply -f manifests/vibexp.yaml
# The Job vibexp-migrate runs `vibexp db upgrade`; API pods answer /readyz once the database answers. Delete the
# finished Job before applying a newer version (a Job's pod template cannot change).
"""


def expected_manifests(helm: Helm) -> str:
    return HEADER + helm.template_text(release=MANIFESTS_RELEASE, namespace=MANIFESTS_NAMESPACE)


def crd_copies_stale() -> list[str]:
    """Names of CRD files that differ between crds/ and the chart's copy (missing or extra ones included)."""
    source = {p.name: p.read_bytes() for p in CRDS_SOURCE.glob("*.yaml")}
    copies = {p.name: p.read_bytes() for p in CRDS_IN_CHART.glob("*.yaml")}
    return sorted(name for name in source.keys() | copies.keys() if source.get(name) != copies.get(name))


def write(helm: Helm) -> None:
    CRDS_IN_CHART.mkdir(parents=True, exist_ok=True)
    for stale in CRDS_IN_CHART.glob("*.yaml"):
        if not (CRDS_SOURCE / stale.name).exists():
            stale.unlink()
    for crd in sorted(CRDS_SOURCE.glob("*.yaml")):
        shutil.copyfile(crd, CRDS_IN_CHART / crd.name)
    MANIFESTS.parent.mkdir(parents=True, exist_ok=True)
    MANIFESTS.write_text(expected_manifests(helm))
    print(f"copied crds/*.yaml to {CRDS_IN_CHART}; wrote {MANIFESTS}")


def check(helm: Helm) -> int:
    problems = [f"{CRDS_IN_CHART / name} differs from crds/{name}" for name in crd_copies_stale()]
    if not MANIFESTS.exists() or MANIFESTS.read_text() != expected_manifests(helm):
        problems.append(f"{MANIFESTS} is stale")
    for problem in problems:
        print(f"{problem}: run `make manifests`", file=sys.stderr)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["write", "check"])
    args = parser.parse_args(argv)
    helm = Helm()
    if args.action == "write":
        write(helm)
        return 0
    return check(helm)


if __name__ == "__main__":
    sys.exit(main())
