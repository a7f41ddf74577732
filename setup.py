"""The packages: alimb's and its Hydra plugins (hydra_plugins/, where Hydra finds them), found, and the config tree,
which lives in conf/ at the top of the repository and ships as alimb.conf (pyproject.toml maps the folder)."""

from setuptools import find_namespace_packages, setup

setup(packages=[*find_namespace_packages(include=["alimb", "alimb.*", "hydra_plugins", "hydra_plugins.*"]), "alimb.conf"])
