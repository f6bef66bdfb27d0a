"""Registry of every downloadable asset (pretrained models), where each file goes, and what is present.

``all_assets()``, ``get(id)``, ``local_path(asset, root)``, ``status(root)``, ``missing_message(statuses)``
are pure (no network). :mod:`app.assets.download` fetches files when asked to.
"""

from app.assets.catalog import all_assets, get, install_hint, status
from app.assets.registry import (
    Archive,
    Asset,
    AssetFile,
    AssetStatus,
    FileStatus,
    UnknownAsset,
    asset_status,
    file_path,
    local_path,
    missing_message,
)

__all__ = [
    "Archive",
    "Asset",
    "AssetFile",
    "AssetStatus",
    "FileStatus",
    "UnknownAsset",
    "all_assets",
    "asset_status",
    "file_path",
    "get",
    "install_hint",
    "local_path",
    "missing_message",
    "status",
]
