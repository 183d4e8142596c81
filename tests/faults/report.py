"""The rounds' table: each row written to .local/faults/results.md as its round ends, with the evidence of
what went wrong, and printed in the run's summary (tests/faults/conftest.py)."""

import time
from dataclasses import dataclass

from tests.faults.backends import FAULTS_DIR

RESULTS = FAULTS_DIR / "results.md"
EVIDENCE = FAULTS_DIR / "evidence.md"
HEADER = (
    "| fault | jobs | lost | duplicated | wrong | seconds to recover | notes |\n"
    "| --- | --- | --- | --- | --- | --- | --- |"
)


@dataclass
class Row:
    fault: str
    jobs: int
    lost: int
    duplicated: int
    wrong: int
    seconds: float | None  # heal -> every accepted job ended; None: not within the bound
    notes: str = ""

    def line(self) -> str:
        recover = "not within bound" if self.seconds is None else f"{self.seconds:.0f}"
        return (
            f"| {self.fault} | {self.jobs} | {self.lost} | {self.duplicated} | {self.wrong} | {recover} "
            f"| {self.notes} |"
        )


ROWS: list[Row] = []
NOTES: list[str] = []


def start(run: str) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(f"# Fault rounds, run {run}, {time.strftime('%Y-%m-%d %H:%M:%S')}\n\n{HEADER}\n")
    EVIDENCE.write_text(f"# Evidence of the failing fault rounds, run {run}\n")


def add(row: Row, evidence: list[str]) -> None:
    ROWS.append(row)
    with RESULTS.open("a") as out:
        out.write(row.line() + "\n")
    if evidence:
        with EVIDENCE.open("a") as out:
            out.write(
                f"\n## {row.fault} ({time.strftime('%H:%M:%S')})\n" + "\n".join(f"- {e}" for e in evidence) + "\n"
            )


def note(text: str) -> None:
    NOTES.append(text)
    with RESULTS.open("a") as out:
        out.write(f"\n{text}\n")


def table() -> str:
    return "\n".join([HEADER, *(r.line() for r in ROWS)])
