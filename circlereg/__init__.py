"""circlereg: run, sweep and reproduce regularization experiments on the concentric-circles
overfitting study (a 2-500-1 MLP, 30 training and 70 test points of sklearn's make_circles)."""

__version__ = "0.1.0"
