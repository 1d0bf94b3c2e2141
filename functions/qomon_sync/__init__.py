"""qomon-sync: the runtime package shipped in both Lambdas."""

__version__ = "0.1.0"
