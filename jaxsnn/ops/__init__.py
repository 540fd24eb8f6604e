"""Low-level ops: the QCFS quantiser with its straight-through floor, and a convolution for
kernels larger than their input (``conv_general_dilated``, used by every conv layer)."""

from jaxsnn.ops.conv import conv_general_dilated
from jaxsnn.ops.quant import floor_ste, qcfs, qcfs_levels

__all__ = ["conv_general_dilated", "floor_ste", "qcfs", "qcfs_levels"]
