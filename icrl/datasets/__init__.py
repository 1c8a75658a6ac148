"""Datasets of learning histories: schema, the three formats, manifest, build, convert, reading, sampling."""

from icrl.datasets.convert import convert
from icrl.datasets.dataset import Dataset
from icrl.datasets.layout import FORMATS
from icrl.datasets.manifest import DatasetError
from icrl.datasets.sampler import WindowSampler
from icrl.datasets.schema import SCHEMA_VERSION, history_schema
from icrl.datasets.stores import HistoryStore
from icrl.datasets.verify import verify

__all__ = [
    "Dataset", "DatasetError", "FORMATS", "HistoryStore", "SCHEMA_VERSION", "WindowSampler", "convert",
    "history_schema", "verify",
]
