"""Organisation numbers: MOD11 check digits (weights 3 2 7 6 5 4 3 2), used to generate valid test numbers."""

from __future__ import annotations

WEIGHTS = (3, 2, 7, 6, 5, 4, 3, 2)


def check_digit(first_eight: str) -> int | None:
    """The check digit for eight digits, or None when the remainder gives 10 (no valid number)."""
    remainder = sum(w * int(d) for w, d in zip(WEIGHTS, first_eight, strict=True)) % 11
    digit = (11 - remainder) % 11
    return None if digit == 10 else digit


def generate_orgnr(seed: int, *, base: int = 91_000_000) -> str:
    """A valid organisation number derived deterministically from ``seed`` (skipping impossible ones)."""
    candidate = base + seed * 7
    while True:
        first = f"{candidate:08d}"
        digit = check_digit(first)
        if digit is not None:
            return f"{first}{digit}"
        candidate += 1
