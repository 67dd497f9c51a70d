"""Emulator clocks: emulator time is epoch seconds, real (optionally sped up) or manual.

Jobs never tick: their status is derived from the clock whenever it is asked for, so moving
a clock forward is instant however many jobs exist.
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "ManualClock", "RealClock"]


class Clock(Protocol):
    """What the emulator needs from a clock."""

    def now(self) -> float:
        """Emulator time, in epoch seconds."""
        ...

    def advance(self, seconds: float) -> None:
        """Jump forward by ``seconds``."""
        ...

    def seconds_until(self, when: float) -> float:
        """Real seconds until emulator time ``when`` (inf for a manual clock)."""
        ...


class RealClock:
    """Wall time, moving ``speed`` emulator seconds per real second, plus any jumps."""

    def __init__(self, *, speed: float = 1.0, start: float | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._start = time.time() if start is None else start
        self._mono = time.monotonic()
        self._offset = 0.0

    def now(self) -> float:
        """Emulator time, in epoch seconds."""
        return self._start + (time.monotonic() - self._mono) * self.speed + self._offset

    def advance(self, seconds: float) -> None:
        """Jump forward by ``seconds`` (the clock keeps running afterwards)."""
        if seconds < 0:
            raise ValueError("the clock cannot go backwards")
        self._offset += seconds

    def seconds_until(self, when: float) -> float:
        """Real seconds until emulator time ``when``."""
        return max(0.0, (when - self.now()) / self.speed)

    def __repr__(self) -> str:
        return f"RealClock(speed={self.speed}, now={self.now():.3f})"


class ManualClock:
    """A clock that moves only when told to: deterministic tests."""

    def __init__(self, *, start: float | None = None) -> None:
        self._now = float(int(time.time())) if start is None else float(start)

    def now(self) -> float:
        """Emulator time, in epoch seconds."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move forward by ``seconds``.

        Prefer ``await emu.advance(seconds)``, which also delivers the webhooks that fall due.
        """
        if seconds < 0:
            raise ValueError("the clock cannot go backwards")
        self._now += seconds

    def set(self, when: float) -> None:
        """Move to ``when`` (never backwards)."""
        self._now = max(self._now, when)

    def seconds_until(self, when: float) -> float:
        """A manual clock never reaches a time on its own."""
        return 0.0 if when <= self._now else float("inf")

    def __repr__(self) -> str:
        return f"ManualClock(now={self._now:.3f})"
