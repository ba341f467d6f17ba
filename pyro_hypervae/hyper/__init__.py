"""Stage 3, parameter generators: u -> theta. The matrix-network hyper-decoder
of HyperVAE (``MatrixHyperDecoder``)."""

from .matrix import MatrixHyperDecoder, MatrixLayer, matrix_shape

__all__ = ["MatrixHyperDecoder", "MatrixLayer", "matrix_shape"]
