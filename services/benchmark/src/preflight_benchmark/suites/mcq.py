"""preflight_benchmark/cyber_mcq: multiple-choice questions from a file in CyberMetric's published
format (``{"questions": [{"question": ..., "answers": {"A": ..., ...}, "solution": "A"}]}``).

The file is a catalog data source: a worker copies it from its data mirror, digest checked, and
passes its local path as `dataset`.
"""

from __future__ import annotations

import json
from pathlib import Path

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.scorer import choice
from inspect_ai.solver import multiple_choice, system_message

SYSTEM = "You are a security expert who answers questions."


@task
def cyber_mcq(dataset: str) -> Task:
    """The questions of the CyberMetric-format file at `dataset`, scored by the chosen letter."""
    questions = json.loads(Path(dataset).read_text(encoding="utf-8"))["questions"]
    samples = [
        Sample(
            id=f"q-{n:05d}",
            input=q["question"],
            choices=[q["answers"][letter] for letter in sorted(q["answers"])],
            target=q["solution"],
        )
        for n, q in enumerate(questions, start=1)
    ]
    return Task(
        dataset=MemoryDataset(samples, name=Path(dataset).name),
        solver=[system_message(SYSTEM), multiple_choice()],
        scorer=choice(),
    )
