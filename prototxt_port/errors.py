"""The one error type for bad Caffe input."""


class CaffeFormatError(ValueError):
    """A prototxt, caffemodel or blob that cannot be used; the message says which file, where,
    what is wrong and what to do. Raised before anything is written."""
