"""Writes constraints-dev.txt: the installed version of every distribution that the
package and its ``dev`` extra pull in (runtime dependencies, the extras the dev extra
names, and their dependencies, markers evaluated for this machine), torch and what
only torch needs left out. Run it in an environment where the suite has just passed:

    python3 scripts/freeze_constraints.py > constraints-dev.txt
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

LEFT_OUT = {"torch", "agentic-llm"}  # torch is installed first, on its own


def _name(raw: str) -> str:
    return re.sub(r"[-_.]+", "-", raw).lower()


def closure(project: dict) -> dict[str, str]:
    """Distribution name -> installed version, for everything the dev install pulls in."""
    extras = project["optional-dependencies"]
    todo = [Requirement(r) for r in project["dependencies"] + extras["dev"]]
    wanted: dict[str, set[str]] = {}
    env = default_environment()
    while todo:
        req = todo.pop()
        name = _name(req.name)
        if name == "agentic-llm":
            todo += [Requirement(r) for extra in req.extras for r in extras[extra]]
            continue
        if name in LEFT_OUT or (name in wanted and set(req.extras) <= wanted[name]):
            continue
        wanted.setdefault(name, set()).update(req.extras)
        try:
            needs = requires(req.name) or []
        except PackageNotFoundError:
            sys.exit(f"{req.name} is not installed: install the dev extra first")
        for raw in needs:
            dep = Requirement(raw)
            if dep.marker is None or any(
                dep.marker.evaluate({**env, "extra": e}) for e in ["", *wanted[name]]
            ):
                todo.append(dep)
    return {name: version(name) for name in sorted(wanted)}


def main() -> None:
    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    print("# Versions the test suite last passed with (scripts/freeze_constraints.py);")
    print("# scripts/install.sh --dev installs under these constraints. torch is not here.")
    for name, ver in closure(project).items():
        print(f"{name}=={ver}")


if __name__ == "__main__":
    main()
