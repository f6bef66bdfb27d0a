"""Download, list and check the pretrained models SoVITS Studio uses (the download tool's ``main``).

The same command as ``python tools/download_models.py``, ``python -m app.assets`` and the console
command ``sovits-studio-download``:

    python tools/download_models.py --list                 every asset, its folder, required or not
    python tools/download_models.py --check [--verify]     what is present / missing (exit 1 if a required one is missing)
    python tools/download_models.py NAME [NAME ...]        download assets (e.g. chinese-hubert-base gpt-sovits-v2pro)
    python tools/download_models.py --required             download every required asset

``--root DIR`` points at another pretrained folder (default: STUDIO_PRETRAINED or <STUDIO_HOME>/pretrained_models).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from app import assets
from app.assets.download import download_asset
from app.settings import load_settings


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="download_models.py",
        description="Download, list and check SoVITS Studio's pretrained models.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Without network, --check and the error messages name each file and the folder it belongs in.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="asset ids to download (see --list)")
    p.add_argument("--list", action="store_true", help="list every asset and where it goes")
    p.add_argument(
        "--check",
        action="store_true",
        help="show present/missing files; exit 1 when a required asset is missing",
    )
    p.add_argument("--verify", action="store_true", help="with --check: also compare sha256 digests (slow)")
    p.add_argument("--required", action="store_true", help="download every required asset")
    p.add_argument(
        "--root", type=Path, help="pretrained models folder (default from STUDIO_HOME / STUDIO_PRETRAINED)"
    )
    return p


def _list(root: Path) -> int:
    for asset in assets.all_assets():
        flag = "required" if asset.required else "optional"
        where = (
            "(Python package " + str(asset.repo_id) + ")"
            if asset.source == "bundled"
            else f"{assets.local_path(asset, root)}/"
        )
        print(f"{asset.id:28s} {flag:8s} {where}")
        print(f"{'':28s} {asset.description}; used by {asset.used_by}")
    return 0


def _check(root: Path, verify: bool) -> int:
    statuses = assets.status(root, verify=verify)
    for st in statuses:
        flag = "required" if st.asset.required else "optional"
        state = "present" if st.ok else "MISSING"
        print(f"[{state:7s}] {st.asset.id:28s} {flag:8s} {st.folder}/")
        for fs in st.files:
            if fs.state != "present":
                print(f"           {fs.state}: {fs.path}")
    missing_required = [st for st in statuses if st.asset.required and not st.ok]
    if missing_required:
        print("\nRequired assets are missing:\n", file=sys.stderr)
        print(assets.missing_message(missing_required, command=_command(root)), file=sys.stderr)
        return 1
    print("\nAll required assets are present.")
    return 0


def _command(root: Path) -> str:
    default = load_settings().pretrained
    base = "python tools/download_models.py"
    return base if Path(root).resolve() == default.resolve() else f"{base} --root {root}"


def _download(names: Sequence[str], root: Path, offline: bool) -> int:
    try:
        chosen = [assets.get(n) for n in names]
    except assets.UnknownAsset as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failed = []
    for asset in chosen:
        report = download_asset(asset, root, offline=offline)
        for f in report.files:
            print(f"[{f.result:10s}] {asset.id}: {f.path}" + (f"  ({f.reason})" if f.reason else ""))
            if f.sha256:  # the catalog lists no digest: show this one, to compare with the publisher's
                print(
                    f"{'':13s}sha256 {f.sha256} (not in the catalog; compare it with the publisher's listing)"
                )
        if not report.ok:
            failed.append(asset)
    if failed:
        statuses = assets.status(root, failed)
        print("\nSome files could not be downloaded. Put them in place by hand:\n", file=sys.stderr)
        print(assets.missing_message(statuses, command=_command(root)), file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = load_settings()
    root = (args.root or settings.pretrained).expanduser().resolve()
    if args.list:
        return _list(root)
    if args.check:
        return _check(root, args.verify)
    names = list(args.names)
    if args.required:
        names += [a.id for a in assets.all_assets() if a.required and a.id not in names]
    if not names:
        _parser().print_help()
        return 2
    return _download(names, root, settings.offline)
