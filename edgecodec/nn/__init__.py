"""Neural networks of edgecodec: HQA layers and the stack. Knows nothing of sockets or bitstreams."""

from edgecodec.nn.layers import HQALayer, LayerConfig, VectorQuantizer
from edgecodec.nn.stack import Encoded, HQAStack, ModelConfig, default_config, tiny_config

__all__ = [
    "Encoded",
    "HQALayer",
    "HQAStack",
    "LayerConfig",
    "ModelConfig",
    "VectorQuantizer",
    "default_config",
    "tiny_config",
]
