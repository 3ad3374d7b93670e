"""Error types raised by more than one package of tsn (each defined once, here)."""


class WeightsError(ValueError):
    """A weight file or its description is unusable: a bad manifest, a failed or refused fetch,
    a checksum mismatch, a port that does not fit, or initial weights that do not fit the model.
    The message names the file, the problem and the fix."""
