"""Opening storage from an fsspec URL plus options, the way every plugin setting names it.

``storage_url`` / ``ledger_path`` style settings accept ``s3://``, ``gs://``, ``az://`` (or
``abfs://``), ``file://`` URLs and plain local paths; the matching ``*_options`` setting is passed
to the fsspec filesystem (credentials, ``endpoint_url``...). Options may weaken TLS; that is
allowed for private endpoints but never silent (:func:`tls_downgrades`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import fsspec

# *_options keys (at any depth) whose false value turns TLS or its verification off.
_TLS_SWITCHES = frozenset({"verify", "use_ssl", "verify_ssl", "ssl", "secure"})
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def open_url(url: str, options: Mapping[str, Any] | None = None) -> tuple[Any, str]:
    """``(filesystem, path)`` for ``url``; ``options`` go to the filesystem's constructor."""
    fs, path = fsspec.core.url_to_fs(url, **dict(options or {}))
    return fs, path


def is_local(fs: Any) -> bool:
    """True for the local filesystem (plain paths and ``file://`` URLs)."""
    protocol = fs.protocol
    names = (protocol,) if isinstance(protocol, str) else tuple(protocol)
    return "file" in names or "local" in names


def tls_downgrades(options: Any, path: str = "") -> list[str]:
    """Dotted names of the options entries that weaken TLS.

    fsspec passes the options straight to the storage client, so a user can turn TLS
    verification off there (``client_kwargs.verify``, ``use_ssl``...) or point the client at a
    plain-http endpoint. That is allowed for private endpoints, but never silently: the plugin
    logs a warning naming each entry. Plain http to localhost (an emulator) is not flagged.
    """
    found: list[str] = []
    if not isinstance(options, Mapping):
        return found
    for key, value in options.items():
        name = f"{path}{key}"
        if isinstance(value, Mapping):
            found += tls_downgrades(value, f"{name}.")
        elif key in _TLS_SWITCHES and str(value).strip().lower() in ("false", "0", "no", "off"):
            found.append(name)
        elif key == "endpoint_url" and isinstance(value, str):
            parts = urlsplit(value)
            if parts.scheme == "http" and parts.hostname not in _LOCAL_HOSTS:
                found.append(name)
    return found
