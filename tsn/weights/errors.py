"""The one error type of tsn.weights: bad manifest, failed fetch, checksum mismatch, bad import."""


class WeightsError(RuntimeError):
    """A weight file or its description is unusable; the message names the file and the fix."""
