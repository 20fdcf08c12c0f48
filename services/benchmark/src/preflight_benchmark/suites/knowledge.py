"""cyber.knowledge: multiple-choice questions on offensive and defensive security."""

from __future__ import annotations

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.scorer import choice
from inspect_ai.solver import multiple_choice

from preflight_benchmark.suites.datasets import knowledge_questions


@task
def knowledge() -> Task:
    """Multiple-choice questions (choices in a fixed order), scored on the chosen letter."""
    samples = [
        Sample(id=q.id, input=f"Challenge {q.id}. {q.question}", choices=list(q.choices), target=q.answer)
        for q in knowledge_questions()
    ]
    return Task(
        dataset=MemoryDataset(samples, name="cyber.knowledge"),
        solver=multiple_choice(),
        scorer=choice(),
    )
