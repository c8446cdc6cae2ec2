"""The web console: static pages (plain ES modules and CSS, no build step) and their files."""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from importlib import resources

_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True, slots=True)
class Asset:
    """One file of the console, read once at start."""

    body: bytes
    content_type: str
    etag: str


def load_assets() -> dict[str, Asset]:
    """Every file under `static/`, by URL path (`/` for index.html, `/assets/…` for the rest)."""
    assets: dict[str, Asset] = {}
    root = resources.files(__package__) / "static"
    pending = [(root, "")]
    while pending:
        folder, prefix = pending.pop()
        for entry in folder.iterdir():
            if entry.is_dir():
                pending.append((entry, f"{prefix}{entry.name}/"))
                continue
            suffix = "." + entry.name.rsplit(".", 1)[-1]
            kind = _TYPES.get(suffix) or mimetypes.guess_type(entry.name)[0] or "text/plain"
            body = entry.read_bytes()
            asset = Asset(body, f"{kind}; charset=utf-8", hashlib.sha256(body).hexdigest()[:16])
            assets[f"/assets/{prefix}{entry.name}"] = asset
    assets["/"] = assets.pop("/assets/index.html")
    return assets
