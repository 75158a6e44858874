"""Find VibeXP API keys and OAuth secrets in files, directory trees and (``git=True``) a repository's whole history.

OAuth secrets are ``vibo_`` access tokens, ``vibr_`` refresh tokens and ``vibc_`` authorization codes (prefix and 64
hex characters, ``vibexp.core.oauth.tokens``: the prefixes are spelled here, as the keys layer imports no upper
domain). They carry no checksum: the prefix and the exact length are distinctive enough. ``vibexp scan --revoke``
(and a report to ``POST /api/v1/leaked-keys``) revokes the connected app a token or a still-unused code belongs to.

Pure and framework-free: it returns :class:`Finding` objects whose ``key`` is the whole secret (kept so that
``vibexp scan --revoke`` can hash it) but whose ``repr`` and :meth:`Finding.line_text` show only the display prefix.
Binary files (a NUL byte in the first 8 KiB, as git decides) and ``.git`` directories are skipped, except UTF-16 and
UTF-32 text (a byte-order mark, or UTF-16 without one: NUL bytes in every other position), which is decoded. Git
history is searched with ``git grep`` over every commit, in batches, which reads only the blobs it needs; blobs git
takes for binary are read once each to find UTF-16 text among them; commit and tag messages are searched too.

A key-shaped string (``vib_`` + 64 hex) counts only when its last 8 characters are its checksum (every key made
since checksums were introduced; a random string passes with a chance of 1 in 2^32): a string that fails it is a
typo, a hash or a test value far more often than a key. Keys made before checksums cannot be told from such strings
without the database, so they are reported only with ``include_unchecked=True`` (``vibexp scan --legacy``); the
others are counted in :class:`ScanStats`.

Locations are printed with every non-printable character escaped (``\x1b``): a file name may hold terminal escape
sequences, and a scanner's output must not run them.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vibexp.core.errors import VibeXPError
from vibexp.core.keys.tokens import KEY_PREFIX, KEY_TOKEN_LENGTH, display_prefix, has_valid_checksum

__all__ = ["SECRET_KINDS", "Finding", "ScanError", "ScanStats", "printable", "scan_git", "scan_paths"]

#: What each secret's prefix makes it (``vib_``: an API key; the others: ``vibexp.core.oauth.tokens``).
SECRET_KINDS = {
    KEY_PREFIX: "API key",
    "vibo_": "OAuth access token",
    "vibr_": "OAuth refresh token",
    "vibc_": "OAuth authorization code",
}
#: A key or OAuth secret not glued to other identifier characters (``xvib_…`` or 65 hex characters is none).
KEY_RE = re.compile(rf"(?<![0-9A-Za-z_])vib[ocr]?_[0-9a-f]{{{KEY_TOKEN_LENGTH}}}(?![0-9A-Za-z_])")
_BINARY_SNIFF = 8192
#: Commits per ``git grep`` call: keeps the command line far below every OS's argument limit.
_REVS_PER_GREP = 200


class ScanError(VibeXPError):
    """The input cannot be scanned (unreadable file, missing path, not a git repository): exit code 2."""

    code = "scan_error"


@dataclass(slots=True)
class ScanStats:
    """What a scan read: files (or blobs), commits and messages, and the key-shaped strings it left out."""

    files: int = 0
    commits: int = 0
    messages: int = 0
    #: Key-shaped strings whose checksum fails (not reported unless ``include_unchecked``).
    unchecked: int = 0

    def summary(self) -> str:
        read = f"{self.files} file(s)"
        if self.commits:
            read += f" in {self.commits} commit(s) and {self.messages} commit or tag message(s)"
        return read


def printable(text: str) -> str:
    """``text`` with every non-printable character (control, escape, bidi override ...) as a Python escape."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


@dataclass(frozen=True, slots=True)
class Finding:
    location: str
    line: int
    key: str = field(repr=False)

    def __repr__(self) -> str:  # never let the key reach a log through a repr
        return f"Finding({self.location!r}, {self.line}, {self.prefix!r})"

    @property
    def kind(self) -> str:
        """``API key``, ``OAuth access token``, ``OAuth refresh token`` or ``OAuth authorization code``."""
        return SECRET_KINDS[self.key[: self.key.index("_") + 1]]

    @property
    def is_key(self) -> bool:
        return self.key.startswith(KEY_PREFIX)

    @property
    def prefix(self) -> str:
        """The prefix and the first 8 hex characters: enough to recognise the secret, useless to an attacker."""
        return display_prefix(self.key) if self.is_key else self.key[: self.key.index("_") + 9]

    @property
    def checksum_ok(self) -> bool:
        return has_valid_checksum(self.key) if self.is_key else True  # OAuth secrets carry no checksum

    def line_text(self) -> str:
        note = "" if self.checksum_ok else " (no valid checksum: a key made before checksums?)"
        if not self.is_key:
            note = f" ({self.kind})"
        return f"{printable(self.location)}:{self.line}: {self.prefix}…{note}"


#: Byte-order marks, longest first (the UTF-32 LE mark starts with the UTF-16 LE one).
_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)


def _text_encoding(data: bytes) -> str | None:
    """The encoding to read ``data`` with, or ``None`` for binary data."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding
    head = data[:_BINARY_SNIFF]
    if b"\0" not in head:
        return "utf-8"
    # UTF-16 without a mark: mostly ASCII text has a NUL in every other byte and nowhere else.
    even, odd = head[0::2], head[1::2]
    if len(head) >= 8 and len(head) % 2 == 0:
        if b"\0" not in even and odd.count(0) >= len(odd) * 3 // 4:
            return "utf-16-le"
        if b"\0" not in odd and even.count(0) >= len(even) * 3 // 4:
            return "utf-16-be"
    return None


def _scan_text(data: bytes, location: str, *, first_line: int = 1) -> list[Finding]:
    encoding = _text_encoding(data)
    if encoding is None:
        return []
    text = data.decode(encoding, errors="replace")
    found: list[Finding] = []
    for number, line in enumerate(text.splitlines(), start=first_line):
        if "vib" in line:
            found.extend(Finding(location, number, m.group()) for m in KEY_RE.finditer(line))
    return found


def _keep(findings: list[Finding], stats: ScanStats, include_unchecked: bool) -> list[Finding]:
    kept = [f for f in findings if include_unchecked or f.checksum_ok]
    stats.unchecked += sum(1 for f in findings if not f.checksum_ok)
    return kept


def _scan_file(path: Path) -> list[Finding]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ScanError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return _scan_text(data, str(path))


def _walk(root: Path) -> Iterator[Path]:
    for directory, subdirs, files in os.walk(root, onerror=_raise_walk_error):
        subdirs[:] = sorted(d for d in subdirs if d != ".git")
        for name in sorted(files):
            yield Path(directory, name)


def _raise_walk_error(exc: OSError) -> None:
    raise ScanError(f"cannot read {exc.filename}: {exc.strerror or exc}")


def scan_paths(
    paths: Iterable[str | Path], *, include_unchecked: bool = False, stats: ScanStats | None = None
) -> list[Finding]:
    """Keys in the given files and directory trees (``.git`` directories and binary files skipped)."""
    stats = stats if stats is not None else ScanStats()
    found: list[Finding] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for file in _walk(path):
                if file.is_file() and not file.is_symlink():
                    stats.files += 1
                    found.extend(_scan_file(file))
        elif path.exists():
            stats.files += 1
            found.extend(_scan_file(path))
        else:
            raise ScanError(f"no such file or directory: {printable(str(path))}")
    return _keep(found, stats, include_unchecked)


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed argument vector, no shell
        ["git", "-C", str(repo), *args],  # noqa: S607 - git from PATH, as the user runs it
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
    )


def _git_bytes(repo: Path, *args: str, stdin: bytes | None = None) -> bytes:
    result = subprocess.run(  # noqa: S603 - fixed argument vector, no shell
        ["git", "-C", str(repo), *args],  # noqa: S607 - git from PATH, as the user runs it
        input=stdin,
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        raise ScanError(f"git {args[0]} failed in {repo}: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def _grep_history(root: Path, revs: list[str]) -> list[Finding]:
    """Keys in the text blobs of every commit: ``git grep`` (``-z``: a path may hold ``:``)."""
    found: list[Finding] = []
    pattern = rf"(^|[^0-9A-Za-z_])vib[ocr]?_[0-9a-f]{{{KEY_TOKEN_LENGTH}}}([^0-9A-Za-z_]|$)"
    for start in range(0, len(revs), _REVS_PER_GREP):
        batch = revs[start : start + _REVS_PER_GREP]
        result = _git(root, "grep", "-z", "-I", "-n", "--no-color", "-E", pattern, *batch, "--")
        if result.returncode not in (0, 1):  # 1: no match in this batch
            raise ScanError(f"git grep failed in {root}: {result.stderr.strip()}")
        for out in result.stdout.splitlines():
            name, number, content = [*out.split("\0", 2), "", ""][:3]
            rev, _, path = name.partition(":")
            for match in KEY_RE.finditer(content):
                found.append(Finding(f"{rev[:12]}:{path}", int(number), match.group()))
    return found


def _binary_blobs(root: Path, stats: ScanStats) -> list[Finding]:
    """Keys in the blobs ``git grep -I`` skips as binary that are UTF-16/32 text (each blob read once)."""
    listed = _git_bytes(root, "rev-list", "--all", "--objects").decode(errors="surrogateescape")
    paths: dict[str, str] = {}
    for line in listed.splitlines():
        sha, _, path = line.partition(" ")
        if path:
            paths.setdefault(sha, path)
    if not paths:
        return []
    checked = _git_bytes(root, "cat-file", "--batch-check", stdin="".join(f"{sha}\n" for sha in paths).encode())
    blobs = [line.split()[0].decode() for line in checked.splitlines() if line.split()[1:2] == [b"blob"]]
    stats.files += len(blobs)
    found: list[Finding] = []
    batch = _git_bytes(root, "cat-file", "--batch", stdin="".join(f"{sha}\n" for sha in blobs).encode())
    position = 0
    for sha in blobs:
        header_end = batch.index(b"\n", position)
        size = int(batch[position:header_end].split()[2])
        data = batch[header_end + 1 : header_end + 1 + size]
        position = header_end + 1 + size + 1
        if b"\0" not in data[:_BINARY_SNIFF] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
            continue  # text git grep has searched already
        findings = _scan_text(data, "", first_line=1)
        if findings and _text_encoding(data) not in (None, "utf-8", "utf-8-sig"):
            newest = _git(root, "log", "--all", "-1", "--format=%H", f"--find-object={sha}").stdout.strip()
            location = f"{newest[:12] or sha[:12]}:{paths[sha]}"
            found.extend(Finding(location, f.line, f.key) for f in findings)
    return found


def _messages(root: Path, stats: ScanStats) -> list[Finding]:
    """Keys in every commit message and annotated tag message."""
    found: list[Finding] = []
    commits = _git_bytes(root, "log", "--all", "--format=%H%x00%B%x00").decode(errors="replace").split("\0")
    for sha, message in zip(commits[0::2], commits[1::2], strict=False):
        stats.messages += 1
        found.extend(_scan_text(message.encode(), f"commit {sha.strip()[:12]} message"))
    tags = _git_bytes(root, "for-each-ref", "refs/tags", "--format=%(objecttype)%00%(refname:short)%00%(contents)%00")
    fields = tags.decode(errors="replace").split("\0")
    for kind, name, message in zip(fields[0::3], fields[1::3], fields[2::3], strict=False):
        if kind.strip() == "tag":  # an annotated tag; a lightweight one has no message of its own
            stats.messages += 1
            found.extend(_scan_text(message.encode(), f"tag {name} message"))
    return found


def scan_git(repo: str | Path, *, include_unchecked: bool = False, stats: ScanStats | None = None) -> list[Finding]:
    """Keys anywhere in a repository's history: ``<commit>:<path>:<line>``, each key once at its newest commit; and
    in commit and tag messages (``commit <sha> message:<line>``, ``tag <name> message:<line>``)."""
    stats = stats if stats is not None else ScanStats()
    root = Path(repo)
    if not root.is_dir() or _git(root, "rev-parse", "--git-dir").returncode != 0:
        raise ScanError(f"not a git repository: {printable(str(root))}")
    listed = _git(root, "rev-list", "--all")
    if listed.returncode != 0:
        # An empty repository (no commit yet) has no history to search.
        return []
    revs = listed.stdout.split()
    stats.commits += len(revs)
    found: list[Finding] = []
    seen: set[tuple[str, str]] = set()
    for finding in [*_grep_history(root, revs), *_binary_blobs(root, stats), *_messages(root, stats)]:
        path = finding.location.partition(":")[2] if ":" in finding.location else finding.location
        if (path, finding.key) not in seen:
            seen.add((path, finding.key))
            found.append(finding)
    return _keep(found, stats, include_unchecked)
