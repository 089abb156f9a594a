"""Typed exceptions. The CLI turns any :class:`EdgecodecError` into one line on stderr and a non-zero exit."""


class EdgecodecError(Exception):
    """Base class of every error edgecodec reports to a user."""


class ModelError(EdgecodecError):
    """A model file is missing, truncated, foreign or inconsistent."""


class ConfigError(EdgecodecError):
    """A configuration file or value is invalid; the message names the key."""


class SourceError(EdgecodecError):
    """A camera, video file or image folder cannot be opened or read."""


class BitstreamError(EdgecodecError):
    """Base class of every error raised while parsing packets or container files."""


class BadMagicError(BitstreamError):
    """The bytes do not start with the expected magic number."""


class UnsupportedVersionError(BitstreamError):
    """The format version is not one this build can read."""


class TruncatedError(BitstreamError):
    """The header or the payload is shorter than it claims to be."""


class ChecksumError(BitstreamError):
    """The CRC32 of the payload does not match the header."""


class UnknownModelError(BitstreamError):
    """The packet names a model fingerprint that this receiver does not hold."""


class LayerRangeError(BitstreamError):
    """The packet names a layer the model does not have."""


class SizeLimitError(BitstreamError):
    """A declared size is absurd; refused before anything is allocated."""


class DecodeBudgetError(SizeLimitError):
    """A packet asks for more than the decode budget (pixels, payload for its grid): refused from the header."""


class TrailingDataError(BitstreamError):
    """Bytes follow the last complete packet of a file."""


class MissingReferenceError(EdgecodecError):
    """A P-frame names a reference frame (session, sequence number, layer) that this decoder does not hold: it
    cannot be decoded until the next keyframe. Not a corrupt packet."""


class StreamRefusedError(EdgecodecError):
    """A packet the receiver will not show: from a superseded sender session, from a peer not allowed to publish that
    stream, or beyond --max-streams. Not a corrupt packet."""


class RivalSessionError(StreamRefusedError):
    """A second live sender session publishes under a stream name another one owns: the receiver keeps it apart as a
    stream of its own (``NAME~SESSION``), never merged with the first."""


class FrameSizeError(EdgecodecError):
    """A frame this build cannot encode (empty, or over the pixel limit): refused before encoding."""


class SinkError(EdgecodecError):
    """A display or recorder cannot be opened or written."""


class TransportError(EdgecodecError):
    """A socket could not be bound, connected or configured."""


class MissingDependencyError(ConfigError):
    """A Python package a feature needs is not installed; the message names the package and the install command."""


def require(module: str, purpose: str, *, package: str | None = None, extra: str | None = None):  # noqa: ANN201
    """Import ``module`` or raise :class:`MissingDependencyError` naming what to install.

    ``package`` is the name on PyPI (default: ``module``); ``extra`` the edgecodec extra that brings it, for optional
    pieces (``tensorrt``). Core dependencies name the package itself: a broken install, fixed by installing it.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        how = f"pip install 'edgecodec[{extra}]'" if extra else f"pip install {package or module}"
        raise MissingDependencyError(f"{purpose} needs the Python package {package or module} ({how})") from None
