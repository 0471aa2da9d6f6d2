"""The engine: the only modules that load TensorFlow (and Keras).

backend (TensorFlow and Keras, set up once), model (the MLP and its regularizers),
regularizers (penalties, Keras' activity convention), train (the compiled lanes, with
early_stopping), fit (the model.fit reference), writer (a trained replica's metrics, figures
and run directory) and worker (trains jobs, in a worker process, a Ray actor or a test's
process). Nothing outside this package imports it: the command's process never loads
TensorFlow; it hands jobs to workers by name (`executor.WORKER`), and tests/test_imports.py
holds that boundary.
"""
