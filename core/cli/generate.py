"""`python -m core generate PROMPT`: continue a prompt, token by token (KV-cache decoding)."""
from __future__ import annotations

import core
from core.model.sampling import Sampler


def add_arguments(parser) -> None:
    parser.add_argument("prompt", help='the text to continue, e.g. "the sky is"')
    parser.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (default 1.0)")
    parser.add_argument("--top-k", type=int, default=0, help="keep the k most likely tokens (default 0 = off)")
    parser.add_argument("--top-p", type=float, default=1.0, help="keep the most likely tokens up to total p (default 1.0 = off)")
    parser.add_argument("--seed", type=int, default=None, help="random seed, for a repeatable draw")
    parser.add_argument("--max-new-tokens", type=int, default=20, help="at most this many new tokens (default 20)")
    parser.add_argument("--steps", action="store_true", help="also print every step: token, probability, kept tokens")
    parser.add_argument("--checkpoint", metavar="DIR", default=None, help="a checkpoint directory (default: the bundled model)")


def run(args) -> int:
    sampler = Sampler(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    model = core.load_model(args.checkpoint)
    generation = model.generate(args.prompt, args.max_new_tokens, sampler)
    for notice in generation.notices:
        print(f"notice: {notice}")
    print(generation.text)
    if args.steps:
        for number, step in enumerate(generation.steps, start=1):
            kept = int((step.distribution > 0).sum())
            print(f"  step {number}: {step.token!r} p={step.probability:.3f} (from {kept} tokens)")
        print(f"  stopped: {generation.stop_reason}")
    return 0
