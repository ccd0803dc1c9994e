"""effgen: efficient discriminative and generative modelling, reproduced."""
__version__ = "0.1.0"
