"""The image's entry point: ``/opt/pipe/bin/python -I -S /opt/pipe/bin/entrypoint.py`` (Dockerfile
copies this file there; as a module of the package it is never imported).

``-I``, isolated mode: the working directory is the user's clone, and a ``pipe/`` folder there
(any clone of a pipe repository has one) must not shadow the installed pipe. Neither the
working directory nor this script's directory is on ``sys.path``, and no ``PYTHON*`` variable
is read.

``-S``, no ``site`` module: in this virtualenv, ``site`` only puts its site-packages on
``sys.path`` (the image holds no ``.pth`` file; the build checks it), and on Debian's python3
it also runs ``/etc/python3.X/sitecustomize.py`` (apport's hook, compiled at every start since
its directory holds no bytecode): 2 to 9 ms of every run, measured in the image. The one
directory ``site`` would add is added here, where ``site`` puts it (after the standard
library); the build checks that it is the virtualenv's purelib. Then the pipe runs as
``python -m pipe`` runs it: ``pipe/__main__.py`` as ``__main__``.
"""

import sys

sys.path.append(f"/opt/pipe/lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages")

if __name__ == "__main__":
    import runpy

    runpy.run_module("pipe", run_name="__main__", alter_sys=True)
