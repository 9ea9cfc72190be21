"""Build shim for what pyproject.toml cannot say: the repository's top-level configs/ ships inside the package as
`gan_color.configs` (a package-dir mapping next to automatic package discovery). Everything else is in pyproject.toml;
the tools find the configs through `gan_color.tools.configs.config_path`."""

from setuptools import find_namespace_packages, find_packages, setup

CONFIGS = ["gan_color.configs",
           *(f"gan_color.configs.{name}" for name in find_namespace_packages("configs", exclude=["__pycache__*"]))]

setup(packages=[*find_packages(include=["gan_color*", "baselines*"]), *CONFIGS],
      package_dir={"gan_color.configs": "configs"})
