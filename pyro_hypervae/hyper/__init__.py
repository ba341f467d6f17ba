"""Stage 3, parameter generators: codes -> theta. The matrix-network hyper-decoder
of HyperVAE (``MatrixHyperDecoder``) and HyperGAN's per-layer generators
(``LayerwiseGenerator`` over ``GENERATORS``: ``mlp``, ``matrix``)."""

from .generators import LayerwiseGenerator, MatrixLayerGenerator, MLPLayerGenerator
from .matrix import MatrixHyperDecoder, MatrixLayer, matrix_shape

__all__ = ["LayerwiseGenerator", "MLPLayerGenerator", "MatrixHyperDecoder", "MatrixLayer", "MatrixLayerGenerator", "matrix_shape"]
