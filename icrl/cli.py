"""The `icrl` command."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from icrl import __version__

EXIT_BAD_INPUT = 2


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

    datasets = commands.add_parser("datasets", help="work with built datasets")
    verbs = datasets.add_subparsers(dest="verb", required=True, metavar="VERB")
    verify = verbs.add_parser("verify", help="check every file of a dataset against its manifest")
    verify.add_argument("path", type=Path, help="the dataset folder (holding manifest.json)")
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
    from icrl.pipeline import stage_dirs

    for stage, sd in stage_dirs(load_config(args.config)).items():
        print(f"{stage:9s} {sd.status():8s} {sd.path}")
    return 0


def _datasets(args: argparse.Namespace) -> int:
    from icrl.datasets.manifest import DatasetError, verify

    try:
        manifest = verify(args.path)
    except DatasetError as err:
        return _fail(str(err), 1)  # like `sha256sum --check`: a failed check exits 1
    print(f"{args.path}: ok, {len(manifest['files'])} files match the manifest")
    return 0


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
