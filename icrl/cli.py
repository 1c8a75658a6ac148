"""The `icrl` command."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from icrl import __version__

EXIT_BAD_INPUT = 2
FORMAT_NAMES = ["ipc", "parquet", "hdf5"]


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="icrl", description="In-context RL: collect, datasets, distill, evaluate.")
    parser.add_argument("--version", action="version", version=f"icrl {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the pipeline's stages (skipping those already done)")
    run.add_argument("config", type=Path, help="pipeline.yaml")
    run.add_argument(
        "--force", action="append", default=[], metavar="STAGE", choices=["collect", "datasets", "distill", "evaluate"],
        help="recompute STAGE even if it is done (repeatable)",
    )
    run.add_argument("--ray-address", default=None, help="join this Ray cluster instead of starting a local one")

    status = commands.add_parser("status", help="show each stage: done, partial, stale or pending")
    status.add_argument("config", type=Path)

    datasets = commands.add_parser("datasets", help="list, inspect, verify, convert, publish and export datasets")
    verbs = datasets.add_subparsers(dest="verb", required=True, metavar="VERB")
    listing = verbs.add_parser("list", help="list the datasets under a folder")
    listing.add_argument("root", type=Path, nargs="?", default=Path("runs"), help="where to look (default: runs)")
    inspect = verbs.add_parser("inspect", help="print what a dataset holds and its statistics")
    inspect.add_argument("path", type=Path, help="the dataset folder (holding manifest.json)")
    inspect.add_argument("--card", action="store_true", help="print the whole card (README.md) instead")
    inspect.add_argument("--json", action="store_true", help="print the manifest's description as JSON")
    verify = verbs.add_parser("verify", help="check every file of a dataset: sha256, size, schema")
    verify.add_argument("path", type=Path, help="the dataset folder (holding manifest.json)")
    convert = verbs.add_parser("convert", help="write a dataset in other formats, to a new folder")
    convert.add_argument("path", type=Path, help="the dataset folder")
    convert.add_argument("out", type=Path, help="the new dataset folder (must not exist)")
    convert.add_argument("--to", nargs="+", required=True, choices=FORMAT_NAMES, help="the formats to write")
    convert.add_argument("--from", dest="source", choices=FORMAT_NAMES, help="the format to read (default: fastest present)")
    convert.add_argument("--chunk-length", type=_positive, help="HDF5 steps per chunk (default: as built)")
    publish = verbs.add_parser("publish", help="copy a dataset, self-contained, to a folder or URI (s3://, file://, ...)")
    publish.add_argument("path", type=Path, help="the dataset folder")
    publish.add_argument("dest", help="a local folder or a pyarrow filesystem URI; the dataset lands in <dest>/<id>")
    publish.add_argument("--formats", nargs="+", choices=FORMAT_NAMES, help="formats to publish (default: all present)")
    publish.add_argument("--tar", action="store_true", help="write one <id>.tar instead of a folder")
    export = verbs.add_parser("export", help="write a dataset in another library's format")
    export.add_argument("path", type=Path, help="the dataset folder")
    export.add_argument("--format", required=True, choices=["minari"], help="the target format")
    export.add_argument("--id", dest="export_id", required=True, help="the Minari dataset id, e.g. icrl/darkroom-v0")
    export.add_argument("--root", type=Path, help="the Minari datasets folder (default: MINARI_DATASETS_PATH or ~/.minari)")
    return parser


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> int:
    print(f"icrl: error: {message}", file=sys.stderr)
    return code


def _run(args: argparse.Namespace) -> int:
    from icrl.config import load_config
    from icrl.pipeline import run_pipeline

    cfg = load_config(args.config)
    try:
        outcome = run_pipeline(cfg, force=set(args.force), ray_address=args.ray_address)
    except KeyboardInterrupt:
        return _fail("interrupted; run the same command again to resume", 130)
    evaluate = outcome.get("evaluate")
    if isinstance(evaluate, dict):
        print(json.dumps({k: v for k, v in evaluate.items() if k != "wall_s"}))
    return 0


def _status(args: argparse.Namespace) -> int:
    from icrl.config import load_config
    from icrl.pipeline import describe_stages

    for stage, status, detail, path in describe_stages(load_config(args.config)):
        print(f"{stage:9s} {status:8s} {path}" + (f"  ({detail})" if detail else ""))
    return 0


def _datasets(args: argparse.Namespace) -> int:
    from icrl.datasets import cli_verbs

    return cli_verbs.run(args)


def main(argv: list[str] | None = None) -> int:
    """Runs the `icrl` command line; returns the exit status."""
    from icrl.errors import IcrlError

    args = _parser().parse_args(argv)
    handlers = {"run": _run, "status": _status, "datasets": _datasets}
    try:
        return handlers[args.command](args)
    except IcrlError as err:
        return _fail(str(err), err.exit_code)
    except OSError as err:  # a folder that cannot be written, a full disk, ...
        return _fail(f"{err.filename or ''}: {err.strerror or err}".lstrip(": "), 1)


if __name__ == "__main__":
    sys.exit(main())
