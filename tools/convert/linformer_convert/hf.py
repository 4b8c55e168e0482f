"""hf: not converted yet."""
from .errors import ConvertError


def detect(state):
    return False


def convert(path, opts):
    raise ConvertError(f"{path}: the hf converter is not written yet")
