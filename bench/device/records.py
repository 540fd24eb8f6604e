"""Result records of the device check: appended one by one, JSON and Markdown rewritten each time.

Every section appends its records as they are measured (``add``); each append rewrites
``<stem>.json`` and ``<stem>.md`` atomically, so whatever was measured before a timeout is in
the files that come back. The JSON Lines file that collects them lives beside them.
"""

import json
import os
import tempfile

JSONL_ENV = "JAXSNN_DEVICE_RECORDS"  # path of the JSON Lines file the sections append to
STEM_ENV = "JAXSNN_DEVICE_STEM"  # output path without extension (…/results_gpu)


def add(record: dict) -> None:
    """Appends ``record`` and rewrites the JSON and Markdown outputs."""
    path = os.environ[JSONL_ENV]
    with open(path, "a") as f:
        f.write(json.dumps(record, default=_jsonable) + "\n")
    write(load(path), os.environ[STEM_ENV])


def load(path: str) -> list[dict]:
    """Every complete record in the JSON Lines file (a line cut short by a kill is skipped)."""
    out = []
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def write(records: list[dict], stem: str) -> None:
    """Writes ``stem.json`` and ``stem.md`` (each replaced atomically)."""
    from bench.device import report

    _atomic(stem + ".json", json.dumps(records, indent=1, default=_jsonable))
    _atomic(stem + ".md", report.markdown(records))


def _atomic(path: str, text: str) -> None:
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp_")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _jsonable(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return str(x)
