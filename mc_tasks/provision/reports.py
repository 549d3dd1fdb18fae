"""Results of setup, teardown and verification: JSON-ready and printable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

#: Outcome of a run for one resource.
Action = Literal["created", "updated", "unchanged", "deleted", "absent", "kept"]


@dataclass(frozen=True)
class ResourceResult:
    """One resource of the event path and what the run did to it.

    ``changes`` lists each repaired difference, for example
    ``"VisibilityTimeout: 30 -> 120"``.
    """

    kind: str
    name: str
    action: Action
    arn: str | None = None
    changes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "action": self.action,
            "arn": self.arn,
            "changes": list(self.changes),
        }

    def __str__(self) -> str:
        line = f"{self.kind} {self.name}: {self.action}"
        if self.changes:
            line = f"{line} ({'; '.join(self.changes)})"
        return line


@dataclass
class SetupReport:
    """Outcome of setup or teardown for each resource, in the order they were handled."""

    resources: list[ResourceResult] = field(default_factory=list)
    #: Facts the user should know that are not a resource change.
    notes: list[str] = field(default_factory=list)
    #: Attempts the run took, including the successful one.
    attempts: int = 1

    def add(self, result: ResourceResult) -> None:
        self.resources.append(result)

    def action_of(self, kind: str) -> Action:
        """Return the action taken on the resource of ``kind``; KeyError if none was handled."""
        for result in self.resources:
            if result.kind == kind:
                return result.action
        raise KeyError(kind)

    @property
    def changed(self) -> bool:
        """Whether the run created, updated or deleted anything."""
        return any(r.action in ("created", "updated", "deleted") for r in self.resources)

    def to_dict(self) -> dict[str, Any]:
        return {
            "resources": [result.to_dict() for result in self.resources],
            "notes": list(self.notes),
            "attempts": self.attempts,
            "changed": self.changed,
        }

    def __str__(self) -> str:
        lines = [str(result) for result in self.resources]
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)


@dataclass(frozen=True)
class CheckResult:
    """One verification check: its name, whether it passed and why."""

    name: str
    passed: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "message": self.message}

    def __str__(self) -> str:
        return f"[{'pass' if self.passed else 'FAIL'}] {self.name}: {self.message}"


@dataclass
class VerificationReport:
    """Every verification check; ``ok`` is true only when all of them passed."""

    checks: list[CheckResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, passed: bool, message: str) -> None:
        self.checks.append(CheckResult(name, passed, message))

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.passed for check in self.checks)

    @property
    def failed(self) -> list[CheckResult]:
        return [check for check in self.checks if not check.passed]

    def check(self, name: str) -> CheckResult:
        """Return the check called ``name``; KeyError if it did not run."""
        for result in self.checks:
            if result.name == name:
                return result
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [check.to_dict() for check in self.checks],
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        lines = [str(check) for check in self.checks]
        lines.extend(f"note: {note}" for note in self.notes)
        verdict = "all checks passed" if self.ok else f"{len(self.failed)} check(s) failed"
        lines.append(verdict)
        return "\n".join(lines)
