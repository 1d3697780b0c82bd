"""Modules that the libraries on `assume`'s path import at module level and `assume` never uses,
loaded only if something touches them: the standard library's ``importlib.util.LazyLoader``,
given by a finder on ``sys.meta_path``. The modules are the real ones; nothing is stubbed. A
module is executed on its first attribute access, so one that a run does use works as before.

Each one is a module that a whole run of `assume` leaves untouched (measured by making every
module lazy and listing those never executed; ``tests/integration/test_assume_imports.py``
holds the list of modules a run does execute):

- colorama: colorlog imports it for Windows consoles only;
- zipfile, csv, shutil, mimetypes: ``importlib.metadata`` (which urllib3's HTTP/2 module imports
  for a version check it makes only when HTTP/2 is switched on), and urllib3's multipart forms;
- botocore's legacy retry handler, its client-side monitoring, its adaptive retry mode and its
  waiters (the pipe uses the standard mode and no waiter), jmespath's parser (paginators and
  waiters), dateutil's relativedelta, and the e-mail header codecs and ``stringprep`` (IDNA's
  nameprep for non-ASCII host names), ``signal`` (subprocess: credential_process).

Installed by the entry point for `assume` only: LazyLoader is not thread-safe before Python
3.12.3 (two threads touching a module first at once), and the other actions use threads."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

LAZY = frozenset(
    {
        "colorama",
        "zipfile",
        "csv",
        "shutil",
        "mimetypes",
        "botocore.monitoring",
        "botocore.retryhandler",
        "botocore.translate",
        "botocore.retries.adaptive",
        "botocore.waiter",
        "jmespath.parser",
        "jmespath.functions",
        "dateutil.relativedelta",
        "email.header",
        "email.base64mime",
        "email.quoprimime",
        "stringprep",
        "signal",
    }
)


class LazyFinder:
    """A meta path finder that finds the modules in ``names`` with the other finders, and loads
    them lazily (source and bytecode modules only: LazyLoader cannot defer an extension)."""

    def __init__(self, names: frozenset[str] = LAZY) -> None:
        self.names = names

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name not in self.names:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec: ModuleSpec | None = finder.find_spec(name, path, target)
            if spec is None:
                continue
            if spec.loader is not None and type(spec.loader).__name__ in (
                "SourceFileLoader",
                "SourcelessFileLoader",
            ):
                spec.loader = importlib.util.LazyLoader(spec.loader)
            return spec
        return None


def install() -> None:
    """Load the LAZY modules lazily from now on (once per process)."""
    if not any(isinstance(finder, LazyFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, LazyFinder())
