"""The lock (`requirements.lock`) agrees with `pyproject.toml` and with the virtualenv.

`pyproject.toml` holds the compatible ranges, `requirements.lock` the exact hash-pinned
versions `make lock` resolved from them. This script owns the two checks `make test` runs:

- every requirement of the project (runtime and the `dev` extra) is pinned in the lock at a
  version inside its range: editing a range without `make lock` fails here;
- with `--installed`, the packages of the running interpreter are exactly the lock's (same
  names, same versions, nothing more, nothing less; pip itself and the project excepted):
  what `pip freeze` shows is what the lock says.

Exit status 0 when all holds, 1 with one line per disagreement otherwise.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")
# Installed beside the lock's packages without being part of it.
_NOT_LOCKED = {"pip", "campus-core-observability"}


def read_lock(path: Path) -> dict[str, Version]:
    """``{canonical name: version}`` of every ``name==version`` line of a pip lock."""
    pins: dict[str, Version] = {}
    for line in path.read_text().splitlines():
        match = _PIN.match(line)
        if match:
            pins[canonicalize_name(match.group(1))] = Version(match.group(3))
    return pins


def project_requirements(pyproject: Path, extras: tuple[str, ...] = ("dev",)) -> list[Requirement]:
    project = tomllib.loads(pyproject.read_text())["project"]
    lines = list(project.get("dependencies", []))
    for extra in extras:
        lines += project.get("optional-dependencies", {}).get(extra, [])
    return [Requirement(line) for line in lines]


def lock_problems(requirements: list[Requirement], pins: dict[str, Version]) -> list[str]:
    problems = []
    for req in requirements:
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = canonicalize_name(req.name)
        pinned = pins.get(name)
        if pinned is None:
            problems.append(f"{req} is not in the lock")
        elif not req.specifier.contains(pinned, prereleases=True):
            problems.append(f"{req} but the lock pins {name}=={pinned}")
    return problems


def installed_problems(pins: dict[str, Version]) -> list[str]:
    installed = {
        canonicalize_name(dist.metadata["Name"]): Version(dist.version)
        for dist in metadata.distributions()
    }
    problems = []
    for name, version in sorted(installed.items()):
        if name in _NOT_LOCKED:
            continue
        if name not in pins:
            problems.append(f"{name}=={version} is installed but not in the lock")
        elif pins[name] != version:
            problems.append(f"{name}=={version} is installed, the lock pins {pins[name]}")
    problems += [
        f"{name}=={version} is in the lock but not installed"
        for name, version in sorted(pins.items())
        if name not in installed
    ]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lock", type=Path, default=ROOT / "requirements.lock")
    parser.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    parser.add_argument(
        "--installed", action="store_true", help="also compare the running interpreter's packages"
    )
    args = parser.parse_args(argv)
    pins = read_lock(args.lock)
    problems = lock_problems(project_requirements(args.pyproject), pins)
    if args.installed:
        problems += installed_problems(pins)
    for problem in problems:
        print(f"{args.lock.name}: {problem}", file=sys.stderr)
    if problems:
        print("run `make lock` after changing pyproject.toml, then `make test`", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
