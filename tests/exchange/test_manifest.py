"""Manifests: a known-answer signature, every field checked with its path, tampering refused."""

from __future__ import annotations

import base64
import copy
import json
import string
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from civicshare.canonical import canonical_json
from civicshare.errors import InvalidInput, SecurityError, TooLarge
from civicshare.exchange.fields import Digest
from civicshare.exchange.manifest import (
    MAX_COLUMN_NAME,
    MAX_COLUMNS,
    MAX_MANIFEST_BYTES,
    MAX_NAME,
    MAX_PART_SIZE,
    MAX_PARTS,
    PARQUET_MEDIA_TYPE,
    AgreementRef,
    HoldingInfo,
    Manifest,
    manifest_sha256,
    parse_manifest,
    peek_manifest,
    sign_manifest,
)

# A fixed key from a fixed seed, so the signature below is a known answer any implementation can check.
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUBLIC = KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
AGE = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
H = {c: c * 64 for c in "abcde"}
AGREEMENT = AgreementRef("DSA-2026-0001", 2, H["e"])

MANIFEST = Manifest(
    "t_abcdefghijklmnop", "north-wold", "south-fen", datetime(2026, 11, 22, 10, 0, tzinfo=UTC), AGREEMENT,
    HoldingInfo("h_qrstuvwxyz234567", "dataset", "Residents", PARQUET_MEDIA_TYPE, 1000,
                [{"name": "surname", "type": "string"}], "OFFICIAL"),
    Digest(123, H["a"]), Digest(456, H["b"]), AGE, 256, (H["c"], H["d"]))

CANONICAL_BODY = (
    '{"agreement":{"id":"DSA-2026-0001","sha256":"' + H["e"] + '","version":2},'
    '"ciphertext":{"age_recipient":"' + AGE + '","sha256":"' + H["b"] + '","size":456},'
    '"created":"2026-11-22T10:00:00Z","holding":{"classification":"OFFICIAL",'
    '"columns":[{"name":"surname","type":"string"}],'
    '"id":"h_qrstuvwxyz234567","kind":"dataset","media_type":"application/vnd.apache.parquet",'
    '"name":"Residents","rows":1000},"parts":{"sha256":["' + H["c"] + '","' + H["d"] + '"],"size":256},'
    '"plaintext":{"sha256":"' + H["a"] + '","size":123},"recipient":"south-fen","sender":"north-wold",'
    '"transfer":"t_abcdefghijklmnop"}'
)
SIGNATURE = "VaM0xoGP5juS1lQvkwpEx1jGQQIJyYi1z6PcNSIiOqocWAjXp6olFf95/FYoLWund/mYgYF2YuJHYqXgzVErBg=="
DOCUMENT_SHA256 = "69c0c07d171b6cc32f36040dfc73532c157efb2bc9dd763c18b75448e419d7f3"


def signed(manifest: Manifest = MANIFEST) -> dict[str, Any]:
    return sign_manifest(manifest, "k_test", KEY.sign)


def test_known_answer() -> None:
    document = signed()
    assert canonical_json(document["body"]).decode() == CANONICAL_BODY
    assert document["signature"] == {"alg": "Ed25519", "key": "k_test", "value": SIGNATURE}
    # Checked with the primitive directly, not through our own verifier.
    message = b"civicshare/manifest/v1\n" + CANONICAL_BODY.encode()
    KEY.public_key().verify(base64.b64decode(SIGNATURE), message)
    assert manifest_sha256(document) == DOCUMENT_SHA256
    assert parse_manifest(json.dumps(document, indent=2), sender_key=PUBLIC) == (MANIFEST, document)


def test_part_lengths() -> None:
    assert MANIFEST.part_count == 2
    assert (MANIFEST.part_length(0), MANIFEST.part_length(1)) == (256, 200)
    for bad in (-1, 2, True):
        with pytest.raises(InvalidInput):
            MANIFEST.part_length(bad)  # type: ignore[arg-type]


def _set(path: str, value: Any) -> Any:
    def change(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = body
        for p in parents:
            target = target[int(p)] if isinstance(target, list) else target[p]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
    return change


TAMPERING = {
    "transfer": _set("transfer", "t_abcdefghijklmnoq"),
    "sender": _set("sender", "east-marsh"),
    "recipient": _set("recipient", "east-marsh"),
    "created": _set("created", "2026-11-22T10:00:01Z"),
    "agreement.id": _set("agreement.id", "DSA-2026-0002"),
    "agreement.version": _set("agreement.version", 1),
    "agreement.sha256": _set("agreement.sha256", H["a"]),
    "holding.classification": _set("holding.classification", "OFFICIAL-SENSITIVE"),
    "holding.name": _set("holding.name", "Residents2"),
    "holding.rows": _set("holding.rows", 999),
    "column": _set("holding.columns.0.name", "forename"),
    "plaintext.size": _set("plaintext.size", 124),
    "plaintext.sha256": _set("plaintext.sha256", H["d"]),
    "ciphertext.sha256": _set("ciphertext.sha256", H["d"]),
    "age_recipient": _set("ciphertext.age_recipient",
                          "age1lggyhqrw2nlhcxprm67z43rta597azn8gknawjehu9d9dl0jq3yqqvfafg"),
    "part": _set("parts.sha256.1", H["a"]),
}


@pytest.mark.parametrize("name", sorted(TAMPERING))
def test_any_tampered_field_is_refused(name: str) -> None:
    document = signed()
    TAMPERING[name](document["body"])
    peek_manifest(document)  # still well formed: only the signature can tell
    with pytest.raises(SecurityError, match="does not verify"):
        parse_manifest(document, sender_key=PUBLIC)


def test_another_key_or_kind_is_refused() -> None:
    document = signed()
    with pytest.raises(SecurityError):
        parse_manifest(document, sender_key=OTHER.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    receipt = copy.deepcopy(document)
    receipt["civicshare"] = "receipt"
    with pytest.raises(InvalidInput, match="not a manifest"):
        parse_manifest(receipt, sender_key=PUBLIC)


def _problems(body: dict[str, Any]) -> list[str | None]:
    with pytest.raises(InvalidInput) as caught:
        Manifest.from_body(body)
    return [p.field for p in caught.value.problems]


@pytest.mark.parametrize("change, fields", [
    (_set("transfer", "x"), ["transfer"]),
    (_set("sender", "North Wold"), ["sender"]),
    (_set("created", "2026-11-22 10:00:00"), ["created"]),
    (_set("created", "2026-02-30T10:00:00Z"), ["created"]),
    (_set("holding.kind", "spreadsheet"), ["holding.kind"]),
    (_set("holding.name", " Residents"), ["holding.name"]),
    (_set("holding.name", "a\nb"), ["holding.name"]),
    (_set("holding.media_type", "text/csv"), ["holding.media_type"]),
    (_set("holding.rows", -1), ["holding.rows"]),
    (_set("holding.rows", True), ["holding.rows"]),
    (_set("holding.columns", []), ["holding.columns"]),
    (_set("holding.columns", [{"name": "a", "type": "string"}, {"name": "a", "type": "string"}]),
     ["holding.columns[1].name"]),
    (_set("holding.columns", [{"name": "a", "type": "integer", "x": 1}]),
     ["holding.columns[0].x", "holding.columns[0].type"]),
    (_set("plaintext.sha256", "A" * 64), ["plaintext.sha256"]),
    (_set("plaintext.size", 1000), ["ciphertext.size"]),
    (_set("ciphertext.age_recipient", "age1nope"), ["ciphertext.age_recipient"]),
    (_set("parts.size", 0), ["parts.size"]),
    (_set("parts.size", MAX_PART_SIZE + 1), ["parts.size"]),
    (_set("parts.size", 100), ["parts.sha256"]),
    (_set("parts.sha256", [H["c"], "zz"]), ["parts.sha256[1]"]),
    (_set("recipient", "north-wold"), ["recipient"]),
    (_set("extra", 1), ["extra"]),
    (_set("agreement", None), ["agreement"]),
    (_set("agreement", "DSA-2026-0001"), ["agreement"]),
    (_set("agreement.id", "x"), ["agreement.id"]),
    (_set("agreement.id", "DSA 2026"), ["agreement.id"]),
    (_set("agreement.version", 0), ["agreement.version"]),
    (_set("agreement.version", "2"), ["agreement.version"]),
    (_set("agreement.version", True), ["agreement.version"]),
    (_set("agreement.sha256", "E" * 64), ["agreement.sha256"]),
    (_set("agreement.extra", 1), ["agreement.extra"]),
    (_set("holding.classification", "SECRET"), ["holding.classification"]),
    (_set("holding.classification", None), ["holding.classification"]),
], ids=lambda v: v if isinstance(v, str) else None)
def test_invalid_fields_are_named(change: Any, fields: list[str]) -> None:
    body = MANIFEST.to_body()
    change(body)
    assert _problems(body) == fields


def test_every_problem_is_listed_at_once() -> None:
    body = MANIFEST.to_body()
    del body["sender"]
    body["holding"]["rows"] = "many"
    body["ciphertext"]["sha256"] = "nope"
    assert _problems(body) == ["sender", "holding.rows", "ciphertext.sha256"]


def test_the_agreement_and_the_classification_are_required() -> None:
    body = MANIFEST.to_body()
    del body["agreement"]
    del body["holding"]["classification"]
    assert _problems(body) == ["agreement", "holding.classification"]
    body = MANIFEST.to_body()
    del body["agreement"]["sha256"]
    assert _problems(body) == ["agreement.sha256"]


def test_document_holdings_carry_no_rows_or_columns() -> None:
    body = MANIFEST.to_body()
    body["holding"].update(kind="document", media_type="application/pdf")
    assert _problems(body) == ["holding.rows", "holding.columns"]
    body["holding"].update(rows=None, columns=None)
    assert Manifest.from_body(body).holding.kind == "document"


def test_the_largest_valid_manifest_fits_the_size_limit() -> None:
    # A 1 TiB payload in 8 MiB parts needs 131,072 parts; MAX_PARTS leaves room, and must still fit.
    assert MAX_PARTS >= 131_072
    parts = MAX_PARTS
    columns = [{"name": f"{i:06d}" + "x" * (MAX_COLUMN_NAME - 6), "type": "string"} for i in range(MAX_COLUMNS)]
    holding = HoldingInfo("h_" + "a" * 38, "dataset", "N" * MAX_NAME, PARQUET_MEDIA_TYPE, 10**12, columns,
                          "OFFICIAL-SENSITIVE")
    agreement = AgreementRef("D" * 64, 1_000_000, H["e"])
    big = Manifest("t_" + "a" * 38, "north-wold", "south-fen", MANIFEST.created, agreement, holding,
                   Digest(MAX_PART_SIZE * parts - 1000, H["a"]), Digest(MAX_PART_SIZE * parts, H["b"]), AGE,
                   MAX_PART_SIZE, (H["c"],) * parts)
    document = signed(big)
    assert len(json.dumps(document, indent=2).encode()) < MAX_MANIFEST_BYTES
    assert parse_manifest(canonical_json(document), sender_key=PUBLIC)[0] == big
    body = big.to_body()
    body["parts"]["sha256"].append(H["c"])
    assert _problems(body) == ["parts.sha256"]


def test_oversized_input_is_refused_before_parsing() -> None:
    with pytest.raises(TooLarge):
        peek_manifest(b" " * (MAX_MANIFEST_BYTES + 1))


def test_strict_json() -> None:
    text = canonical_json(signed()).decode()
    with pytest.raises(InvalidInput, match="twice"):
        peek_manifest(text[:-1] + ',"version":1}')


hex64 = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
classifications = st.sampled_from(["OFFICIAL", "OFFICIAL-SENSITIVE"])
names = st.text(alphabet=string.ascii_letters + string.digits + " _-éß", min_size=1, max_size=40).filter(
    lambda s: s == s.strip())


@st.composite
def manifests(draw: st.DrawFn) -> Manifest:
    kind = draw(st.sampled_from(["dataset", "document"]))
    if kind == "dataset":
        cols = draw(st.lists(names, min_size=1, max_size=5, unique=True))
        holding = HoldingInfo("h_" + draw(st.text("abc234", min_size=1, max_size=20)), kind, draw(names),
                              PARQUET_MEDIA_TYPE, draw(st.integers(0, 10**9)),
                              [{"name": c, "type": "string"} for c in cols], draw(classifications))
    else:
        holding = HoldingInfo("h_x1", kind, draw(names), draw(st.sampled_from(["application/pdf", "text/plain"])),
                              None, None, draw(classifications))
    # At most 50 parts of at most MAX_PART_SIZE, so the ciphertext stays below 50 * MAX_PART_SIZE.
    plain = draw(st.integers(0, 5 * 10**8))
    cipher = plain + draw(st.integers(1, 10**6))
    part_size = draw(st.integers(max(1, -(-cipher // 50)), MAX_PART_SIZE))
    count = -(-cipher // part_size)
    created = draw(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1))).replace(
        microsecond=0, tzinfo=UTC)
    return Manifest("t_" + draw(st.text("xyz789", min_size=1, max_size=20)), "north-wold", "south-fen", created,
                    AgreementRef(draw(st.from_regex(r"DSA-20[0-9]{2}-[0-9]{4}", fullmatch=True)),
                                 draw(st.integers(1, 1_000_000)), draw(hex64)), holding, Digest(plain, draw(hex64)),
                    Digest(cipher, draw(hex64)), AGE, part_size, tuple(draw(st.lists(hex64, min_size=count,
                                                                                     max_size=count))))


@settings(max_examples=60, deadline=None)
@given(manifests())
def test_round_trip(manifest: Manifest) -> None:
    assert Manifest.from_body(json.loads(json.dumps(manifest.to_body()))) == manifest
    document = signed(manifest)
    assert parse_manifest(canonical_json(document), sender_key=PUBLIC) == (manifest, document)
    assert peek_manifest(document) == manifest


# The quality summary of a dataset (holding.quality) --------------------------------------------------

QUALITY = {"version": 1, "score": "71.5", "rows": 1000, "invalid_rows": 42,
           "fields": {"surname": {"completeness": "0.98", "validity": None}}}
WITH_QUALITY = Manifest(
    MANIFEST.transfer, MANIFEST.sender, MANIFEST.recipient, MANIFEST.created, AGREEMENT,
    HoldingInfo("h_qrstuvwxyz234567", "dataset", "Residents", PARQUET_MEDIA_TYPE, 1000,
                [{"name": "surname", "type": "string"}], "OFFICIAL", QUALITY),
    MANIFEST.plaintext, MANIFEST.ciphertext, AGE, 256, MANIFEST.part_hashes)


def test_the_quality_summary_is_signed_as_decimal_text() -> None:
    document = signed(WITH_QUALITY)
    assert canonical_json(document["body"]["holding"]["quality"]).decode() == (
        '{"fields":{"surname":{"completeness":"0.98","validity":null}},"invalid_rows":42,"rows":1000,'
        '"score":"71.5","version":1}')
    manifest, _document = parse_manifest(json.dumps(document, indent=2), sender_key=PUBLIC)
    assert manifest == WITH_QUALITY and manifest.holding.quality_score == 71.5
    # A manifest without one keeps the bytes it had before summaries existed (test_known_answer).
    assert "quality" not in MANIFEST.to_body()["holding"] and MANIFEST.holding.quality_score is None


def test_a_changed_quality_summary_breaks_the_signature() -> None:
    for change in (_set("holding.quality.score", "91.5"), _set("holding.quality.invalid_rows", 0),
                   _set("holding.quality.fields.surname.completeness", "1")):
        document = signed(WITH_QUALITY)
        change(document["body"])
        assert peek_manifest(document).holding.quality != QUALITY
        with pytest.raises(SecurityError, match="does not verify"):
            parse_manifest(document, sender_key=PUBLIC)


@pytest.mark.parametrize("change, fields", [
    (_set("holding.quality.score", 71.5), ["holding.quality.score"]),  # a number: signed documents carry none
    (_set("holding.quality.score", "101"), ["holding.quality.score"]),
    (_set("holding.quality.score", "100.1"), ["holding.quality.score"]),
    (_set("holding.quality.score", "-1"), ["holding.quality.score"]),
    (_set("holding.quality.score", "71.55555"), ["holding.quality.score"]),
    (_set("holding.quality.score", " 71.5"), ["holding.quality.score"]),
    (_set("holding.quality.score", "NaN"), ["holding.quality.score"]),
    (_set("holding.quality.version", 2), ["holding.quality.version"]),
    (_set("holding.quality.version", True), ["holding.quality.version"]),
    (_set("holding.quality.rows", 999), ["holding.quality.rows"]),
    (_set("holding.quality.rows", "1000"), ["holding.quality.rows"]),
    (_set("holding.quality.invalid_rows", 1001), ["holding.quality.invalid_rows"]),
    (_set("holding.quality.invalid_rows", -1), ["holding.quality.invalid_rows"]),
    (_set("holding.quality.fields", []), ["holding.quality.fields"]),
    (_set("holding.quality.fields", {"nhs_number": {"completeness": "1", "validity": "1"}}),
     ["holding.quality.fields.nhs_number"]),
    (_set("holding.quality.fields", {"surname": {"completeness": "1", "validity": "1"},
                                     "forename": {"completeness": "1", "validity": "1"}}),
     ["holding.quality.fields"]),
    (_set("holding.quality.fields.surname", "0.98"), ["holding.quality.fields.surname"]),
    (_set("holding.quality.fields.surname.completeness", "1.5"), ["holding.quality.fields.surname.completeness"]),
    (_set("holding.quality.fields.surname.completeness", 1), ["holding.quality.fields.surname.completeness"]),
    (_set("holding.quality.fields.surname.validity", 0.5), ["holding.quality.fields.surname.validity"]),
    (_set("holding.quality.fields.surname.extra", "1"), ["holding.quality.fields.surname.extra"]),
    (_set("holding.quality.extra", 1), ["holding.quality.extra"]),
    (_set("holding.quality", "71.5"), ["holding.quality"]),
    (_set("holding.quality", [QUALITY]), ["holding.quality"]),
], ids=lambda v: v if isinstance(v, str) else None)
def test_invalid_quality_fields_are_named(change: Any, fields: list[str]) -> None:
    body = WITH_QUALITY.to_body()
    change(body)
    assert _problems(body) == fields


def test_every_quality_problem_is_listed_at_once() -> None:
    body = WITH_QUALITY.to_body()
    quality = body["holding"]["quality"]
    del quality["version"]
    quality.update(score="high", rows=5, invalid_rows=6)
    quality["fields"]["surname"]["validity"] = "2"
    assert _problems(body) == ["holding.quality.version", "holding.quality.score", "holding.quality.rows",
                               "holding.quality.invalid_rows", "holding.quality.fields.surname.validity"]


def test_a_missing_or_null_summary_is_none_and_a_document_has_none() -> None:
    body = WITH_QUALITY.to_body()
    body["holding"]["quality"] = None
    assert Manifest.from_body(body).holding.quality is None
    del body["holding"]["quality"]
    assert Manifest.from_body(body).holding.quality is None
    document = WITH_QUALITY.to_body()
    document["holding"].update(kind="document", media_type="application/pdf", rows=None, columns=None)
    assert _problems(document) == ["holding.quality"]
    document["holding"]["quality"] = None
    assert Manifest.from_body(document).holding.quality is None


def test_the_largest_valid_manifest_with_a_quality_summary_fits_the_size_limit() -> None:
    parts = MAX_PARTS
    names = [f"{i:06d}" + "x" * (MAX_COLUMN_NAME - 6) for i in range(MAX_COLUMNS)]
    quality = {"version": 1, "score": "99.9999", "rows": 10**12, "invalid_rows": 10**12,
               "fields": {n: {"completeness": "0.9999", "validity": "0.9999"} for n in names}}
    holding = HoldingInfo("h_" + "a" * 38, "dataset", "N" * MAX_NAME, PARQUET_MEDIA_TYPE, 10**12,
                          [{"name": n, "type": "string"} for n in names], "OFFICIAL-SENSITIVE", quality)
    big = Manifest("t_" + "a" * 38, "north-wold", "south-fen", MANIFEST.created,
                   AgreementRef("D" * 64, 1_000_000, H["e"]), holding,
                   Digest(MAX_PART_SIZE * parts - 1000, H["a"]), Digest(MAX_PART_SIZE * parts, H["b"]), AGE,
                   MAX_PART_SIZE, (H["c"],) * parts)
    document = signed(big)
    assert len(json.dumps(document, indent=2).encode()) < MAX_MANIFEST_BYTES
    assert parse_manifest(canonical_json(document), sender_key=PUBLIC)[0] == big


fractions = st.one_of(st.just("0"), st.just("1"), st.from_regex(r"0\.[0-9]{1,4}", fullmatch=True))


@st.composite
def summaries(draw: st.DrawFn, columns: list[str], rows: int) -> dict[str, Any]:
    described = draw(st.lists(st.sampled_from(columns), unique=True)) if columns else []
    return {"version": 1, "score": draw(st.one_of(st.just("100"), st.from_regex(r"[1-9]?[0-9](\.[0-9]{1,4})?",
                                                                                   fullmatch=True))),
            "rows": rows, "invalid_rows": draw(st.integers(0, rows)),
            "fields": {c: {"completeness": draw(fractions), "validity": draw(st.one_of(st.none(), fractions))}
                       for c in described}}


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_quality_summaries_round_trip(data: st.DataObject) -> None:
    manifest = data.draw(manifests().filter(lambda m: m.holding.kind == "dataset"))
    info = manifest.holding
    quality = data.draw(summaries(info.column_names, info.rows or 0))
    with_quality = Manifest(manifest.transfer, manifest.sender, manifest.recipient, manifest.created,
                            manifest.agreement, HoldingInfo(info.id, info.kind, info.name, info.media_type, info.rows,
                                                            info.columns, info.classification, quality),
                            manifest.plaintext, manifest.ciphertext, AGE, manifest.part_size, manifest.part_hashes)
    document = signed(with_quality)
    assert parse_manifest(canonical_json(document), sender_key=PUBLIC) == (with_quality, document)
    assert with_quality.holding.quality_score == float(quality["score"])


def test_a_report_summary_becomes_the_manifest_form_of_the_shared_columns() -> None:
    from civicshare.exchange.quality_summary import decimal_text, readable, to_manifest

    assert [decimal_text(v) for v in (71.5, 100.0, 0.0, 1.0, 0.98125, 0.99996, 84.4)] == [
        "71.5", "100", "0", "1", "0.9812", "1", "84.4"]
    summary = {"version": 1, "score": 84.4, "rows": 1000, "invalid_rows": 3,
               "fields": {"surname": {"completeness": 0.98, "validity": None},
                          "nhs_number": {"completeness": 0.75, "validity": 0.3333}}}
    quality = to_manifest(summary, ["surname"])  # nhs_number is not shared, so it is not described
    assert quality == {"version": 1, "score": "84.4", "rows": 1000, "invalid_rows": 3,
                       "fields": {"surname": {"completeness": "0.98", "validity": None}}}
    info = WITH_QUALITY.holding
    manifest = Manifest(MANIFEST.transfer, MANIFEST.sender, MANIFEST.recipient, MANIFEST.created, AGREEMENT,
                        HoldingInfo(info.id, info.kind, info.name, info.media_type, info.rows, info.columns,
                                    info.classification, quality),
                        MANIFEST.plaintext, MANIFEST.ciphertext, AGE, 256, MANIFEST.part_hashes)
    parsed = parse_manifest(canonical_json(signed(manifest)), sender_key=PUBLIC)[0]
    assert readable(parsed.holding.quality) == {**summary, "fields": {"surname": summary["fields"]["surname"]}}
