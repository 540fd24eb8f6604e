"""Quantisation ops with straight-through gradients: ``floor_ste`` and ``qcfs``."""

from jaxsnn.ops.quant import floor_ste, qcfs, qcfs_levels

__all__ = ["floor_ste", "qcfs", "qcfs_levels"]
