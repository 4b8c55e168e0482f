"""A small safetensors reader and writer (struct + json + numpy; Debian has no safetensors package).

The reader takes what Hugging Face writes (F64, F32, F16, BF16 and the integer types) and checks
the header against the file size before slicing anything; the writer produces exactly the layout
of docs/format.md (header padded with spaces to a multiple of 8, `__metadata__` first, tensors
back to back in the given order) and writes atomically (temporary file, fsync, rename).
"""
import json
import os
import struct

import numpy as np

from .errors import ConvertError

_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # widened to float32 below
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_MAX_HEADER = 100 * 1000 * 1000


def read(path):
    """Returns (tensors: dict name -> np.ndarray, metadata: dict). Floating tensors come back as
    float32 (BF16 and F16 widened exactly), integer ones as they are stored."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConvertError(f"{path}: cannot read: {e.strerror}") from None
    if len(raw) < 8:
        raise ConvertError(f"{path}: not a safetensors file (only {len(raw)} bytes)")
    (hlen,) = struct.unpack("<Q", raw[:8])
    if hlen > _MAX_HEADER or 8 + hlen > len(raw):
        raise ConvertError(f"{path}: not a safetensors file (header length {hlen} for a file of {len(raw)} bytes)")
    try:
        header = json.loads(raw[8:8 + hlen].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConvertError(f"{path}: safetensors header is not valid JSON: {e}") from None
    if not isinstance(header, dict):
        raise ConvertError(f"{path}: safetensors header is not a JSON object")
    data = memoryview(raw)[8 + hlen:]
    meta = header.pop("__metadata__", None) or {}
    tensors = {}
    for name, info in header.items():
        try:
            dtype_name = info["dtype"]
            shape = tuple(int(s) for s in info["shape"])
            begin, end = (int(x) for x in info["data_offsets"])
        except (TypeError, KeyError, ValueError):
            raise ConvertError(f"{path}: tensor {name}: malformed header entry {info!r}") from None
        dt = _DTYPES.get(dtype_name)
        if dt is None:
            raise ConvertError(f"{path}: tensor {name}: unsupported dtype {dtype_name}")
        if any(s < 0 for s in shape):
            raise ConvertError(f"{path}: tensor {name}: negative dimension in {list(shape)}")
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if begin < 0 or end < begin or end > len(data) or end - begin != count * dt.itemsize:
            raise ConvertError(f"{path}: tensor {name}: data_offsets [{begin}, {end}] do not fit shape "
                               f"{list(shape)} {dtype_name} in a data section of {len(data)} bytes")
        arr = np.frombuffer(data[begin:end], dtype=dt).reshape(shape)
        if dtype_name == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        elif dt.kind == "f":
            arr = arr.astype(np.float32)
        else:
            arr = arr.copy()
        tensors[name] = arr
    return tensors, meta


def write(path, tensors, metadata=None):
    """Writes name -> float32/int32 array in the given order, atomically."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        if arr.dtype == np.float32:
            dtype = "F32"
        elif arr.dtype == np.int32:
            dtype = "I32"
        else:
            raise ConvertError(f"{path}: tensor {name}: dtype {arr.dtype} cannot be written (F32 or I32 only)")
        blob = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * (-len(head) % 8)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(head)))
            f.write(head)
            for blob in blobs:
                f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise ConvertError(f"{path}: cannot write: {e.strerror}") from None


def write_bytes_atomic(path, data):
    """Any file (a tokenizer model), written like the model files: temporary file, fsync, rename."""
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise ConvertError(f"{path}: cannot write: {e.strerror}") from None
