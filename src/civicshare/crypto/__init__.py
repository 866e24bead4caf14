"""Keys and cryptography: keystores, data keys and wrapping, sealing documents with age.

Only safe recipes live here, built on ``cryptography`` and ``pyrage``; no primitive is hand-written.
Security failures raise (``KeystoreLocked``, ``IntegrityError``...), never return False.
"""

from civicshare.crypto.datakeys import (
    discard_leftovers,
    document_recipient,
    fingerprint,
    new_document_key,
    new_table_key,
    open_sealed,
    open_sealed_to_file,
    seal_stream,
)
from civicshare.crypto.filekeystore import FileKeystore
from civicshare.crypto.kdf import KdfParams
from civicshare.crypto.keystore import KeyInfo, Keystore, KeyType, check_key_id
from civicshare.crypto.passphrase import check_new_passphrase, passphrase_from_env_or_prompt
from civicshare.crypto.randomness import Rng
from civicshare.crypto.wrapping import unwrap_key, wrap_key

__all__ = [
    "FileKeystore",
    "KdfParams",
    "KeyInfo",
    "KeyType",
    "Keystore",
    "Rng",
    "check_key_id",
    "check_new_passphrase",
    "discard_leftovers",
    "document_recipient",
    "fingerprint",
    "new_document_key",
    "new_table_key",
    "open_sealed",
    "open_sealed_to_file",
    "passphrase_from_env_or_prompt",
    "seal_stream",
    "unwrap_key",
    "wrap_key",
]
