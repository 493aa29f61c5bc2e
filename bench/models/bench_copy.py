"""A benchmark model: copies config_1's ``in_file_one`` to ``<out_dir>/copy.csv`` in 1 MiB chunks.

Its output is as large as its input, and it never holds more than one chunk, so a run shows
what the worker (not the model) needs to move large files in and out.
"""

import configparser
import os

CHUNK = 1 << 20


def bench_copy(*configs: str) -> None:
    """Copy the first config's first input file into its output directory."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(configs[0])
    source = os.path.join(parser["INPUTS"]["in_dir"], parser["INPUTS"]["in_file_one"])
    out_dir = parser["OUTPUTS"]["out_dir"]
    os.makedirs(out_dir, exist_ok=True)
    with open(source, "rb") as reader, open(os.path.join(out_dir, "copy.csv"), "wb") as writer:
        while chunk := reader.read(CHUNK):
            writer.write(chunk)
