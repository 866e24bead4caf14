"""The file keystore: persistence, custody, secrecy on disk, tampering, and other processes."""

from __future__ import annotations

import base64
import inspect
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pyrage
import pytest
from crypto_support import PASSPHRASE, RecordingRng
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from civicshare.crypto import FileKeystore, KdfParams, Keystore, KeyType
from civicshare.errors import (
    ConfigError,
    Conflict,
    IntegrityError,
    InvalidInput,
    KeystoreLocked,
    NotFound,
    UsageError,
)

MakeKeystore = Callable[..., FileKeystore]

# RFC 8032 section 7.1, TEST 1 (empty message).
RFC8032_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_SIGNATURE = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


def test_ed25519_rfc8032_test_1(make_keystore: MakeKeystore) -> None:
    ks = make_keystore()
    assert ks.import_signing_key("migrated", RFC8032_SECRET) == RFC8032_PUBLIC
    assert ks.public_key("migrated") == RFC8032_PUBLIC
    assert ks.sign("migrated", b"") == RFC8032_SIGNATURE


def test_file_keystore_implements_the_interface(make_keystore: MakeKeystore) -> None:
    ks = make_keystore()
    assert isinstance(ks, Keystore) and ks.backend == "file"
    assert not inspect.isabstract(FileKeystore)


def test_keys_persist_across_open(make_keystore: MakeKeystore, keystore_path: Path) -> None:
    ks = make_keystore()
    public = ks.create_signing_key("sig")
    recipient = ks.create_age_identity("age")
    assert recipient.startswith("age1")
    ks.create_kek("kek")
    wrapped = ks.wrap("kek", b"d" * 32, b"holding-1")

    again = FileKeystore.open(keystore_path, PASSPHRASE)
    assert again.key_ids() == ["age", "kek", "sig"]
    assert again.public_key("sig") == public
    Ed25519PublicKey.from_public_bytes(public).verify(again.sign("sig", b"card"), b"card")
    assert again.age_recipient("age") == recipient
    identity = again.age_identity("age")
    assert identity.startswith("AGE-SECRET-KEY-1")
    sealed = pyrage.encrypt(b"hello", [pyrage.x25519.Recipient.from_str(recipient)])
    assert pyrage.decrypt(sealed, [pyrage.x25519.Identity.from_str(identity)]) == b"hello"
    assert again.unwrap("kek", wrapped, b"holding-1") == b"d" * 32


def test_wrong_passphrase_is_keystore_locked(make_keystore: MakeKeystore, keystore_path: Path) -> None:
    make_keystore().create_kek("kek")
    with pytest.raises(KeystoreLocked) as info:
        FileKeystore.open(keystore_path, "not the passphrase")
    assert info.value.message == (f"The keystore passphrase is wrong: {keystore_path} could not be unlocked.")
    with pytest.raises(KeystoreLocked):
        FileKeystore.open(keystore_path, "")


def test_file_is_private_and_rewrites_stay_private(make_keystore: MakeKeystore, keystore_path: Path) -> None:
    ks = make_keystore()
    assert stat.S_IMODE(keystore_path.stat().st_mode) == 0o600
    os.chmod(keystore_path, 0o644)
    ks.create_kek("kek")
    assert stat.S_IMODE(keystore_path.stat().st_mode) == 0o600
    assert sorted(p.name for p in keystore_path.parent.iterdir()) == ["keystore.json", "keystore.json.lock"]


def test_no_secret_material_is_on_disk(keystore_path: Path) -> None:
    rng = RecordingRng()
    ks = FileKeystore.create(keystore_path, PASSPHRASE, kdf=KdfParams.fast_for_tests(rng), rng=rng)
    ks.import_signing_key("sig", RFC8032_SECRET)
    ks.create_kek("kek")
    kek = next(out for out in rng.outputs if len(out) == 32)
    ks.create_age_identity("age")
    age_secret = ks.age_identity("age")
    data = keystore_path.read_bytes()
    doc = json.loads(data)
    assert set(doc) == {"format", "version", "kdf", "cipher", "check", "nonce", "ciphertext"}
    assert (doc["format"], doc["version"], doc["cipher"]) == ("civicshare-keystore", 1, "AES-256-GCM")
    for secret in (RFC8032_SECRET, kek, age_secret.encode()):
        for form in (secret, base64.b64encode(secret), secret.hex().encode(), secret.hex().upper().encode()):
            assert form not in data
    assert b"AGE-SECRET-KEY" not in data
    assert PASSPHRASE.encode() not in data


def test_every_write_uses_a_fresh_nonce(make_keystore: MakeKeystore, keystore_path: Path) -> None:
    ks = make_keystore()
    nonces = {json.loads(keystore_path.read_bytes())["nonce"]}
    for i in range(5):
        ks.create_kek(f"kek-{i}")
        nonces.add(json.loads(keystore_path.read_bytes())["nonce"])
    assert len(nonces) == 6


def test_destroy_removes_for_good(make_keystore: MakeKeystore, keystore_path: Path) -> None:
    ks = make_keystore()
    ks.create_kek("kek")
    wrapped = ks.wrap("kek", b"d" * 32, b"")
    ks.destroy("kek")
    assert not ks.has("kek") and ks.key_ids() == []
    with pytest.raises(NotFound):
        ks.unwrap("kek", wrapped, b"")
    with pytest.raises(NotFound):
        ks.destroy("kek")
    assert FileKeystore.open(keystore_path, PASSPHRASE).key_ids() == []


def test_duplicate_id_is_a_conflict(make_keystore: MakeKeystore) -> None:
    ks = make_keystore()
    ks.create_kek("k1")
    for create in (ks.create_kek, ks.create_signing_key, ks.create_age_identity):
        with pytest.raises(Conflict):
            create("k1")
    with pytest.raises(Conflict):
        ks.import_signing_key("k1", RFC8032_SECRET)


def test_unknown_id_is_not_found(make_keystore: MakeKeystore) -> None:
    ks = make_keystore()
    assert not ks.has("nope")
    calls: list[Callable[[], object]] = [
        lambda: ks.sign("nope", b""),
        lambda: ks.public_key("nope"),
        lambda: ks.age_identity("nope"),
        lambda: ks.age_recipient("nope"),
        lambda: ks.wrap("nope", b"d" * 32, b""),
        lambda: ks.unwrap("nope", b"x" * 64, b""),
        lambda: ks.location("nope"),
        lambda: ks.key_info("nope"),
        lambda: ks.destroy("nope"),
    ]
    for call in calls:
        with pytest.raises(NotFound):
            call()


def test_a_key_used_for_the_wrong_job_is_refused(make_keystore: MakeKeystore) -> None:
    ks = make_keystore()
    ks.create_kek("kek")
    ks.create_signing_key("sig")
    with pytest.raises(UsageError, match="not a Ed25519"):
        ks.sign("kek", b"data")
    with pytest.raises(UsageError):
        ks.wrap("sig", b"d" * 32, b"")
    with pytest.raises(UsageError):
        ks.age_identity("sig")


@pytest.mark.parametrize("bad", ["", "has space", "../escape", "a/b", "x" * 129, "-lead", "k#1"])
def test_unusable_key_ids_are_refused(make_keystore: MakeKeystore, bad: str) -> None:
    with pytest.raises(UsageError):
        make_keystore().create_kek(bad)


def test_custody_is_visible(keystore_path: Path) -> None:
    moment = datetime(2025, 4, 1, 9, 30, tzinfo=UTC)
    ks = FileKeystore.create(keystore_path, PASSPHRASE, kdf=KdfParams.fast_for_tests(), clock=lambda: moment)
    ks.create_signing_key("k_sig")
    info = ks.key_info("k_sig")
    assert ks.location("k_sig") == f"{keystore_path}#k_sig" == info.location
    assert (info.key_type, info.created, info.backend) == (KeyType.SIGNING, moment, "file")
    assert "Ed25519" in info.algorithm
    assert FileKeystore.open(keystore_path, PASSPHRASE).key_info("k_sig").created == moment


def test_create_refuses_to_overwrite(make_keystore: MakeKeystore, keystore_path: Path) -> None:
    make_keystore().create_kek("kek")
    with pytest.raises(Conflict):
        FileKeystore.create(keystore_path, "another long passphrase", kdf=KdfParams.fast_for_tests())
    assert FileKeystore.open(keystore_path, PASSPHRASE).has("kek")


def test_create_refuses_a_weak_passphrase(keystore_path: Path) -> None:
    with pytest.raises(InvalidInput):
        FileKeystore.create(keystore_path, "short", kdf=KdfParams.fast_for_tests())
    with pytest.raises(KeystoreLocked):
        FileKeystore.create(keystore_path, "", kdf=KdfParams.fast_for_tests())
    assert not keystore_path.exists()


def test_default_kdf_is_recorded_in_the_file(keystore_path: Path) -> None:
    FileKeystore.create(keystore_path, PASSPHRASE)
    kdf = json.loads(keystore_path.read_bytes())["kdf"]
    assert (kdf["algorithm"], kdf["memory_kib"], kdf["iterations"], kdf["lanes"]) == ("argon2id", 65536, 3, 1)


def _edit(path: Path, change: Callable[[dict[str, object]], None]) -> None:
    doc = json.loads(path.read_bytes())
    change(doc)
    path.write_text(json.dumps(doc))


def _flip_ciphertext(doc: dict[str, object]) -> None:
    raw = bytearray(base64.b64decode(str(doc["ciphertext"])))
    raw[len(raw) // 2] ^= 0x01
    doc["ciphertext"] = base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (_flip_ciphertext, IntegrityError),
        (lambda d: d.update(nonce=base64.b64encode(b"\x00" * 12).decode()), IntegrityError),
        (lambda d: d.update(ciphertext=str(d["ciphertext"])[:-8] + "AAAAAAA="), IntegrityError),
        (lambda d: d.update(nonce="***"), IntegrityError),
        (lambda d: d.pop("check"), IntegrityError),
        (lambda d: d.update(cipher="ChaCha20"), IntegrityError),
        (lambda d: d.update(kdf={"algorithm": "argon2id"}), IntegrityError),
        (lambda d: d["kdf"].update(memory_kib=64 * 1024 * 1024), IntegrityError),
        (lambda d: d.update(format="something-else"), ConfigError),
        (lambda d: d.update(version=2), ConfigError),
        # the header is bound into the passphrase check, so changing it reads as a wrong passphrase
        (lambda d: d["kdf"].update(iterations=2), KeystoreLocked),
        (lambda d: d.update(check=base64.b64encode(b"\x00" * 32).decode()), KeystoreLocked),
    ],
)
def test_tampered_file_is_refused(
    make_keystore: MakeKeystore,
    keystore_path: Path,
    change: Callable[[dict[str, object]], None],
    error: type[Exception],
) -> None:
    make_keystore().create_kek("kek")
    _edit(keystore_path, change)
    with pytest.raises(error) as info:
        FileKeystore.open(keystore_path, PASSPHRASE)
    assert str(keystore_path) in str(info.value)


def test_ciphertext_tamper_names_the_file_and_says_what_to_do(make_keystore: MakeKeystore, keystore_path: Path) -> None:
    make_keystore().create_kek("kek")
    _edit(keystore_path, _flip_ciphertext)
    with pytest.raises(IntegrityError, match="passphrase is right but the contents do not check out"):
        FileKeystore.open(keystore_path, PASSPHRASE)


@pytest.mark.parametrize("content", [b"", b"not json", b"\xff\xfe", b"[1, 2]", b"{}", b"[" * 100_000])
def test_garbage_is_refused(keystore_path: Path, content: bytes) -> None:
    keystore_path.parent.mkdir(parents=True)
    keystore_path.write_bytes(content)
    with pytest.raises((IntegrityError, ConfigError)):
        FileKeystore.open(keystore_path, PASSPHRASE)


def test_missing_keystore_is_a_config_error(keystore_path: Path) -> None:
    with pytest.raises(ConfigError, match="no keystore"):
        FileKeystore.open(keystore_path, PASSPHRASE)


def test_change_passphrase(make_keystore: MakeKeystore, keystore_path: Path) -> None:
    ks = make_keystore()
    ks.create_kek("kek")
    ks.change_passphrase("a brand new passphrase", kdf=KdfParams.fast_for_tests())
    ks.create_kek("kek2")
    with pytest.raises(KeystoreLocked):
        FileKeystore.open(keystore_path, PASSPHRASE)
    assert FileKeystore.open(keystore_path, "a brand new passphrase").key_ids() == ["kek", "kek2"]


def test_other_handles_see_a_changed_passphrase_as_locked(make_keystore: MakeKeystore, keystore_path: Path) -> None:
    ks = make_keystore()
    ks.create_kek("kek")
    other = FileKeystore.open(keystore_path, PASSPHRASE)
    ks.change_passphrase("a brand new passphrase", kdf=KdfParams.fast_for_tests())
    with pytest.raises(KeystoreLocked, match="open it again"):
        other.wrap("kek", b"d" * 32, b"")


def test_closed_keystore_is_locked(make_keystore: MakeKeystore) -> None:
    with make_keystore() as ks:
        ks.create_kek("kek")
    with pytest.raises(KeystoreLocked):
        ks.wrap("kek", b"d" * 32, b"")
    with pytest.raises(KeystoreLocked):
        ks.create_kek("kek2")


def test_two_handles_never_lose_each_others_keys(make_keystore: MakeKeystore, keystore_path: Path) -> None:
    server = make_keystore()
    cli = FileKeystore.open(keystore_path, PASSPHRASE)
    server.create_kek("from-server")
    cli.create_signing_key("from-cli")
    assert server.has("from-cli") and cli.has("from-server")
    cli.destroy("from-server")
    with pytest.raises(NotFound):
        server.wrap("from-server", b"d" * 32, b"")
    assert FileKeystore.open(keystore_path, PASSPHRASE).key_ids() == ["from-cli"]


def test_tampering_after_open_is_noticed(make_keystore: MakeKeystore, keystore_path: Path) -> None:
    ks = make_keystore()
    ks.create_kek("kek")
    _edit(keystore_path, _flip_ciphertext)
    with pytest.raises(IntegrityError):
        ks.wrap("kek", b"d" * 32, b"")


def test_injected_rng_makes_keks_and_nonces(keystore_path: Path) -> None:
    rng = RecordingRng()
    ks = FileKeystore.create(keystore_path, PASSPHRASE, kdf=KdfParams.fast_for_tests(rng), rng=rng)
    before = len(rng.outputs)
    ks.create_kek("kek")
    assert [len(o) for o in rng.outputs[before:]] == [32, 12]  # the KEK, then the file nonce
    wrapped = ks.wrap("kek", b"d" * 32, b"aad")
    assert wrapped[1:13] == rng.outputs[-1]


def test_concurrent_writers_lose_nothing(make_keystore: MakeKeystore, keystore_path: Path) -> None:
    # Threads share one handle (as in the API server) and a second handle stands in for a CLI
    # process: the file lock orders the handles, the state lock the threads.
    first = make_keystore()
    second = FileKeystore.open(keystore_path, PASSPHRASE)

    def work(handle: FileKeystore, prefix: str) -> None:
        for i in range(8):
            handle.create_kek(f"{prefix}-{i}")
            handle.wrap(f"{prefix}-{i}", b"d" * 32, b"")

    threads = [
        threading.Thread(target=work, args=(handle, f"{name}-t{t}"))
        for name, handle in (("a", first), ("b", second))
        for t in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = sorted(f"{n}-t{t}-{i}" for n in "ab" for t in range(3) for i in range(8))
    assert FileKeystore.open(keystore_path, PASSPHRASE).key_ids() == expected
    assert first.key_ids() == second.key_ids() == expected


def test_processes_sharing_the_file_lose_nothing(make_keystore: MakeKeystore, keystore_path: Path) -> None:
    make_keystore()
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from civicshare.crypto import FileKeystore\n"
        "ks = FileKeystore.open(Path(sys.argv[1]), sys.argv[2])\n"
        "for i in range(10):\n"
        "    ks.create_signing_key(f'{sys.argv[3]}-{i}')\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(keystore_path), PASSPHRASE, f"p{n}"]) for n in range(3)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    assert len(FileKeystore.open(keystore_path, PASSPHRASE).key_ids()) == 30
