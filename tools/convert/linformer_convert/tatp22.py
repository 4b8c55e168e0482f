"""tatp22: not converted yet."""
from .errors import ConvertError


def detect(state):
    return False


def convert(path, opts):
    raise ConvertError(f"{path}: the tatp22 converter is not written yet")
