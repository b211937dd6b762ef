"""Package list for the folder mapping in pyproject.toml.

`methods/` becomes `imgbench.methods` and `tasks/` becomes `imgbench.tasks`; listing the packages
here keeps `find_packages` from also installing them as top-level `methods` / `tasks`.
"""

from setuptools import find_packages, setup

packages = ["imgbench", *(f"imgbench.{p}" for p in find_packages("imgbench"))]
packages += ["imgbench.methods", *(f"imgbench.methods.{p}" for p in find_packages("methods"))]
packages += ["imgbench.tasks"]
setup(packages=packages)
