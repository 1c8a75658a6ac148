"""Datasets of learning histories: schema, Arrow IPC shards, manifest, build, reading, sampling."""

from icrl.datasets.dataset import Dataset
from icrl.datasets.manifest import DatasetError, verify
from icrl.datasets.sampler import WindowSampler
from icrl.datasets.schema import SCHEMA_VERSION, history_schema

__all__ = ["Dataset", "DatasetError", "SCHEMA_VERSION", "WindowSampler", "history_schema", "verify"]
