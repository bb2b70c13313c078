"""The data layer: read anything people actually have into Examples, lose nothing, write it back.

    result = read_dataset("train.jsonl", quarantine="train.quarantine.jsonl")
    print(result.summary())
    write_dataset(result.examples, "train.parquet", format="alpaca")
    ds = result.to_hf()                      # a datasets.Dataset (read_dataset(ds) reads it back)
"""

from tamis.io.convert import to_hf, to_pandas
from tamis.io.errors import ConversionError, DataError, Problem, RowError
from tamis.io.formats import FORMATS, detect_format, from_row, to_row
from tamis.io.inspect import inspect_dataset
from tamis.io.reader import ReadResult, examples_from, read_dataset, write_dataset

__all__ = [
    "FORMATS", "ConversionError", "DataError", "Problem", "ReadResult", "RowError",
    "detect_format", "examples_from", "from_row", "inspect_dataset", "read_dataset", "to_hf", "to_pandas", "to_row",
    "write_dataset",
]
