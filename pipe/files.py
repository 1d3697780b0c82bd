"""The one way the pipe writes (and reads back) files on disk: credentials.env and the shared
files, a ``profile:`` target's credentials file, rotation.json and the check's reports.

The rules (issue 7, items 8 to 10):

- **No symlink in any component of the path.** Paths reach this module canonical:
  ``config.load`` resolves once the part of a path the repository cannot control (for a path
  inside the clone directory, the clone directory's own location; for a path outside it, its
  parent directories, which belong to the system or to whoever set the variable) and keeps the
  rest as written. From ``/`` down, every directory is opened relative to its parent's fd with
  ``O_DIRECTORY | O_NOFOLLOW``, so a committed ``.bitbucket -> ../elsewhere`` is refused, not
  followed, and nothing can swap a component between the check and the write.
- Missing directories are created one at a time (``mkdir`` relative to the parent's fd), 0700
  for private files (credentials), 0755 for reports, and opened the same way.
- A file is written as a temp with a unique name (``.<name>.<16 hex>.tmp``, created with
  ``O_CREAT | O_EXCL | O_NOFOLLOW``, mode set with fchmod whatever the umask), fsynced, renamed
  over the final name through the directory's fd, and the directory is fsynced. The final name
  must not be a symlink or a directory. On any failure the temp is removed. ``durable=False``
  (assume's hand-off to the rest of its own step) skips the two fsyncs and keeps the rest: the
  rename still makes each file appear whole or not at all, and a killed pipe loses nothing (the
  page cache outlives the process). What fsync adds is surviving the machine's crash, which ends
  the step that would read the files anyway; it cost 1.5 to 30 ms a run on a busy disk.
- Private files are 0600, always: a credentials file that existed with a wider mode is
  tightened. A file replaced while running as root keeps its owner (unless an owner is given),
  except a private file: it keeps its owner only when that owner also owns the directory (who
  could replace it anyway); otherwise it becomes the pipe's (or the given owner's). A private
  file never passes to whoever planted the file it replaces (issue 15, item 11).
- The pipe's own private directory (CREDENTIALS_DIR), and every directory on its path, must
  belong to root, the pipe's uid or the owner it hands the files to (the clone directory's
  owner). One made by another user (say a 0777 directory an earlier step created) is refused,
  before any call (every directory on the path) and again when writing (the directory itself):
  its owner could read the credentials, or rename the directory and put another in its place
  before the step sources credentials.env. Taking it over is no cure: its owner may hold it
  open, or own the directory above it.
- A temp left by a killed run (``.<name>.<digits or 16 hex>.tmp``: the old pid naming too; a
  regular file, same owner) is removed before writing. Writers hold a shared ``flock`` on the
  directory while their temp exists, and the sweep runs only under the exclusive lock, so it
  never removes the temp of a live writer (a killed process holds no lock).
- Every OS error becomes an ``OutputError`` that names the variable which chose the place and
  says what to change: never "Unexpected internal error", never file contents.
"""

# Over 300 lines: one set of rules (no symlink, atomic, modes, stale temps); split, the checks
# would sit apart from the writes they protect.

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path

from pipe.errors import InputError, OutputError, SymlinkError

PRIVATE_FILE, PRIVATE_DIR = 0o600, 0o700
PUBLIC_FILE, PUBLIC_DIR = 0o644, 0o755
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _hint(variable: str) -> str:
    if variable == "AWS_SHARED_CREDENTIALS_FILE":
        return "Point AWS_SHARED_CREDENTIALS_FILE at a readable, writable file (not a symlink)."
    return f"Point {variable} at a writable directory with no symlink in its path."


def _error(variable: str, what: str, exc: OSError) -> OutputError:
    reason = exc.strerror or type(exc).__name__
    return OutputError(f"{variable}: cannot {what} ({reason})", _hint(variable))


def _symlink(variable: str, path: Path) -> SymlinkError:
    return SymlinkError(
        f"{variable}: {path} is a symlink; the pipe does not write through symlinks",
        f"Remove the symlink, or point {variable} elsewhere.",
    )


def _absolute(path: Path) -> Path:
    """Absolute and free of '.' and '..' (lexically: no component is followed anyway)."""
    return Path(os.path.normpath(os.path.abspath(path)))


def _foreign(info: os.stat_result, path: Path, variable: str, owner: tuple[int, int] | None) -> str | None:
    """Why a directory on the way to a private directory of the pipe's cannot be used (a user
    other than root, the pipe's or ``owner`` owns it), or None."""
    allowed = {0, os.geteuid()} | ({owner[0]} if owner else set())
    if info.st_uid in allowed:
        return None
    whose = ", ".join(
        ["root's", f"the pipe's (uid {os.geteuid()})"]
        + ([f"the clone directory owner's (uid {owner[0]})"] if owner else [])
    )
    return (
        f"{variable}: {path} belongs to uid {info.st_uid}, not {whose}; its owner could read the "
        "credentials written there or replace them before the step uses them"
    )


def _foreign_hint(path: Path, variable: str) -> str:
    return (
        f"Remove {path} (the pipe creates what is missing, 0700), or point {variable} at a directory "
        "of the step's own user."
    )


def preflight(
    directory: Path,
    variable: str,
    names: tuple[str, ...] = (),
    *,
    private: bool = False,
    owner: tuple[int, int] | None = None,
) -> None:
    """Before any call to AWS: refuse a path with a symlink in it, a component that is not a
    directory, and final names that are symlinks or directories. Missing parts are fine.
    ``private``: the directory is the pipe's own (see the rules above): no directory on its path
    may belong to another user than root, the pipe's or ``owner``."""
    directory = _absolute(directory)
    current = Path(directory.anchor)
    for part in directory.parts[1:]:
        current = current / part
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise InputError(variable, f"{variable} {directory} cannot be read ({exc.strerror})") from None
        mode = info.st_mode
        if stat.S_ISLNK(mode):
            raise InputError(
                variable,
                f"{variable} {directory}: {current} is a symlink; the pipe does not write through symlinks",
                f"Remove the symlink, or point {variable} at a path without one.",
            )
        if not stat.S_ISDIR(mode):
            raise InputError(
                variable,
                f"{variable} {directory}: {current} is not a directory",
                f"Point {variable} at a directory.",
            )
        problem = _foreign(info, current, variable, owner) if private else None
        if problem:
            raise InputError(variable, problem, _foreign_hint(current, variable))
    for name in names:
        try:
            mode = os.lstat(directory / name).st_mode
        except OSError:
            continue
        if stat.S_ISLNK(mode) or stat.S_ISDIR(mode):
            kind = "a symlink" if stat.S_ISLNK(mode) else "a directory"
            raise InputError(
                variable,
                f"{variable}: {directory / name} is {kind}; the pipe does not write through symlinks",
                f"Remove it, or point {variable} elsewhere.",
            )


def _classify(parent: int, name: str, path: Path, variable: str, exc: OSError) -> OutputError:
    """Why opening a directory component failed: a symlink, not a directory, or the OS said no."""
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        try:
            mode = os.lstat(name, dir_fd=parent).st_mode
        except OSError:
            mode = 0
        if stat.S_ISLNK(mode):
            return _symlink(variable, path)
        return OutputError(f"{variable}: {path} is not a directory", f"Point {variable} at a directory.")
    return _error(variable, f"open {path}", exc)


def open_directory(
    directory: Path,
    variable: str,
    *,
    create: bool,
    mode: int = PRIVATE_DIR,
    owner: tuple[int, int] | None = None,
) -> int | None:
    """An fd of ``directory``, reached from ``/`` without following any symlink. Missing
    directories are created with ``mode`` (and handed to ``owner``) when ``create``; otherwise a
    missing directory gives None. The caller closes the fd."""
    directory = _absolute(directory)
    try:
        fd = os.open(directory.anchor, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise _error(variable, f"open {directory.anchor}", exc) from None
    current = Path(directory.anchor)
    try:
        for name in directory.parts[1:]:
            current = current / name
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    os.close(fd)
                    return None
                child = _make(fd, name, current, variable, mode=mode, owner=owner)
            except OSError as exc:
                raise _classify(fd, name, current, variable, exc) from None
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _make(
    parent: int, name: str, path: Path, variable: str, *, mode: int, owner: tuple[int, int] | None
) -> int:
    try:
        os.mkdir(name, mode, dir_fd=parent)
        created = True
    except FileExistsError:
        created = False  # made meanwhile by someone else: open it like any other
    except OSError as exc:
        raise _error(variable, f"create {path}", exc) from None
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    except OSError as exc:
        raise _classify(parent, name, path, variable, exc) from None
    try:
        if created:
            os.fchmod(fd, mode)  # mkdir's mode went through the umask
            if owner:
                os.fchown(fd, *owner)
    except OSError as exc:
        os.close(fd)
        raise _error(variable, f"set the mode of {path}", exc) from None
    return fd


def _stale_name(name: str) -> re.Pattern[str]:
    return re.compile(rf"\.{re.escape(name)}\.(?:[0-9]+|[0-9a-f]{{16}})\.tmp", re.ASCII)


def _sweep(dir_fd: int, names: tuple[str, ...]) -> None:
    """Remove the temps of our earlier, killed runs. Best effort: a temp that cannot be removed
    is left alone (it no longer blocks anything: every temp name is unique)."""
    patterns = [_stale_name(name) for name in names]
    uid = os.geteuid()
    try:
        with os.scandir(dir_fd) as entries:
            stale = [e.name for e in entries if any(p.fullmatch(e.name) for p in patterns)]
    except OSError:
        return
    for name in stale:
        try:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISREG(info.st_mode) and info.st_uid == uid:
                os.unlink(name, dir_fd=dir_fd)
        except OSError:
            continue


@contextlib.contextmanager
def _writing(dir_fd: int, names: tuple[str, ...]) -> Iterator[None]:
    """Hold the directory's shared lock while writing; sweep stale temps first when no other
    writer is at work (the exclusive lock is free)."""
    try:
        fcntl.flock(dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        pass  # another writer is at work (or the filesystem has no locks): no sweep this time
    else:
        _sweep(dir_fd, names)
    with contextlib.suppress(OSError):
        fcntl.flock(dir_fd, fcntl.LOCK_SH)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(dir_fd, fcntl.LOCK_UN)


def _existing(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _write_at(
    dir_fd: int,
    directory: Path,
    name: str,
    data: bytes,
    *,
    variable: str,
    mode: int,
    owner: tuple[int, int] | None,
    durable: bool = True,
) -> None:
    path = directory / name
    try:
        before = _existing(dir_fd, name)
    except OSError as exc:
        raise _error(variable, f"read {path}", exc) from None
    if before is not None and stat.S_ISLNK(before.st_mode):
        raise _symlink(variable, path)
    if before is not None and stat.S_ISDIR(before.st_mode):
        raise OutputError(f"{variable}: {path} is a directory", f"Remove it, or point {variable} elsewhere.")
    # A file replaced as root keeps its owner; a private one only when that owner owns the
    # directory too (and could replace the file anyway): never a planted file's owner.
    if (
        owner is None
        and before is not None
        and os.geteuid() == 0
        and before.st_uid != 0
        and (mode != PRIVATE_FILE or _directory_owner(dir_fd) == before.st_uid)
    ):
        owner = (before.st_uid, before.st_gid)
    temporary = f".{name}.{os.urandom(8).hex()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(temporary, flags, PRIVATE_FILE, dir_fd=dir_fd)
    except OSError as exc:
        raise _error(variable, f"write in {directory}", exc) from None
    try:
        try:
            os.fchmod(fd, mode)
            if owner:
                os.fchown(fd, *owner)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        now = _existing(dir_fd, name)
        if now is not None and stat.S_ISLNK(now.st_mode):
            raise _symlink(variable, path)
        os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=dir_fd)
        if isinstance(exc, OSError):
            raise _error(variable, f"write {path}", exc) from None
        raise


def _encode(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode()


def write_files(
    directory: Path,
    contents: Mapping[str, str | bytes],
    *,
    variable: str,
    private: bool,
    owner: tuple[int, int] | None = None,
    tighten: bool = False,
    durable: bool = True,
) -> None:
    """Write each of ``contents`` (name -> text) atomically in ``directory``, creating it.
    ``tighten``: the directory is the pipe's own (CREDENTIALS_DIR): make it 0700 even if it
    existed with another mode, and hand it to ``owner``. ``durable``: fsync the files and the
    directory (see the top of this module for when it is not needed)."""
    file_mode, dir_mode = (PRIVATE_FILE, PRIVATE_DIR) if private else (PUBLIC_FILE, PUBLIC_DIR)
    directory = _absolute(directory)
    dir_fd = open_directory(directory, variable, create=True, mode=dir_mode, owner=owner)
    assert dir_fd is not None
    try:
        if tighten:
            _own_directory(dir_fd, directory, variable, owner)
        with _writing(dir_fd, tuple(contents)):
            for name, text in contents.items():
                _write_at(
                    dir_fd,
                    directory,
                    name,
                    _encode(text),
                    variable=variable,
                    mode=file_mode,
                    owner=owner,
                    durable=durable,
                )
        if durable:
            with contextlib.suppress(OSError):
                os.fsync(dir_fd)  # the renames are durable
    finally:
        os.close(dir_fd)


def _directory_owner(dir_fd: int) -> int | None:
    try:
        return os.fstat(dir_fd).st_uid
    except OSError:
        return None


def _own_directory(dir_fd: int, directory: Path, variable: str, owner: tuple[int, int] | None) -> None:
    """A private directory of ours is 0700 (and handed to ``owner``); one that belongs to
    another user than the pipe's or ``owner`` is refused (see the rules above)."""
    try:
        info = os.fstat(dir_fd)
    except OSError as exc:
        raise _error(variable, f"read {directory}", exc) from None
    problem = _foreign(info, directory, variable, owner)
    if problem:
        raise OutputError(problem, _foreign_hint(directory, variable))
    try:
        if stat.S_IMODE(info.st_mode) != PRIVATE_DIR:
            os.fchmod(dir_fd, PRIVATE_DIR)
        if owner and (info.st_uid, info.st_gid) != owner:
            os.fchown(dir_fd, *owner)
    except OSError as exc:
        raise _error(variable, f"set the mode of {directory}", exc) from None


def write_file(
    path: Path,
    text: str | bytes,
    *,
    variable: str,
    private: bool,
    owner: tuple[int, int] | None = None,
) -> Path:
    """Write one file atomically, creating its directory. Returns the path written."""
    path = _absolute(path)
    write_files(path.parent, {path.name: text}, variable=variable, private=private, owner=owner)
    return path


def read_file(path: Path, *, variable: str) -> bytes | None:
    """The bytes of ``path``, reached without following any symlink; None when it does not
    exist. A symlink, a directory or an unreadable file is an OutputError, never "empty"."""
    path = _absolute(path)
    dir_fd = open_directory(path.parent, variable, create=False)
    if dir_fd is None:
        return None
    try:
        try:
            fd = os.open(path.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _symlink(variable, path) from None
            raise _error(variable, f"read {path}", exc) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OutputError(f"{variable}: {path} is not a regular file", _hint(variable))
            chunks = []
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
            return b"".join(chunks)
        except OSError as exc:
            raise _error(variable, f"read {path}", exc) from None
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)
