"""Words the pages write about numbers: "1 token", "3 tokens"."""


def count(number: int, noun: str, plural: str | None = None) -> str:
    """"1 token", "3 tokens" (`plural` when it is not noun + "s": "1 match", "2 matches")."""
    return f"{number:,} {noun if number == 1 else plural or noun + 's'}"
