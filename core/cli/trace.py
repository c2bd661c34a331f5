"""`python -m core trace PROMPT`: every intermediate of one forward pass (`--json` for scripts)."""
from __future__ import annotations

import json
import os
import sys

import numpy as np

import core


def add_arguments(parser) -> None:
    parser.add_argument("prompt", help='the text to run, e.g. "the sky is"')
    parser.add_argument("--json", action="store_true",
                        help="print the whole trace as JSON: every array as {shape, values} (-inf as null)")
    parser.add_argument("--checkpoint", metavar="DIR", default=None, help="a checkpoint directory (default: the bundled model)")


def run(args) -> int:
    trace = core.load_model(args.checkpoint).run(args.prompt)
    try:
        if args.json:
            print(json.dumps(trace.to_json_dict(), allow_nan=False))
        else:
            print_summary(trace)
        sys.stdout.flush()
    except BrokenPipeError:  # the reader stopped early (`| head`): Python's documented way out, no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


def print_summary(trace) -> None:
    for notice in trace.notices:
        print(f"notice: {notice}")
    print(f"tokens: {trace.tokens}  ids: {trace.ids.tolist()}")
    for name, value in trace.items():
        print(f"  {name:34s} {list(value.shape)}  |x| max {np.abs(value[np.isfinite(value)]).max():.3g}")
    last = trace.tokens[-1]
    for layer_number, layer in enumerate(trace.layers):
        for head, weights in enumerate(layer.weights[:, -1]):  # [H, L] -> one row per head
            top = int(np.argmax(weights))
            print(f"layer {layer_number} head {head}: {last!r} attends most to {trace.tokens[top]!r} ({weights[top]:.2f})")
    predictions = ", ".join(f"{token!r} {probability:.3f}" for token, probability in trace.top_predictions(5))
    print(f"next token: {predictions}")
