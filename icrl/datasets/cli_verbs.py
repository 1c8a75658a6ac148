"""`icrl datasets list | inspect | verify | convert | publish | export`: what each verb prints."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from icrl.datasets.card import format_stat
from icrl.datasets.dataset import Dataset
from icrl.datasets.layout import CARD_FILE
from icrl.datasets.manifest import MANIFEST, DatasetError, read_manifest
from icrl.datasets.verify import verify

# `icrl datasets verify` on a damaged dataset exits 1, like `sha256sum --check`.
EXIT_CHECK_FAILED = 1


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _list(root: Path) -> int:
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    found = sorted(
        p.parent for p in root.rglob(MANIFEST) if not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not found:
        print(f"no datasets under {root}")
        return 0
    print(f"{'dataset':32s} {'formats':20s} {'rows':>12s} {'histories':>10s} {'size':>10s}  path")
    for folder in found:
        try:
            manifest = read_manifest(folder)
            stats = manifest.get("stats", {})
            size = sum(f["bytes"] for f in manifest["files"])
            print(
                f"{manifest.get('dataset_id', '?'):32s} {','.join(manifest.get('formats', [])):20s} "
                f"{stats.get('rows', 0):>12,} {stats.get('histories', 0):>10,} {_mb(size):>10s}  {folder}"
            )
        except DatasetError as err:
            print(f"{'(unreadable)':32s} {str(err)}")
    return 0


def _inspect(path: Path, *, card: bool, as_json: bool) -> int:
    manifest = read_manifest(path)
    if card:
        print((path / CARD_FILE).read_text(), end="")
        return 0
    described = {k: v for k, v in manifest.items() if k != "files"}
    if as_json:
        print(json.dumps(described, indent=2))
        return 0
    stats = manifest["stats"]
    source = manifest["source"]["source"]
    print(f"{manifest['dataset_id']}  (schema v{manifest['schema_version']}, icrl {manifest['icrl_version']}, "
          f"licence {manifest['license']})")
    print(f"  environment  {manifest['env']['id']}  {json.dumps({k: v for k, v in manifest['env'].items() if k != 'id'})}")
    print(f"  source       {source['algorithm']}  {json.dumps({k: v for k, v in source.items() if k != 'algorithm'})}")
    print(f"  size         {stats['rows']:,} rows, {stats['histories']:,} histories")
    for fmt, n in stats["bytes"].items():
        print(f"  {fmt:12s} {_mb(n)}  ({n / max(stats['rows'], 1):.1f} bytes per transition)")
    print("  columns      " + ", ".join(manifest["schema"]))
    for split in ("train", "heldout"):
        s = stats["splits"][split]
        print(f"  {split:8s} {s['tasks']} tasks, {s['histories']:,} histories, {s['rows']:,} rows")
        print(f"    first-episode return  {format_stat(s['first_episode_return'])}")
        print(f"    final-episode return  {format_stat(s['final_episode_return'])}")
        print(f"    every episode         {format_stat(s['episode_return'])}")
    print(f"  files        {len(manifest['files'])} listed in {path / MANIFEST}; `icrl datasets verify {path}` checks them")
    return 0


def _verify(path: Path) -> int:
    try:
        manifest = verify(path)
    except DatasetError as err:
        print(f"icrl: error: {err}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    print(f"{path}: ok, {len(manifest['files'])} files match the manifest (sha256, size, schema)")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from icrl.datasets.convert import convert

    manifest = convert(Dataset(args.path), args.out, args.to, source=args.source, chunk_length=args.chunk_length)
    sizes = ", ".join(f"{fmt} {_mb(n)}" for fmt, n in manifest["stats"]["bytes"].items())
    print(f"{args.out}: {manifest['dataset_id']} written ({sizes})")
    return 0


def _publish(args: argparse.Namespace) -> int:
    from icrl.datasets.publish import publish

    where = publish(Dataset(args.path), args.dest, formats=args.formats, as_tar=args.tar)
    print(f"published {where}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from icrl.datasets.minari_export import export_minari

    folder = export_minari(Dataset(args.path), args.export_id, root=args.root)
    print(f"minari dataset {args.export_id} written to {folder}")
    return 0


def _checked(path: Path, verb: Any) -> int:
    """Runs `verb`, turning a manifest that lacks a field into one clear error."""
    try:
        return verb()
    except (KeyError, TypeError, AttributeError) as err:
        raise DatasetError(f"{path / MANIFEST}: not a complete icrl manifest (no {err})") from None


def run(args: argparse.Namespace) -> int:
    """Runs the `icrl datasets` verb in `args`; returns the exit status."""
    verbs: dict[str, Any] = {
        "list": lambda: _list(args.root),
        "inspect": lambda: _checked(args.path, lambda: _inspect(args.path, card=args.card, as_json=args.json)),
        "verify": lambda: _verify(args.path),
        "convert": lambda: _convert(args),
        "publish": lambda: _publish(args),
        "export": lambda: _export(args),
    }
    return verbs[args.verb]()
