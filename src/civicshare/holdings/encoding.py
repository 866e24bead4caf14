"""Working out which character encoding a text file is in.

``auto`` accepts UTF-8 (with or without a byte-order mark) when the whole file is valid UTF-8. A
file that is not valid UTF-8 but holds valid multi-byte UTF-8 sequences is a damaged UTF-8 file and
is refused, naming every line with undecodable bytes. Otherwise the file is read as Windows-1252
(council systems still export it) if it decodes as such, and refused naming the lines if it does
not. Explicit encodings are checked the same way, without any fallback.

Only byte offsets and line numbers are ever reported, never the bytes themselves.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from pathlib import Path

from civicshare.errors import UsageError
from civicshare.holdings.problems import Problems

CHUNK_BYTES = 4 << 20
_WHITESPACE = b" \t\r\n\x0b\x0c"

# Requested name -> canonical name.
_ALIASES = {
    "auto": "auto",
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "utf_8": "utf-8",
    "utf-8-sig": "utf-8",
    "utf8-sig": "utf-8",
    "windows-1252": "windows-1252",
    "windows1252": "windows-1252",
    "cp1252": "windows-1252",
    "latin-1": "latin-1",
    "latin1": "latin-1",
    "iso-8859-1": "latin-1",
    "iso8859-1": "latin-1",
}
# Canonical/reported name -> Python codec.
_CODECS = {
    "utf-8": "utf-8",
    "utf-8-sig": "utf-8-sig",
    "windows-1252": "cp1252",
    "latin-1": "latin-1",
}
_HUMAN = {"utf-8": "UTF-8", "windows-1252": "Windows-1252", "latin-1": "Latin-1"}

# A complete, well-formed UTF-8 sequence of two to four bytes (RFC 3629, no surrogates).
_UTF8_MULTIBYTE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]"
    rb"|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]"
    rb"|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)


@dataclass(frozen=True)
class Decoding:
    """How to read a text file."""

    encoding: str  # as reported: "utf-8", "utf-8-sig", "windows-1252" or "latin-1"
    blank: bool  # nothing but whitespace (and perhaps a byte-order mark)

    @property
    def codec(self) -> str:
        """The Python codec; ``utf-8-sig`` drops the byte-order mark."""
        return _CODECS[self.encoding]

    @property
    def is_utf8(self) -> bool:
        return self.encoding in ("utf-8", "utf-8-sig")


def normalise_encoding(name: str) -> str:
    """``auto``, ``utf-8``, ``windows-1252`` or ``latin-1``; anything else is a usage error."""
    canonical = _ALIASES.get(str(name).strip().lower())
    if canonical is None:
        raise UsageError(f"unknown encoding {name!r}: use auto, utf-8, windows-1252 (cp1252) or latin-1")
    return canonical


def _has_bom(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(3) == codecs.BOM_UTF8


def _scan(path: Path, codec: str, skip: int) -> tuple[bool, bool]:
    """(decodes cleanly, blank) for the whole file, reading it in chunks."""
    decoder = codecs.getincrementaldecoder(codec)("strict")
    blank = True
    valid = True
    with path.open("rb") as f:
        f.seek(skip)
        while chunk := f.read(CHUNK_BYTES):
            if blank and chunk.strip(_WHITESPACE):
                blank = False
            if valid:
                # Pure-ASCII chunks decode identically in every codec we accept.
                if chunk.isascii() and not decoder.getstate()[0]:
                    continue
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    valid = False
            if not valid and not blank:
                break
    if valid:
        try:
            decoder.decode(b"", True)
        except UnicodeDecodeError:
            valid = False
    return valid, blank


def _has_utf8_multibyte(path: Path) -> bool:
    tail = b""
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            if _UTF8_MULTIBYTE.search(tail + chunk):
                return True
            tail = chunk[-3:]
    return False


def undecodable_lines(path: Path, codec: str, problems: Problems, message: str) -> None:
    """Add a problem for every line (split at LF) holding bytes ``codec`` cannot decode."""
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            if line.isascii():
                continue
            try:
                line.decode(codec)
            except UnicodeDecodeError:
                problems.add(message.format(line=number), line=number)


def resolve(path: Path, requested: str, file_label: str) -> Decoding:
    """Choose the encoding for ``path`` (see the module docstring); raise InvalidInput if none fits."""
    wanted = normalise_encoding(requested)
    problems = Problems(file_label)

    if wanted in ("auto", "utf-8"):
        bom = _has_bom(path)
        valid, blank = _scan(path, "utf-8", 3 if bom else 0)
        if valid:
            return Decoding("utf-8-sig" if bom else "utf-8", blank)
        if wanted == "utf-8" or bom or _has_utf8_multibyte(path):
            why = "" if wanted == "utf-8" else " (the rest of the file is UTF-8, so it looks damaged)"
            undecodable_lines(path, "utf-8", problems, "line {line} contains bytes that are not valid UTF-8" + why)
            raise problems.error()
        wanted = "windows-1252"
        fallback = True
    else:
        fallback = False

    valid, blank = _scan(path, _CODECS[wanted], 0)
    if valid:
        return Decoding(wanted, blank)
    if fallback:
        message = "line {line} contains bytes that are not text in UTF-8 or Windows-1252"
    else:
        message = "line {line} contains bytes that are not valid " + _HUMAN[wanted] + " text"
    undecodable_lines(path, _CODECS[wanted], problems, message)
    raise problems.error()
