"""The wheel's packages: every package under harness/, plus the top-level conf/ and sweeps/ mapped into it as
harness/conf and harness/sweeps (package data; read by harness/spec/resources.py). Everything else is in pyproject.toml.

Why a setup.py: pyproject.toml's [tool.setuptools] takes either a package finder or a package list with a
package-dir mapping, not both; the mapping of two folders outside harness/ needs the list, and the finder keeps it
from going stale when a package is added.
"""

from setuptools import find_packages, setup

MAPPED = {"harness.conf": "conf", "harness.sweeps": "sweeps"}  # package name -> folder at the top of the repo

setup(
    packages=[*find_packages(include=["harness", "harness.*"]), *MAPPED],
    package_dir=MAPPED,
    package_data={"harness.conf": ["*.yaml", "*/*.yaml"], "harness.sweeps": ["*.yaml"],
                  # what AReaL's own Python runs (not modules of the harness) and AReaL v1.0.4's GSM8K example
                  "harness.engines.areal": ["areal_side/*.py", "areal_side/*/*.py", "areal_examples/*.md",
                                            "areal_examples/examples/math/*"]},
)
