"""Model families. Every method is a scikit-learn-style estimator built from a MethodConfig."""

from bench.methods.base import MethodContext, build_method

__all__ = ["MethodContext", "build_method"]
