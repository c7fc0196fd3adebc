"""CPU convolution rewrites: layers that compute a Flax layer's function faster on XLA:CPU.

Split by technique: `subpixel` (transposed convolutions by output phases), `strided`
(strided convolutions whose gradients avoid zero-dilated inputs), `winograd` (F(4x4, 3x3)
for the wide stride-1 convolutions both run on the CPU), `common` (what they share).
Each layer keeps the Flax layer's parameter names and shapes (tests/test_ops.py).
"""

from gan.ops.common import glorot_uniform
from gan.ops.strided import SpaceToDepthConv, SubPixelGradConv
from gan.ops.subpixel import SubPixelConvTranspose

__all__ = ['SpaceToDepthConv', 'SubPixelConvTranspose', 'SubPixelGradConv', 'glorot_uniform']
