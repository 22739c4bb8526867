"""``Environment`` (SDK v1 and v2 shapes) and ``CondaDependencies``: accepted, then ignored.

daskprs runs user code in the current Python environment, so an environment only has to be
constructible the way notebooks build one.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any


class Environment:
    """``azureml.core.Environment`` / ``azure.ai.ml.entities.Environment``: kept, not used."""

    def __init__(self, name: str | None = None, *, image: str | None = None,
                 conda_file: Any = None, version: str | None = None, **kwargs: Any) -> None:
        self.name = name
        self.image = image
        self.conda_file = conda_file
        self.version = version
        self.kwargs = kwargs
        self.python = SimpleNamespace(conda_dependencies=None, user_managed_dependencies=False,
                                      interpreter_path="python")
        self.docker = SimpleNamespace(enabled=False, base_image=image, base_dockerfile=None)
        self.environment_variables: dict[str, str] = {}

    @classmethod
    def from_conda_specification(cls, name: str, file_path: str) -> Environment:
        return cls(name, conda_file=file_path)

    @classmethod
    def from_pip_requirements(cls, name: str, file_path: str, **kwargs: Any) -> Environment:
        return cls(name, conda_file=file_path)

    @classmethod
    def from_dockerfile(cls, name: str, dockerfile: str, **kwargs: Any) -> Environment:
        return cls(name)

    @classmethod
    def get(cls, workspace: Any = None, name: str | None = None, version: Any = None
            ) -> Environment:
        return cls(name, version=version)

    def register(self, workspace: Any = None) -> Environment:
        return self

    def __repr__(self) -> str:
        return f"Environment(name={self.name!r}) (ignored: daskprs uses this Python environment)"


class CondaDependencies:
    """``azureml.core.conda_dependencies.CondaDependencies``: records packages, installs none."""

    def __init__(self, conda_dependencies_file_path: str | None = None, **kwargs: Any) -> None:
        self.packages: list[str] = []

    @classmethod
    def create(cls, pip_packages: Any = None, conda_packages: Any = None,
               **kwargs: Any) -> CondaDependencies:
        deps = cls()
        deps.packages = [*(pip_packages or []), *(conda_packages or [])]
        return deps

    def add_pip_package(self, name: str) -> None:
        self.packages.append(name)

    def add_conda_package(self, name: str) -> None:
        self.packages.append(name)
