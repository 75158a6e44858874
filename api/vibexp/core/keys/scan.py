"""Find VibeXP API keys in files, directory trees and (``git=True``) a repository's whole history.

Pure and framework-free: it returns :class:`Finding` objects whose ``key`` is the whole secret (kept so that
``vibexp scan --revoke`` can hash it) but whose ``repr`` and :meth:`Finding.line_text` show only the display prefix.
Binary files (a NUL byte in the first 8 KiB, as git decides) and ``.git`` directories are skipped; git history is
searched with ``git grep`` over every commit, in batches, which reads only the blobs it needs.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vibexp.core.errors import VibeXPError
from vibexp.core.keys.tokens import KEY_PREFIX, KEY_TOKEN_LENGTH, display_prefix

__all__ = ["Finding", "ScanError", "scan_git", "scan_paths"]

#: A key not glued to other identifier characters (``xvib_…`` or 65 hex characters is not a key).
KEY_RE = re.compile(rf"(?<![0-9A-Za-z_]){re.escape(KEY_PREFIX)}[0-9a-f]{{{KEY_TOKEN_LENGTH}}}(?![0-9A-Za-z_])")
_BINARY_SNIFF = 8192
#: Commits per ``git grep`` call: keeps the command line far below every OS's argument limit.
_REVS_PER_GREP = 200


class ScanError(VibeXPError):
    """The input cannot be scanned (unreadable file, missing path, not a git repository): exit code 2."""

    code = "scan_error"


@dataclass(frozen=True, slots=True)
class Finding:
    location: str
    line: int
    key: str = field(repr=False)

    def __repr__(self) -> str:  # never let the key reach a log through a repr
        return f"Finding({self.location!r}, {self.line}, {self.prefix!r})"

    @property
    def prefix(self) -> str:
        return display_prefix(self.key)

    def line_text(self) -> str:
        return f"{self.location}:{self.line}: {self.prefix}…"


def _is_binary(head: bytes) -> bool:
    return b"\0" in head[:_BINARY_SNIFF]


def _scan_file(path: Path) -> list[Finding]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ScanError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if _is_binary(data):
        return []
    text = data.decode("utf-8", errors="replace")
    found: list[Finding] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if KEY_PREFIX in line:
            found.extend(Finding(str(path), number, m.group()) for m in KEY_RE.finditer(line))
    return found


def _walk(root: Path) -> Iterator[Path]:
    for directory, subdirs, files in os.walk(root, onerror=_raise_walk_error):
        subdirs[:] = sorted(d for d in subdirs if d != ".git")
        for name in sorted(files):
            yield Path(directory, name)


def _raise_walk_error(exc: OSError) -> None:
    raise ScanError(f"cannot read {exc.filename}: {exc.strerror or exc}")


def scan_paths(paths: Iterable[str | Path]) -> list[Finding]:
    """Keys in the given files and directory trees (``.git`` directories and binary files skipped)."""
    found: list[Finding] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for file in _walk(path):
                if file.is_file() and not file.is_symlink():
                    found.extend(_scan_file(file))
        elif path.exists():
            found.extend(_scan_file(path))
        else:
            raise ScanError(f"no such file or directory: {path}")
    return found


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed argument vector, no shell
        ["git", "-C", str(repo), *args],  # noqa: S607 - git from PATH, as the user runs it
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
    )


def scan_git(repo: str | Path) -> list[Finding]:
    """Keys anywhere in a repository's history: ``<commit>:<path>:<line>``, each key once at its newest commit."""
    root = Path(repo)
    if not root.is_dir() or _git(root, "rev-parse", "--git-dir").returncode != 0:
        raise ScanError(f"not a git repository: {root}")
    listed = _git(root, "rev-list", "--all")
    if listed.returncode != 0:
        # An empty repository (no commit yet) has no history to search.
        return []
    revs = listed.stdout.split()
    found: list[Finding] = []
    seen: set[tuple[str, str]] = set()
    pattern = rf"(^|[^0-9A-Za-z_]){KEY_PREFIX}[0-9a-f]{{{KEY_TOKEN_LENGTH}}}([^0-9A-Za-z_]|$)"
    for start in range(0, len(revs), _REVS_PER_GREP):
        batch = revs[start : start + _REVS_PER_GREP]
        result = _git(root, "grep", "-I", "-n", "--no-color", "-E", pattern, *batch, "--")
        if result.returncode not in (0, 1):  # 1: no match in this batch
            raise ScanError(f"git grep failed in {root}: {result.stderr.strip()}")
        for out in result.stdout.splitlines():
            rev, _, rest = out.partition(":")
            path, _, rest = rest.partition(":")
            number, _, content = rest.partition(":")
            for match in KEY_RE.finditer(content):
                if (path, match.group()) not in seen:
                    seen.add((path, match.group()))
                    found.append(Finding(f"{rev[:12]}:{path}", int(number), match.group()))
    return found
