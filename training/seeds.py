"""Seed and id ranges as people write them: ``0-31``, ``0,4,7-9``."""

from __future__ import annotations

from gmg.training.config import ConfigError

MAX_RANGE = 1_000_000  # ids one range may expand to (a typo like 0-10000000000 must not eat the memory)


def parse_ranges(text: str, what: str = "seeds", example: str = "0-31 or 0,4,7-9") -> list[int]:
    """``"0-3,7"`` -> [0, 1, 2, 3, 7] in the order written; non-negative ids, ranges inclusive."""
    ids: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            lo, hi = (int(x) for x in part.split("-", 1)) if "-" in part[1:] else (int(part), int(part))
        except ValueError:
            raise ConfigError(f"cannot read {what} {text!r}: write e.g. {example}") from None
        if min(lo, hi) < 0:
            raise ConfigError(f"{what} must be non-negative integers, got {part!r} in {text!r}")
        if hi < lo:
            raise ConfigError(f"the range {part!r} of {what} ends before it starts: write {hi}-{lo}")
        if hi - lo >= MAX_RANGE:
            raise ConfigError(f"the range {part!r} of {what} holds over {MAX_RANGE:,} ids; was it a typo?")
        ids += range(lo, hi + 1)
    if not ids:
        raise ConfigError(f"no {what} in {text!r}: write e.g. {example}")
    return ids


def parse_seeds(text: str | int | list[int]) -> list[int]:
    """``"0-31"``, ``"0,3,5-7"``, an int or a list of ints -> sorted unique seeds."""
    if isinstance(text, int):
        text = [text]
    if isinstance(text, list):
        text = ",".join(str(int(s)) for s in text)
    return sorted(set(parse_ranges(text)))


def format_seeds(seeds: list[int]) -> str:
    """The inverse of ``parse_seeds``: [0, 1, 2, 5] -> "0-2,5"."""
    parts, seeds = [], sorted(seeds)
    i = 0
    while i < len(seeds):
        j = i
        while j + 1 < len(seeds) and seeds[j + 1] == seeds[j] + 1:
            j += 1
        parts.append(str(seeds[i]) if i == j else f"{seeds[i]}-{seeds[j]}")
        i = j + 1
    return ",".join(parts)
