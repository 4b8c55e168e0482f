"""A source checkpoint's tensors, taken key by key.

`take` names the key when it is missing or has the wrong shape; `finish` fails on every key no
converter rule consumed (a part of the source that would otherwise be silently dropped), except
those declared ignorable (buffers such as fairseq's `version`, Hugging Face's `position_ids`).
"""
import numpy as np

from .errors import ConvertError
from .torchfile import to_numpy


class Source:
    def __init__(self, tensors, where):
        self.raw = dict(tensors)
        self.where = where
        self.used = set()

    def has(self, key):
        return key in self.raw

    def keys(self):
        return list(self.raw.keys())

    def take(self, key, shape=None, what=None):
        """The tensor `key` as float32, checked against `shape` (ints, or None for any size)."""
        if key not in self.raw:
            hint = f" ({what})" if what else ""
            raise ConvertError(f"{self.where}: missing key {key}{hint}")
        arr = to_numpy(self.raw[key], key, self.where)
        if shape is not None:
            ok = len(arr.shape) == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape))
            if not ok:
                want = [("*" if s is None else s) for s in shape]
                raise ConvertError(f"{self.where}: {key} has shape {list(arr.shape)}, expected {want}")
        self.used.add(key)
        return arr

    def take_optional(self, key, shape=None):
        return self.take(key, shape) if key in self.raw else None

    def ignore(self, predicate):
        for key in self.raw:
            if predicate(key):
                self.used.add(key)

    def finish(self, explain=""):
        left = [k for k in self.raw if k not in self.used]
        if left:
            more = f" (and {len(left) - 10} more)" if len(left) > 10 else ""
            raise ConvertError(f"{self.where}: keys that do not map onto a linformer model: "
                               f"{', '.join(left[:10])}{more}{explain}")


def same(a, b):
    return a.shape == b.shape and np.array_equal(a, b)
