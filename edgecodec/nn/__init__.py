"""Neural networks of edgecodec: HQA layers and the stack. Knows nothing of sockets or bitstreams."""

from edgecodec.nn.layers import HQALayer, LayerConfig, VectorQuantizer
from edgecodec.nn.stack import (
    ARCHITECTURES,
    Encoded,
    HQAStack,
    ModelConfig,
    cpu_fast_config,
    default_config,
    tiny_config,
)

__all__ = [
    "ARCHITECTURES",
    "Encoded",
    "HQALayer",
    "HQAStack",
    "LayerConfig",
    "ModelConfig",
    "VectorQuantizer",
    "cpu_fast_config",
    "default_config",
    "tiny_config",
]
