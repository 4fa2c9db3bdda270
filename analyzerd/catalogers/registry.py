"""CATALOGERS: every cataloger, once. Adding an ecosystem is adding its module and a line here."""

from __future__ import annotations

from typing import Final

from .apk import APK
from .base import Cataloger
from .distro import DISTRO
from .dpkg import DPKG
from .gem import GEMFILE_LOCK, GEMSPEC
from .npm import NPM_LOCK, NPM_PACKAGE
from .python import PYTHON_CATALOGERS
from .rpm import RPM

__all__ = ["CATALOGERS"]

CATALOGERS: Final[tuple[Cataloger, ...]] = (DISTRO, DPKG, APK, RPM, *PYTHON_CATALOGERS, NPM_PACKAGE, NPM_LOCK,
                                               GEMSPEC, GEMFILE_LOCK)
