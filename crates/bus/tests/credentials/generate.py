#!/usr/bin/env python3
"""Writes the NATS decentralized-auth fixtures of crates/bus/tests/connection_security.rs:
an operator, a system account, an account with JetStream, and a user's .creds file (JWT + NKey seed), from
fixed seeds so that rerunning gives the same files. Test-only keys: never use them
anywhere else. Needs Python's `cryptography` package (Ed25519); no nsc.

    python3 crates/bus/tests/credentials/generate.py
"""

import base64
import hashlib
import json
import pathlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization

HERE = pathlib.Path(__file__).parent

# NKey prefix bytes (github.com/nats-io/nkeys).
SEED, OPERATOR, ACCOUNT, USER = 18 << 3, 14 << 3, 0, 20 << 3


def crc16(data: bytes) -> int:
    """CRC-16/XMODEM, as nkeys appends it."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def b32(raw: bytes) -> str:
    raw += crc16(raw).to_bytes(2, "little")
    return base64.b32encode(raw).decode().rstrip("=")


class Key:
    def __init__(self, prefix: int, label: str):
        self.prefix = prefix
        self.raw_seed = hashlib.sha256(f"dbt-ops test {label}".encode()).digest()
        self.private = Ed25519PrivateKey.from_private_bytes(self.raw_seed)
        public = self.private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.public = b32(bytes([prefix]) + public)
        self.seed = b32(
            bytes([SEED | (prefix >> 5), (prefix & 31) << 3]) + self.raw_seed
        )


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def jwt(issuer: Key, subject: str, name: str, nats: dict) -> str:
    claims = {"iat": 1764000000, "iss": issuer.public, "name": name, "sub": subject, "nats": nats}
    # jti: a hash of the claims, as the nats jwt library writes it.
    unsigned = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()
    claims["jti"] = base64.b32encode(hashlib.sha256(unsigned).digest()).decode().rstrip("=")
    header = b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    body = b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    signature = issuer.private.sign(f"{header}.{body}".encode())
    return f"{header}.{body}.{b64(signature)}"


operator = Key(OPERATOR, "operator")
system = Key(ACCOUNT, "system account")
account = Key(ACCOUNT, "account")
user = Key(USER, "user")

operator_jwt = jwt(operator, operator.public, "dbt-ops-test", {"type": "operator", "version": 2})
unlimited = -1
# JetStream in operator mode needs a system account.
system_jwt = jwt(
    operator,
    system.public,
    "SYS",
    {"default_permissions": {"pub": {}, "sub": {}}, "type": "account", "version": 2},
)
account_jwt = jwt(
    operator,
    account.public,
    "DBTOPS",
    {
        "limits": {
            "subs": unlimited, "data": unlimited, "payload": unlimited,
            "imports": unlimited, "exports": unlimited, "wildcards": True,
            "conn": unlimited, "leaf": unlimited,
            "mem_storage": unlimited, "disk_storage": unlimited,
            "streams": unlimited, "consumer": unlimited,
        },
        "default_permissions": {"pub": {}, "sub": {}},
        "type": "account",
        "version": 2,
    },
)
user_jwt = jwt(
    account,
    user.public,
    "dbtops-fixer",
    {
        "pub": {}, "sub": {}, "subs": unlimited, "data": unlimited, "payload": unlimited,
        "type": "user", "version": 2,
    },
)

(HERE / "operator.jwt").write_text(operator_jwt + "\n")
(HERE / "system.pub").write_text(system.public + "\n")
(HERE / "system.jwt").write_text(system_jwt + "\n")
(HERE / "account.pub").write_text(account.public + "\n")
(HERE / "account.jwt").write_text(account_jwt + "\n")
(HERE / "user.seed").write_text(user.seed + "\n")
(HERE / "user.creds").write_text(
    f"""-----BEGIN NATS USER JWT-----
{user_jwt}
------END NATS USER JWT------

************************* IMPORTANT *************************
NKEY Seed printed below can be used to sign and prove identity.
This one is a test key of dbt-ops: it grants nothing anywhere else.

-----BEGIN USER NKEY SEED-----
{user.seed}
------END USER NKEY SEED------

*************************************************************
"""
)
