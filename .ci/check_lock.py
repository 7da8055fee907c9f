"""Check that requirements.lock still matches pyproject.toml: every dependency of the package and of its
`test` extra is locked, at a version its specifier allows. Exit 1 naming what differs (regenerate with
`pip-compile --generate-hashes --extra test --allow-unsafe --strip-extras --no-emit-index-url
--no-emit-find-links -o requirements.lock pyproject.toml`)."""

import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

root = Path(__file__).resolve().parents[1]
project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
wanted = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]
locked = {canonicalize_name(name): Version(version) for name, version in
          re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)", (root / "requirements.lock").read_text(), re.M)}
problems = []
for requirement in wanted:
    version = locked.get(canonicalize_name(requirement.name))
    if version is None:
        problems.append(f"{requirement.name} is not in requirements.lock")
    elif not requirement.specifier.contains(version, prereleases=True):
        problems.append(f"{requirement.name} is locked at {version}, pyproject.toml wants {requirement.specifier}")
if problems:
    print("requirements.lock does not match pyproject.toml: " + "; ".join(problems))
    sys.exit(1)
print(f"requirements.lock matches pyproject.toml ({len(wanted)} dependencies, {len(locked)} locked)")
