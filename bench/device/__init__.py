"""The prepared GPU check (see bench/device/README.md)."""
