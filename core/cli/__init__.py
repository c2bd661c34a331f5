"""The command-line interface: `python -m core COMMAND ...`.

Each command is a module in this package with `add_arguments(parser)` and
`run(args) -> int`. Bad input (ValueError, TypeError, OSError) prints one line of
error and exits with code 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "generate": "continue a prompt with the model",
    "trace": "show every intermediate of one forward pass",
    "info": "the model's config, parameter count and attention backend",
    "train": "train the model on the bundled corpus",
    "bench": "time the attention backends against each other",
    "fetch": "download a GPT-2 or Llama-family checkpoint from the Hugging Face hub (needs the [hub] extra)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Glassbox: a transformer you can see through.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in COMMANDS.items():
        module = importlib.import_module(f"core.cli.{name}")
        module.add_arguments(commands.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module = importlib.import_module(f"core.cli.{args.command}")
    try:
        return module.run(args)
    except (ValueError, TypeError, OSError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
