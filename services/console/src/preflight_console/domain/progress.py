"""How far a submission's benchmark plan has got, as the queue shows it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """A plan's jobs: how many were planned, have ended (completed or failed) and failed."""

    planned: int
    ended: int
    failed: int

    @property
    def text(self) -> str:
        """ "3 of 4 ended, 1 failed"; "no jobs planned yet" for an empty plan."""
        if not self.planned:
            return "no jobs planned yet"
        text = f"{self.ended} of {self.planned} ended"
        return f"{text}, {self.failed} failed" if self.failed else text

    @property
    def band(self) -> str:
        """The CSS class of the text: "failures", "done", "running" or "not-planned"."""
        if self.failed:
            return "failures"
        if not self.planned:
            return "not-planned"
        return "done" if self.ended == self.planned else "running"


def progress(planned: int, completed: int, failed: int) -> Progress:
    """The progress of a plan of `planned` jobs of which `completed` and `failed` have ended."""
    return Progress(planned, completed + failed, failed)
