"""Synthetic data: labelled texts (zero-/few-shot), instruction-response pairs, multi-turn dialogues."""

from tamis.generate.conversations import DialogueConfig, InstructionConfig, generate_dialogues, generate_instructions
from tamis.generate.labelled import GenerationResult, LabelledGenerationConfig, generate_labelled
from tamis.generate.nearcopy import NearCopyConfig, NearCopyFilter
from tamis.generate.parse import parse_generated_text
from tamis.generate.tasks import TaskConfig, bundled_tasks, load_task

__all__ = [
    "DialogueConfig", "GenerationResult", "InstructionConfig", "LabelledGenerationConfig", "NearCopyConfig", "NearCopyFilter", "TaskConfig",
    "bundled_tasks", "generate_dialogues", "generate_instructions", "generate_labelled", "load_task",
    "parse_generated_text",
]
