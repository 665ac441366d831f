"""``python -m builders run SPEC.json``: run one build in this process (see builders/runner.py);
``python -m builders verify REQUEST.json RESULT.json``: check a published release (builders/verify.py).
``python -m builders engine SPEC.json --sm N ...``: one SM's engine from a release checkpoint, and its serving
check with ``--serving REQUESTS.json``;
``python -m builders serve REQUESTS.json RESULT.json``: serving checks of a release by repo id
(builders/serving_check.py).
``python -m builders warm TOOLCHAIN --log FILE``: import a toolchain, then run the one command stdin gives
(builders/warm.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from builders.warm import PRELOADS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m builders", description="Run one quantbot build.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="Run the build a BuildSpec JSON file describes; resumes if rerun.")
    run.add_argument("spec", type=Path, help="Path of the BuildSpec JSON file.")
    verify = commands.add_parser(
        "verify", help="Download a published release by id and check it (see builders/verify.py)."
    )
    verify.add_argument("request", type=Path, help="Path of the VerifyRequest JSON file.")
    verify.add_argument("result", type=Path, help="Where to write the VerificationRecord JSON.")
    engine = commands.add_parser("engine", help="Build one SM's engine from a downloaded release checkpoint.")
    engine.add_argument("spec", type=Path, help="Path of the BuildSpec JSON file (format, engine settings).")
    engine.add_argument("--sm", type=int, required=True, help="The SM to build the engine for.")
    engine.add_argument("--checkpoint", type=Path, required=True, help="The release's downloaded files.")
    engine.add_argument("--out", type=Path, required=True, help="Where trt-llm/engines/<label>/ goes.")
    engine.add_argument("--serving", type=Path, help="ServingRequest list: the SM's serving check, after.")
    serve = commands.add_parser("serve", help="Load a release by repo id in each runtime here and generate.")
    serve.add_argument("requests", type=Path, help="Path of a JSON list of ServingRequest, one per SM.")
    serve.add_argument("result", type=Path, help="Where to write the ServingRecord list as JSON.")
    warm = commands.add_parser("warm", help="Import a toolchain, then run the builder command stdin gives.")
    warm.add_argument("toolchain", choices=sorted(PRELOADS), help="What to import before the build.")
    warm.add_argument("--log", type=Path, required=True, help="Where stderr goes until the build's log.")
    args = parser.parse_args(argv)
    if args.command == "warm":
        from builders.warm import main as run_warm

        return run_warm(args.toolchain, args.log, main)
    if args.command == "verify":
        from builders.verify import main as run_verify
        from builders.verify import without_torch

        without_torch()
        return run_verify(args.request, args.result)
    if args.command == "engine":
        from builders.engine_step import main as run_engine

        return run_engine(args.spec, args.sm, args.checkpoint, args.out, args.serving)
    if args.command == "serve":
        from builders.serving_check import main as run_serve

        return run_serve(args.requests, args.result)
    from builders.runner import main as run_build

    return run_build(args.spec)


if __name__ == "__main__":
    status = main()
    # What the command made is on disk by now (manifests, records and results are written and synced):
    # leave at once rather than tear down torch and the toolchains, which takes seconds and changes nothing.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
