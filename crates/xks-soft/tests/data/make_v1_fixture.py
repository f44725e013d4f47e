#!/usr/bin/env python3
"""Writes v1-passphrase.json: a version 1 key store built from the format
description in the xks-soft crate docs, with Python's `cryptography` package
(OpenSSL's AES-GCM and Argon2id), independently of the Rust code.

It also prints a decrypt vector under key `fixture-a` version 1, using the
GCM AAD layout of the XKS fact sheet (section 4) with xks-keymanager's
ciphertextMetadata for version 1 (01 00 00 00 01).

Run: python3 make_v1_fixture.py > vectors.txt (it writes the JSON beside itself).
"""
import base64
import json
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

PASSPHRASE = b"xks-soft fixture passphrase"
SALT = bytes(range(0x40, 0x50))          # 16 bytes
NONCE = bytes(range(0x60, 0x6c))         # 12 bytes
MEMORY_KIB, ITERATIONS, LANES = 8, 1, 1

K_CANARY = bytes(range(0x80, 0xa0))
K_A1 = bytes(range(0x00, 0x20))
K_A2 = bytes(range(0x20, 0x40))
K_B1 = bytes(range(0xa0, 0xc0))


def b64(b):
    return base64.b64encode(b).decode()


key_set = {
    "keys": [
        {"id": "fixture-a", "usage": ["ENCRYPT", "DECRYPT"], "state": "ENABLED",
         "created": 1764460800,
         "versions": [
             {"version": 1, "created": 1764460800, "material": K_A1.hex()},
             {"version": 2, "created": 1764547200, "material": K_A2.hex()},
         ]},
        {"id": "fixture-b", "usage": ["ENCRYPT"], "state": "DISABLED",
         "created": 1764460801,
         "versions": [{"version": 1, "created": 1764460801, "material": K_B1.hex()}]},
        {"id": "xks-health-canary", "usage": ["ENCRYPT", "DECRYPT"], "state": "ENABLED",
         "created": 1764460800,
         "versions": [{"version": 1, "created": 1764460800, "material": K_CANARY.hex()}]},
    ]
}

# Members in another order than the Rust writer uses, with spaces: the AAD is
# whatever bytes the header has in the file.
header = {
    "version": 1,
    "format": "xks-soft-key-store",
    "cipher": {"nonce": b64(NONCE), "algorithm": "aes-256-gcm"},
    "kdf": {"algorithm": "argon2id", "argon2-version": 19, "memory-kib": MEMORY_KIB,
            "iterations": ITERATIONS, "parallelism": LANES, "salt": b64(SALT)},
    "secret": "passphrase",
}
header_bytes = json.dumps(header, separators=(", ", ": ")).encode()

kek = Argon2id(salt=SALT, length=32, iterations=ITERATIONS, lanes=LANES,
               memory_cost=MEMORY_KIB).derive(PASSPHRASE)
plaintext = json.dumps(key_set, separators=(",", ":")).encode()
sealed = AESGCM(kek).encrypt(NONCE, plaintext, header_bytes)

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "v1-passphrase.json"), "wb") as f:
    f.write(b'{"header": ' + header_bytes + b', "ciphertext": "' + b64(sealed).encode() + b'"}\n')

# A ciphertext made by key fixture-a version 1, as the Rust backend would.
iv = bytes(range(0xd0, 0xdc))
aad = b"project=nile,department=marketing"
metadata = bytes([1, 0, 0, 0, 1])
gcm_aad = len(aad).to_bytes(2, "big") + aad + bytes([len(metadata)]) + metadata
ct = AESGCM(K_A1).encrypt(iv, b"Hello World!", gcm_aad)
print("argon2id kek:", kek.hex())
print("iv:", iv.hex())
print("ciphertext:", ct[:-16].hex())
print("tag:", ct[-16:].hex())

# Our metadata for version 1 and 2 under the fact sheet's key 00..1f and IV.
iv = base64.b64decode("HMrlRw85cAJUd5Ax")
for version in (1, 2):
    metadata = bytes([1]) + version.to_bytes(4, "big")
    gcm_aad = len(aad).to_bytes(2, "big") + aad + bytes([len(metadata)]) + metadata
    ct = AESGCM(K_A1).encrypt(iv, b"Hello World!", gcm_aad)
    print(f"fact-sheet key, our v{version} metadata: ct", ct[:-16].hex(), "tag", ct[-16:].hex())
