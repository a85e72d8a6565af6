"""Ed25519 signing of export manifests, and verification of an export directory against its manifest."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
PUBLIC_KEY = "public-key.pem"


class SigningError(ValueError):
    """The signing key cannot be read or created; the message names the file."""


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The private key in ``path`` (PKCS#8 PEM); created with mode 0600 on first use."""
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        # O_EXCL: when two processes start at once, the first key written wins and both use it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key(path)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return key


def _read_key(path: Path) -> Ed25519PrivateKey:
    data = path.read_bytes()
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError as exc:
        raise SigningError(f"{path}: not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"{path}: holds a {type(key).__name__}, an Ed25519 key is needed")
    return key


def public_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def key_fingerprint(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """SHA-256 hex of the raw 32-byte public key; manifests name their key by it."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def load_public_pem(pem: str | bytes) -> Ed25519PublicKey:
    data = pem.encode() if isinstance(pem, str) else pem
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise SigningError(f"not an Ed25519 public key but {type(key).__name__}")
    return key


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    """The canonical bytes that are signed: sorted keys, two-space indent, UTF-8, final newline."""
    return (json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def revisions_fingerprint(revisions: Iterable[tuple[str, int, str]]) -> str:
    """One digest for a set of signed revisions (month, revision, SHA-256 of its manifest.json): a report built
    from them names them by it.

    It is the SHA-256 of one line per revision, ``<month> r<revision> <manifest SHA-256>`` and a newline, in month
    order, so ``sha256sum`` recomputes it from the revisions' directories (docs/reports.md shows how).
    """
    lines = "".join(f"{month} r{revision} {digest}\n" for month, revision, digest in sorted(revisions))
    return hashlib.sha256(lines.encode()).hexdigest()


def sign(key: Ed25519PrivateKey, data: bytes) -> bytes:
    return key.sign(data)


def signature_text(signature: bytes) -> bytes:
    """How a signature is written next to the manifest: base64 and a newline."""
    return base64.b64encode(signature) + b"\n"


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"


def verify_directory(directory: Path, public_key: Ed25519PublicKey | None = None) -> list[Problem]:
    """Every reason the export in ``directory`` cannot be trusted; empty when the signature and all hashes hold.

    Without ``public_key`` the directory's own ``public-key.pem`` is used; compare its fingerprint with the one
    served at /api/v1/exports/public-key, since whoever can change the files can change that copy too.
    """
    try:
        raw_manifest = (directory / MANIFEST).read_bytes()
        manifest = json.loads(raw_manifest)
    except FileNotFoundError:
        return [Problem(MANIFEST, "missing")]
    except ValueError as exc:
        return [Problem(MANIFEST, f"not valid JSON: {exc}")]
    problems = _check_signature(directory, raw_manifest, manifest, public_key)
    for entry in manifest.get("files", []):
        problems.extend(_check_file(directory, entry))
    return problems


def _check_signature(
    directory: Path, raw_manifest: bytes, manifest: dict[str, Any], public_key: Ed25519PublicKey | None
) -> list[Problem]:
    if public_key is None:
        try:
            public_key = load_public_pem((directory / PUBLIC_KEY).read_bytes())
        except FileNotFoundError:
            return [Problem(PUBLIC_KEY, "missing; pass the key served at /api/v1/exports/public-key")]
        except (ValueError, SigningError) as exc:
            return [Problem(PUBLIC_KEY, f"unreadable: {exc}")]
    try:
        signature = base64.b64decode((directory / SIGNATURE).read_bytes().strip(), validate=True)
    except FileNotFoundError:
        return [Problem(SIGNATURE, "missing")]
    except ValueError:
        return [Problem(SIGNATURE, "not base64")]
    problems = []
    expected = manifest.get("signing_key", {}).get("fingerprint")
    if expected != key_fingerprint(public_key):
        problems.append(
            Problem(MANIFEST, f"names signing key {expected}, not the given key {key_fingerprint(public_key)}")
        )
    try:
        public_key.verify(signature, raw_manifest)
    except InvalidSignature:
        problems.append(Problem(MANIFEST, "signature does not match (the manifest or its signature was changed)"))
    return problems


def _check_file(directory: Path, entry: dict[str, Any]) -> list[Problem]:
    name = str(entry.get("name", ""))
    path = directory / name
    if not name or Path(name).name != name:
        return [Problem(name or "?", "manifest names a file outside the directory")]
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [Problem(name, "missing")]
    problems = []
    if len(data) != entry.get("size"):
        problems.append(Problem(name, f"size {len(data)} bytes, manifest says {entry.get('size')}"))
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.get("sha256"):
        problems.append(Problem(name, f"SHA-256 {digest} does not match the manifest's {entry.get('sha256')}"))
    return problems
