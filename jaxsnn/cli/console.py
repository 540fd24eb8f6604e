"""The console of ``train.py`` and ``convert.py``: what users see, what goes to the log file.

- **Terminal**: progress (:mod:`jaxsnn.progress`), result tables, this package's warnings as
  ``warning: ...`` lines, and on failure exactly one ``error: ...`` line.
- **Log file** ``<workdir>/jaxsnn.log``: every log record (ours, absl, TFDS, Orbax, JAX), Python
  warnings, and the traceback of any failure. Records are held in memory until the workdir
  exists, so a run refused before it starts creates nothing.
- **Exit codes**: 0 success; 2 a failure the user can fix (bad flag or config value, missing or
  mismatched files, a refused overwrite, a diverged training); 3 another process of a
  multi-process run stopped; 1 an internal error (its traceback is in the log); 130 interrupted.
  After a failure the process ends without running interpreter teardown (nor JAX's shutdown
  barrier, which would wait for a dead process), so background threads of Orbax and friends
  cannot print anything after the ``error:`` line.
"""

import logging
import os
import sys
import traceback
import warnings
from collections.abc import Callable

from absl import flags
from absl import logging as absl_logging

from jaxsnn.train import sharding

LOG_NAME = "jaxsnn.log"
# Failures a user causes and can fix: one line, exit 2.
USER_ERRORS = (
    ValueError,
    OSError,  # FileNotFoundError, FileExistsError, PermissionError, a config file that won't load
    FloatingPointError,
    ImportError,
    KeyError,
    flags.Error,
)
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _DeferredFileHandler(logging.Handler):
    """Appends to ``<workdir>/jaxsnn.log`` once the workdir exists; buffers until then."""

    def __init__(self, workdir: str):
        super().__init__(logging.DEBUG)
        self.path = os.path.join(workdir, LOG_NAME)
        self._pending: list[str] = []
        self._file = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # A malformed record must not break the run.
            return
        if self._file is None and os.path.isdir(os.path.dirname(self.path)):
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
            for line in self._pending:
                self._file.write(line + "\n")
            self._pending = []
        if self._file is None:
            self._pending.append(text)
        else:
            self._file.write(text + "\n")
            self._file.flush()

    def spill(self) -> str | None:
        """Writes buffered records to a temporary log (the workdir never appeared); its path."""
        if self._file is not None:
            return self.path
        if not self._pending:
            return None
        import tempfile

        fd, path = tempfile.mkstemp(prefix="jaxsnn-", suffix=".log")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(self._pending) + "\n")
        self._pending = []
        return path

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        super().close()


class _OurWarnings(logging.Filter):
    """Keeps warnings (and worse) logged from jaxsnn's own code or the scripts."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return False
        path = os.path.abspath(record.pathname)
        return path.startswith(_PACKAGE_DIR) and "site-packages" not in path


class _WarningFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"warning: {record.getMessage()}"


def setup(workdir: str | None, *, verbose: bool = False) -> logging.Handler:
    """Routes all logging to the log file and our own warnings to the terminal.

    Args:
      workdir: the run folder (its ``jaxsnn.log``); ``None``: no log file.
      verbose: also show every log record on the terminal (debugging).

    Returns:
      The file handler (its ``path`` names the log).
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    absl_handler = absl_logging.get_absl_handler()
    file_handler = _DeferredFileHandler(workdir or os.devnull)
    file_handler.setFormatter(absl_logging.PythonFormatter())
    root.addHandler(file_handler)
    console = logging.StreamHandler(sys.stderr)
    if verbose:
        console.setFormatter(absl_logging.PythonFormatter())
    else:
        console.addFilter(_OurWarnings())
        console.setFormatter(_WarningFormatter())
    root.addHandler(console)
    root.setLevel(logging.INFO)
    absl_logging.set_verbosity(absl_logging.INFO)
    absl_logging.get_absl_logger().propagate = True
    absl_handler.setLevel(logging.CRITICAL + 1)  # absl's own stderr handler stays silent
    logging.captureWarnings(True)
    warnings.simplefilter("default")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if not sys.stderr.isatty():  # TFDS's own bars (first preparation of a dataset) need a TTY.
        import tensorflow_datasets as tfds

        tfds.disable_progress_bar()
    return file_handler


def one_line(err: BaseException) -> str:
    """The message of ``err`` on one line."""
    text = " / ".join(line.strip() for line in str(err).splitlines() if line.strip())
    if isinstance(err, KeyError) and err.args:
        text = f"missing key {err.args[0]!r}"
    return text or type(err).__name__


def _finish(code: int) -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def report(err: BaseException) -> tuple[int, str]:
    """The exit code and the one ``error:`` line for a failure (see the module docstring)."""
    if isinstance(err, KeyboardInterrupt):
        return 130, "error: interrupted"
    lost = sharding.lost_peer_message(err) if "jax" in sys.modules else None
    if lost is not None:  # Another process of a multi-process run died.
        return 3, f"error: {lost}"
    if isinstance(err, USER_ERRORS):
        return 2, f"error: {one_line(err)}"
    return 1, f"error: internal error: {type(err).__name__}: {one_line(err)}"


def run(main: Callable[[], None], *, workdir: str | None = None) -> None:
    """Sets up the console (:func:`setup`) and runs ``main`` under the module's error contract."""
    setup(workdir)
    try:
        main()
    except BaseException as err:  # noqa: BLE001 - every failure ends in one line
        if isinstance(err, SystemExit):
            raise
        code, line = report(err)
        log = logging.getLogger("jaxsnn")
        if code == 1:
            log.error("internal error\n%s", traceback.format_exc())
            handlers = logging.getLogger().handlers
            path = next((h.spill() for h in handlers if isinstance(h, _DeferredFileHandler)), None)
            line += f"; traceback in {path}" if path else ""
        else:
            log.info("failure", exc_info=True)
        print(line, file=sys.stderr)
        _finish(code)


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parser with the error contract: one ``error:`` line and exit 2."""
    try:
        return flags.FLAGS(argv)
    except Exception as err:  # flags.Error, and config overrides that fail to parse
        print(f"error: {one_line(err)}", file=sys.stderr)
        _finish(2)
    return []
