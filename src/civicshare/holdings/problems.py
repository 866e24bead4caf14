"""Collecting every problem in an input file, so a user can fix it in one go."""

from __future__ import annotations

from civicshare.errors import InvalidInput, Problem

MAX_PROBLEMS = 100


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


class Problems:
    """Problems with one file: keeps the first :data:`MAX_PROBLEMS`, counts the rest."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.items: list[Problem] = []
        self.total = 0
        self.total_is_lower_bound = False

    def add(self, message: str, *, line: int | None = None, field: str | None = None) -> None:
        self.total += 1
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(Problem(message, file=self.file, line=line, field=field))

    @property
    def full(self) -> bool:
        """True once no further problem would be listed (callers may stop looking)."""
        return len(self.items) >= MAX_PROBLEMS

    def __bool__(self) -> bool:
        return self.total > 0

    def __len__(self) -> int:
        return self.total

    def error(self, what: str = "cannot be imported") -> InvalidInput:
        """One :class:`InvalidInput` listing every problem (up to the cap)."""
        listed = list(self.items)
        more = self.total - len(listed)
        at_least = "at least " if self.total_is_lower_bound else ""
        message = f"{self.file} {what}: {at_least}{_plural(self.total, 'problem')} found"
        if more > 0:
            message += f"; the first {len(listed)} are listed"
            listed.append(
                Problem(
                    f"{at_least}{_plural(more, 'more problem')} like these {'is' if more == 1 else 'are'} not listed",
                    file=self.file,
                )
            )
        return InvalidInput(message, problems=listed)

    def raise_if_any(self, what: str = "cannot be imported") -> None:
        if self:
            raise self.error(what)


def refuse(file: str, message: str, *, line: int | None = None, field: str | None = None) -> InvalidInput:
    """An :class:`InvalidInput` about a single problem."""
    problems = Problems(file)
    problems.add(message, line=line, field=field)
    return problems.error()
