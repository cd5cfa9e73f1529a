"""``signoff keys`` and ``signoff verify``: the hub's public signing keys, and an export
checked offline against them (docs/evidence.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ._cli_db import db_option
from ._client import Client
from ._errors import SignoffError
from ._evidence import Keyring, verify_record

__all__ = ["keys", "verify"]

_DB_HELP = "Read the keyring of the hub on this database (its settings' signing keys)."


def _local_keyring(database: str | None, config: str | None) -> tuple[Keyring, str]:
    """The hub's keyring as its settings name it (never made here)."""
    try:
        from .hub.settings import load_settings
        from .hub.signing import hub_signing_keys
    except ImportError as exc:  # the hub extra is missing: say which, in one line
        raise SignoffError(str(exc)) from exc
    loaded = hub_signing_keys(load_settings(config, database=database), create=False)
    return loaded.keyring, loaded.source


def _root(ctx: click.Context) -> dict[str, Any]:
    return ctx.find_root().obj or {}


@click.group(invoke_without_command=True)
@db_option(_DB_HELP)
@click.option("--config", type=click.Path(dir_okay=False), default=None, envvar="SIGNOFF_CONFIG")
@click.pass_context
def keys(ctx: click.Context, database: str | None, config: str | None) -> None:
    """Print the hub's public decision-signing keys as JSON (JWKS-like): from the running hub
    (``GET /api/v1/keys``), or with --db/--config from its keyring. Save the output to pin the
    keys in clients or to check an export offline with `signoff verify --keys`.
    """
    if ctx.invoked_subcommand is not None:
        return
    if database is None and config is None:
        obj = _root(ctx)
        with Client(obj.get("url"), obj.get("token"), channel="cli", retry_for=5.0) as client:
            document = client.public_keys()
    else:
        document = _local_keyring(database, config)[0].jwks()
    click.echo(json.dumps(document, indent=2, sort_keys=True))


@keys.command("rotate")
@db_option("The hub's database (its keyring beside).")
@click.option("--config", type=click.Path(dir_okay=False), default=None, envvar="SIGNOFF_CONFIG")
def keys_rotate(database: str | None, config: str | None) -> None:
    """Retire the signing key (kept, public only: old decisions still verify) and add a new
    one, which signs from the hub's next start. Only a keyring file can be rotated here; one
    given in SIGNOFF_SIGNING_KEYS is rotated where that secret is kept (`signoff keys new`).
    """
    from .hub.settings import load_settings
    from .hub.signing import default_keys_file, rotate_signing_keys

    settings = load_settings(config, database=database)
    path = default_keys_file(settings)
    if settings.signing_keys is not None or path is None:
        raise SignoffError("the signing keys come from SIGNOFF_SIGNING_KEYS (or no file is "
                           "named): rotate them where that secret is kept")
    kid = rotate_signing_keys(path)
    click.echo(f"signoff: {path}: new signing key {kid}; restart the hub to sign with it")


@keys.command("new")
def keys_new() -> None:
    """Print a new keyring line (``private <hex>``), for SIGNOFF_SIGNING_KEYS; append it under
    the old lines (their ``private`` changed to their public ``public`` form) to rotate.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    click.echo(f"private {Ed25519PrivateKey.generate().private_bytes_raw().hex()}")


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--keys", "keys_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The public keys (`signoff keys` output); default: fetched from the hub.")
@click.pass_context
def verify(ctx: click.Context, file: str, keys_file: str | None) -> None:
    """Check a `signoff export` file offline: each row's shown fields against its digest, and
    its decision against the hub's signature. Prints each row that fails and exits 1.
    """
    if keys_file is not None:
        document = json.loads(Path(keys_file).read_text())
    else:
        obj = _root(ctx)
        with Client(obj.get("url"), obj.get("token"), channel="cli", retry_for=5.0) as client:
            document = client.public_keys()
    try:
        keyring = Keyring.from_jwks(document)
    except ValueError as exc:
        raise SignoffError(f"{keys_file or 'the hub'}: {exc}") from exc
    bad = total = 0
    for number, line in enumerate(Path(file).read_text().splitlines(), 1):
        if not line.strip():
            continue
        total += 1
        try:
            row = json.loads(line)
            why = verify_record(row, keyring) if isinstance(row, dict) else "not a JSON object"
        except ValueError as exc:
            why = f"not JSON ({exc})"
        if why is not None:
            bad += 1
            ident = row.get("id", "?") if isinstance(row, dict) else "?"
            click.echo(f"{file}:{number}: event {ident}: does not verify: {why}", err=True)
    if bad:
        click.echo(f"{bad} of {total} decision(s) do NOT verify", err=True)
        sys.exit(1)
    click.echo(f"{total} decision(s) verified with {len(keyring.public)} public key(s)")
