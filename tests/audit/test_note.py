"""C2SP signed notes and tlog checkpoints: Go's known answers, round trips, tampering and strict parsing."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from civicshare.audit.note import (
    MAX_SIGNATURES,
    Checkpoint,
    add_signature,
    key_hash,
    open_note,
    parse_verifier_key,
    sign_note,
    verifier_key,
)
from civicshare.errors import IntegrityError, UsageError

# Known answers ---------------------------------------------------------------------------------------
# From golang.org/x/mod, sumdb/note/note_test.go (github.com/golang/mod, commit
# 02c991387e35f9e4c0a9b7ce137717055f8d716d): TestNewVerifier, TestNewSigner, TestSign and TestOpen.

PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_B64 = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
PETER_SIG = f"— PeterNeumann {PETER_B64}\n"
ENOCH_SIG = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
SIGNED = TEXT + "\n" + PETER_SIG

# From c2sp.org/tlog-checkpoint (github.com/C2SP/C2SP, tlog-checkpoint.md).
SPEC_CHECKPOINT = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
# From c2sp.org/signed-note (signed-note.md): its text contains a blank line, which the format allows.
SPEC_NOTE = (
    "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n\n"
    "— quasimodo.example/salvatore "
    "NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
)


def _private_from_skey(skey: str) -> Ed25519PrivateKey:
    """Decode Go's PRIVATE+KEY+<name>+<hash>+base64(0x01 || seed) signer key."""
    encoded = skey.split("+", 4)[4]
    raw = base64.b64decode(encoded)
    assert raw[0] == 0x01 and len(raw) == 33
    return Ed25519PrivateKey.from_private_bytes(raw[1:])


def _public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


PETER = _private_from_skey(PETER_SKEY)
PETER_PUB = _public(PETER)
ENOCH_PUB = parse_verifier_key(ENOCH_VKEY)[1]


def test_go_verifier_key() -> None:
    assert verifier_key("PeterNeumann", PETER_PUB) == PETER_VKEY
    assert parse_verifier_key(PETER_VKEY) == ("PeterNeumann", PETER_PUB)
    assert key_hash("PeterNeumann", PETER_PUB) == bytes.fromhex("c74f20a3")
    assert key_hash("EnochRoot", ENOCH_PUB) == bytes.fromhex("af0cfe78")
    assert verifier_key("EnochRoot", ENOCH_PUB) == ENOCH_VKEY


def test_go_signed_note_is_reproduced_exactly() -> None:
    assert sign_note(TEXT, "PeterNeumann", PETER_PUB, PETER.sign) == SIGNED


def test_go_signed_note_opens() -> None:
    assert open_note(SIGNED, "PeterNeumann", PETER_PUB) == TEXT
    both = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    assert open_note(both, "PeterNeumann", PETER_PUB) == TEXT
    assert open_note(both, "EnochRoot", ENOCH_PUB) == TEXT
    # Repeated identical signatures are fine.
    assert open_note(TEXT + "\n" + PETER_SIG * 2 + ENOCH_SIG * 2, "PeterNeumann", PETER_PUB) == TEXT


def test_go_bad_verifier_keys() -> None:
    # Every proper substring and every single-character change of the key must be refused.
    key = PETER_VKEY
    mangled = {key[i:j] for i in range(len(key) + 1) for j in range(i + 1, len(key) + 1)} - {key}
    mangled |= {key[:i] + chr(ord(key[i]) + 1) + key[i + 1 :] for i in range(len(key))}
    mangled |= {
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",  # wrong key length
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # unknown algorithm
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # not lowercase
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    }
    for bad in mangled:
        with pytest.raises(UsageError):
            parse_verifier_key(bad)


@pytest.mark.parametrize("note", [
    TEXT,
    TEXT + "\n",
    TEXT + "\n" + PETER_SIG[:-1],
    "\x01" + TEXT + "\n" + PETER_SIG,
    "\udcff" + TEXT + "\n" + PETER_SIG,  # Go's "\xff": bytes that are not UTF-8, as Python would decode them
    TEXT + "\n" + f"— Bad Name {PETER_B64}",
    TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
    TEXT + "\n" + PETER_SIG * (MAX_SIGNATURES + 1),
    TEXT + "\n" + "— PeterNeumann\n",
    TEXT + "\n" + "— PeterNeumann \n",
    TEXT + "\n" + "— PeterNeumann AAAA\n",  # shorter than a key ID and one byte
    TEXT + "\n" + PETER_SIG.replace("nAM=", "nAN="),  # non-canonical base64
    TEXT + "\n" + PETER_SIG.replace(" x08", "  x08"),
    TEXT + "\n" + PETER_SIG.replace("\n", "\r\n"),
    TEXT + "\n" + PETER_SIG.replace("—", "-"),
    b"not text",
])
def test_go_malformed_notes(note: str) -> None:
    with pytest.raises(UsageError):
        open_note(note, "PeterNeumann", PETER_PUB)


def test_go_invalid_and_foreign_signatures() -> None:
    # A signature line for our key that does not verify rejects the whole note.
    with pytest.raises(IntegrityError):
        open_note(TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:], "PeterNeumann", PETER_PUB)
    # Lines with another name, or another key hash, are someone else's and are ignored.
    for foreign in (PETER_SIG.replace("PeterNeumann", "CarmenSandiego"), PETER_SIG.replace("x08g", "xxxx"), ENOCH_SIG):
        with pytest.raises(IntegrityError, match="no signature"):
            open_note(TEXT + "\n" + foreign, "PeterNeumann", PETER_PUB)


# Signing and opening ---------------------------------------------------------------------------------

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp"),
                              exclude_characters="+\u0085"), min_size=1, max_size=30)
lines = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=40)
texts = st.lists(lines, min_size=1, max_size=8).map(lambda ls: "".join(line + "\n" for line in ls))


@settings(max_examples=100, deadline=None)
@given(texts, names, st.binary(min_size=32, max_size=32))
def test_sign_and_open_round_trip(text: str, name: str, seed: bytes) -> None:
    key = Ed25519PrivateKey.from_private_bytes(seed)
    public = _public(key)
    note = sign_note(text, name, public, key.sign)
    assert open_note(note, name, public) == text
    assert parse_verifier_key(verifier_key(name, public)) == (name, public)


@settings(max_examples=100, deadline=None)
@given(texts, st.data())
def test_tampering_is_detected(text: str, data: st.DataObject) -> None:
    note = sign_note(text, "PeterNeumann", PETER_PUB, PETER.sign)
    # A changed text: one character replaced by another that keeps the note well formed.
    position = data.draw(st.integers(min_value=0, max_value=len(text) - 1))
    if text[position] != "\n":
        changed = text[:position] + ("x" if text[position] != "x" else "y") + text[position + 1 :]
        with pytest.raises(IntegrityError):
            open_note(changed + note[len(text) :], "PeterNeumann", PETER_PUB)
    # A changed signature: any one bit of the 64 signature bytes.
    line = note[len(text) + 1 :]
    raw = bytearray(base64.b64decode(line.split(" ")[2]))
    bit = data.draw(st.integers(min_value=32, max_value=8 * len(raw) - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    forged = f"{text}\n— PeterNeumann {base64.b64encode(bytes(raw)).decode()}\n"
    with pytest.raises(IntegrityError):
        open_note(forged, "PeterNeumann", PETER_PUB)


def test_wrong_keys_are_refused() -> None:
    other = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
    with pytest.raises(IntegrityError):
        open_note(SIGNED, "PeterNeumann", _public(other))
    with pytest.raises(IntegrityError):
        open_note(SIGNED, "PaulNeumann", PETER_PUB)
    # Our name and key hash, but a signature by some other key.
    forged_raw = bytes.fromhex("c74f20a3") + other.sign(TEXT.encode())
    forged = f"{TEXT}\n— PeterNeumann {base64.b64encode(forged_raw).decode()}\n"
    with pytest.raises(IntegrityError, match="does not verify"):
        open_note(forged, "PeterNeumann", PETER_PUB)
    # One good and one bad signature from the same key: the note is rejected.
    with pytest.raises(IntegrityError):
        open_note(SIGNED + forged[len(TEXT) + 1 :], "PeterNeumann", PETER_PUB)


def test_signer_faults_are_caught_before_publishing() -> None:
    other = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
    with pytest.raises(IntegrityError, match="does not verify"):
        sign_note(TEXT, "PeterNeumann", PETER_PUB, other.sign)
    with pytest.raises(IntegrityError):
        sign_note(TEXT, "PeterNeumann", PETER_PUB, lambda message: PETER.sign(message)[:63])


@pytest.mark.parametrize(("text", "name", "public"), [
    (TEXT[:-1], "PeterNeumann", PETER_PUB),
    ("", "PeterNeumann", PETER_PUB),
    ("tab\there\n", "PeterNeumann", PETER_PUB),
    ("carriage\r\n", "PeterNeumann", PETER_PUB),
    ("lone \udc80 surrogate\n", "PeterNeumann", PETER_PUB),
    (TEXT, "", PETER_PUB),
    (TEXT, "Peter Neumann", PETER_PUB),
    (TEXT, "Peter\u00a0Neumann", PETER_PUB),
    (TEXT, "Peter+Neumann", PETER_PUB),
    (TEXT, "Peter\nNeumann", PETER_PUB),
    (TEXT, "PeterNeumann", PETER_PUB[:31]),
])
def test_sign_note_refuses_malformed_input(text: str, name: str, public: bytes) -> None:
    with pytest.raises(UsageError):
        sign_note(text, name, public, PETER.sign)


def test_blank_lines_in_the_text_are_allowed() -> None:
    text = "first\n\nafter a blank line\n\n"
    note = sign_note(text, "PeterNeumann", PETER_PUB, PETER.sign)
    assert open_note(note, "PeterNeumann", PETER_PUB) == text
    # The spec's own example parses; it is merely not signed by our key.
    with pytest.raises(IntegrityError, match="no signature"):
        open_note(SPEC_NOTE, "PeterNeumann", PETER_PUB)


def test_add_signature() -> None:
    witness = Ed25519PrivateKey.from_private_bytes(b"\x2a" * 32)
    witness_pub = _public(witness)
    cosigned = add_signature(SIGNED, "witness.example/w1", witness_pub, witness.sign)
    assert cosigned.startswith(SIGNED)
    assert open_note(cosigned, "PeterNeumann", PETER_PUB) == TEXT
    assert open_note(cosigned, "witness.example/w1", witness_pub) == TEXT
    # Foreign lines are kept as they are; signing again with a key replaces its line.
    with_enoch = add_signature(TEXT + "\n" + ENOCH_SIG + PETER_SIG, "PeterNeumann", PETER_PUB, PETER.sign)
    assert with_enoch == TEXT + "\n" + ENOCH_SIG + PETER_SIG
    with pytest.raises(UsageError):
        add_signature(TEXT, "PeterNeumann", PETER_PUB, PETER.sign)
    with pytest.raises(UsageError):
        add_signature(TEXT + "\n" + ENOCH_SIG * MAX_SIGNATURES, "PeterNeumann", PETER_PUB, PETER.sign)
    with pytest.raises(IntegrityError):
        add_signature(SIGNED, "witness.example/w1", witness_pub, PETER.sign)


# Checkpoints -----------------------------------------------------------------------------------------


def test_spec_checkpoint() -> None:
    checkpoint = Checkpoint.parse(SPEC_CHECKPOINT)
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.size == 20852163
    assert checkpoint.root_hash == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert checkpoint.extensions == ()
    assert checkpoint.body() == SPEC_CHECKPOINT


def test_signed_checkpoint_round_trip() -> None:
    checkpoint = Checkpoint("civicshare/audit/org-1", 0, bytes(32), ("extension line",))
    note = sign_note(checkpoint.body(), "civicshare/audit/org-1", PETER_PUB, PETER.sign)
    assert Checkpoint.parse(open_note(note, "civicshare/audit/org-1", PETER_PUB)) == checkpoint


origins = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(origins, st.integers(min_value=0, max_value=2**64 - 1), st.binary(min_size=32, max_size=32),
       st.lists(origins, max_size=3))
def test_checkpoint_round_trip(origin: str, size: int, root: bytes, extensions: list[str]) -> None:
    checkpoint = Checkpoint(origin, size, root, tuple(extensions))
    body = checkpoint.body()
    assert body.count("\n") == 3 + len(extensions)
    assert Checkpoint.parse(body) == checkpoint
    assert Checkpoint.parse(body).body() == body


ROOT_B64 = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="


@pytest.mark.parametrize("text", [
    "",
    "origin\n5\n",
    f"origin\n5\n{ROOT_B64}",
    f"\n5\n{ROOT_B64}\n",
    f"origin\n05\n{ROOT_B64}\n",
    f"origin\n00\n{ROOT_B64}\n",
    f"origin\n+5\n{ROOT_B64}\n",
    f"origin\n-1\n{ROOT_B64}\n",
    f"origin\n 5\n{ROOT_B64}\n",
    f"origin\n5 \n{ROOT_B64}\n",
    f"origin\n1_000\n{ROOT_B64}\n",
    f"origin\n\uff15\n{ROOT_B64}\n",  # a fullwidth digit five
    f"origin\n\u0663\n{ROOT_B64}\n",  # an Arabic-Indic digit three
    f"origin\n{2**64}\n{ROOT_B64}\n",
    f"origin\n{'9' * 5000}\n{ROOT_B64}\n",
    "origin\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2=\n",  # 31 bytes
    "origin\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n",  # non-canonical
    "origin\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n",  # no padding
    "origin\n5\nCsUYapGGPo4dkMgIAUqom_Xajj7h2fB2MPA3j2jxq2I=\n",  # URL alphabet
    f"origin\n5\n{ROOT_B64}\n\n",
    f"origin\n5\n{ROOT_B64}\n\nextension\n",
    f"origin\r\n5\n{ROOT_B64}\n",
    f"origin\n5\n{ROOT_B64}\nlone \udc80\n",
])
def test_checkpoint_parsing_is_strict(text: str) -> None:
    with pytest.raises(UsageError):
        Checkpoint.parse(text)


def test_checkpoint_fields_are_validated() -> None:
    root = bytes(32)
    for bad in [
        lambda: Checkpoint("", 1, root),
        lambda: Checkpoint("a\nb", 1, root),
        lambda: Checkpoint("origin", -1, root),
        lambda: Checkpoint("origin", 2**64, root),
        lambda: Checkpoint("origin", True, root),
        lambda: Checkpoint("origin", 1, root[:31]),
        lambda: Checkpoint("origin", 1, root, ("",)),
        lambda: Checkpoint("origin", 1, root, ("two\nlines",)),
        lambda: Checkpoint("origin", 1, root, "not a tuple"),  # type: ignore[arg-type]
    ]:
        with pytest.raises(UsageError):
            bad()
