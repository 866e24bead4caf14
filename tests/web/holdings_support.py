"""What the holdings page tests share: the files they upload, and reading the pages they get back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.schemas.test_import_schema import POLICY_MAPPING

BOUNDARY = "civicshare-test-boundary"
MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
CANARY = "Zqxwv Canary-Holdings"  # a name that can only come from the uploads below
CSV = "resident_id,name,postcode\nR1,Ada Lovelace,NW1 1AA\nR2,Alan Turing,SW1A 1AA\n"
PEOPLE_CSV = ("Name,DOB,Post Code\n"
              f"{CANARY},03/04/1980,nw1 4ab\n"
              "Ann Lee,31/02/1980,NW1 4AB\n"
              "Eve Hart,12/12/1950,sw1a 1aa\n")
PEOPLE_MAPPING = POLICY_MAPPING  # the schema tests' mapping of the same export


def page_html(response: httpx.Response, status: int = 200) -> str:
    assert response.status_code == status, response.text[:3000]
    assert response.headers["content-type"].startswith("text/html")
    assert "Traceback" not in response.text
    return response.text


def blobs(home: Path) -> list[Path]:
    return [p for p in (home / "blobs").rglob("*") if p.is_file()] if (home / "blobs").exists() else []


def multipart(fields: dict[str, str], file_field: str, filename: str, chunks: Iterator[bytes],
              boundary: str = BOUNDARY) -> Iterator[bytes]:
    """A multipart form body, sent as it is made: the fields, then one file from ``chunks``."""
    for name, value in fields.items():
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").encode()
    yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{file_field}\"; filename=\"{filename}\"\r\n"
           "Content-Type: application/octet-stream\r\n\r\n").encode()
    yield from chunks
    yield f"\r\n--{boundary}--\r\n".encode()
