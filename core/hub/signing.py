"""The hub's decision-signing keys, kept outside the database like the audit key.

A keyring is text, one key a line, oldest first: ``private <64 hex>`` (an Ed25519 seed) or
``public <64 hex>`` (a retired key, kept so its signatures still verify). The newest private
key signs. It comes from the ``signing_keys`` setting (``SIGNOFF_SIGNING_KEYS``, e.g. a
Kubernetes Secret), else the ``signing_keys_file``, else ``<database>.signing-keys`` beside a
SQLite database, made on first start (mode 0600). ``signoff keys rotate`` retires the signing
key (its line becomes ``public``) and appends a new one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .._errors import SignoffError
from .._evidence import Keyring
from ..store import is_postgres
from .settings import Settings

__all__ = ["SigningKeyError", "SigningKeys", "hub_signing_keys", "rotate_signing_keys"]


class SigningKeyError(SignoffError):
    """No usable signing keyring: missing where it must be given, or a line that is no key."""


@dataclass(frozen=True)
class SigningKeys:
    """A loaded keyring and where it came from (a path, or the setting's name)."""

    keyring: Keyring
    source: str
    created: bool = False


def parse_keyring(text: str, source: str) -> Keyring:
    """The keyring ``text`` holds (see the module docstring).

    Raises:
        SigningKeyError: a line that is not ``private|public <64 hex>``, or no private key.
    """
    keys: list[Ed25519PrivateKey | Ed25519PublicKey] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        kind, _, hexed = line.partition(" ")
        try:
            raw = bytes.fromhex(hexed.strip())
            if kind == "private" and len(raw) == 32:
                keys.append(Ed25519PrivateKey.from_private_bytes(raw))
                continue
            if kind == "public" and len(raw) == 32:
                keys.append(Ed25519PublicKey.from_public_bytes(raw))
                continue
        except ValueError:
            pass
        raise SigningKeyError(f"signing keys {source}, line {number}: expected 'private <64 hex>'"
                              f" or 'public <64 hex>', got {line[:20]!r}...")
    ring = Keyring.of(keys)
    if ring.signer is None:
        raise SigningKeyError(f"signing keys {source}: no private key to sign with")
    return ring


def _new_line() -> str:
    seed = Ed25519PrivateKey.generate().private_bytes_raw()
    return f"private {seed.hex()}\n"


def default_keys_file(settings: Settings) -> Path | None:
    """Where the keyring lives when no setting names it: beside a SQLite database."""
    if settings.signing_keys_file is not None:
        return settings.signing_keys_file
    database = settings.database.removeprefix("sqlite:///")
    if is_postgres(database) or database == ":memory:":
        return None
    return Path(database + ".signing-keys")


def hub_signing_keys(settings: Settings, *, create: bool) -> SigningKeys:
    """The hub's keyring (see the module docstring); made beside a SQLite database when
    ``create`` and missing. An in-memory database gets a random keyring of its own.

    Raises:
        SigningKeyError: none where one must be given (a database server), or unreadable.
    """
    if settings.signing_keys is not None:
        return SigningKeys(parse_keyring(settings.signing_keys.get_secret_value(),
                                         "(SIGNOFF_SIGNING_KEYS)"), "SIGNOFF_SIGNING_KEYS")
    path = default_keys_file(settings)
    if path is None:
        if settings.database == ":memory:" and create:
            return SigningKeys(parse_keyring(_new_line(), "random"),
                               "a random keyring for this in-memory store", created=True)
        raise SigningKeyError("no signing keys: a database server keeps no file beside it; give "
                              "them with SIGNOFF_SIGNING_KEYS or SIGNOFF_SIGNING_KEYS_FILE "
                              "(`signoff keys new` prints a keyring)")
    created = False
    if create and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(_new_line())
            created = True
    try:
        text = path.read_text()
    except OSError as exc:
        raise SigningKeyError(f"signing keys {path}: {exc.strerror or exc}") from exc
    return SigningKeys(parse_keyring(text, str(path)), str(path), created=created)


def rotate_signing_keys(path: Path) -> str:
    """Retire every private key in the file at ``path`` (kept as ``public``) and append a new
    one, which signs from the hub's next start; returns the new key's id.

    Raises:
        SigningKeyError: the file is missing or not a keyring.
    """
    try:
        text = path.read_text()
    except OSError as exc:
        raise SigningKeyError(f"signing keys {path}: {exc.strerror or exc}") from exc
    ring = parse_keyring(text, str(path))
    lines = [f"public {key.public_bytes_raw().hex()}\n" for key in ring.public.values()]
    new = _new_line()
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("".join(lines) + new)
    os.replace(tmp, path)
    signer = parse_keyring(new, "new").signer_kid
    assert signer is not None
    return signer
