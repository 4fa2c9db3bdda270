"""CATALOGERS: every cataloger, once. Adding an ecosystem is adding its module and a line here."""

from __future__ import annotations

from typing import Final

from .apk import APK
from .base import Cataloger
from .binary import BINARY
from .distro import DISTRO
from .dotnet import DOTNET_DEPS
from .dpkg import DPKG
from .gem import GEMFILE_LOCK, GEMSPEC
from .golang import GO_MOD, GO_SUM
from .java import JAVA_ARCHIVE
from .npm import NPM_LOCK, NPM_PACKAGE
from .php import COMPOSER_INSTALLED, COMPOSER_LOCK
from .python import PYTHON_CATALOGERS
from .rpm import RPM
from .rust import CARGO_LOCK

__all__ = ["CATALOGERS"]

CATALOGERS: Final[tuple[Cataloger, ...]] = (DISTRO, DPKG, APK, RPM, *PYTHON_CATALOGERS, NPM_PACKAGE, NPM_LOCK,
                                               GEMSPEC, GEMFILE_LOCK, JAVA_ARCHIVE, GO_MOD, GO_SUM, CARGO_LOCK,
                                               COMPOSER_INSTALLED, COMPOSER_LOCK, DOTNET_DEPS, BINARY)
