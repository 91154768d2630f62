"""Datasets: sources, the Task they produce, and the learning-curve splits."""

from bench.data.dataset import FeatureSpec, Task, load_task

__all__ = ["FeatureSpec", "Task", "load_task"]
