"""The one error type of the converter: its message names the file, key or option at fault."""


class ConvertError(Exception):
    """A checkpoint that cannot be converted (unknown layout, missing key, wrong shape, a part of
    the source architecture that our model cannot express). The command line prints the message
    and exits with status 1."""
