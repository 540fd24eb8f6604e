"""Small helpers shared by the command-line scripts (train.py, convert.py)."""

import logging


class _DropThirdPartyInfo(logging.Filter):
    """Drops INFO records emitted from orbax/etils internals (one line per file written)."""

    NOISY = ("/orbax/", "/etils/", "/tensorflow_datasets/")

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not any(
            part in record.pathname for part in self.NOISY
        )


def quiet_third_party_logs() -> None:
    """Keeps our INFO logs readable by dropping Orbax/TFDS INFO chatter (warnings still show)."""
    for handler in logging.getLogger().handlers + logging.getLogger("absl").handlers:
        handler.addFilter(_DropThirdPartyInfo())
    logging.getLogger("absl").addFilter(_DropThirdPartyInfo())
