"""edgecodec: a learned multi-rate streaming codec for edge devices."""

__version__ = "0.1.0"
