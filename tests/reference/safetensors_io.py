"""A tiny safetensors reader/writer (struct + json + numpy; no safetensors package).

Format: 8-byte little-endian u64 header length, a JSON header
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
then the raw little-endian tensor data (offsets relative to the end of the header).
"""
import json
import struct

import numpy as np

_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_NAMES = {v: k for k, v in _DTYPES.items()}


def load(path):
    """Returns (tensors: dict name -> np.ndarray, metadata: dict str -> str)."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (hlen,) = struct.unpack("<Q", raw[:8])
    if 8 + hlen > len(raw):
        raise ValueError(f"{path}: header length {hlen} exceeds the file")
    header = json.loads(raw[8:8 + hlen].decode("utf-8"))
    data = memoryview(raw)[8 + hlen:]
    meta = header.pop("__metadata__", {}) or {}
    tensors = {}
    end_max = 0
    for name, info in header.items():
        dt = _DTYPES.get(info["dtype"])
        if dt is None:
            raise ValueError(f"{path}: tensor {name}: unknown dtype {info['dtype']}")
        shape = tuple(int(s) for s in info["shape"])
        b, e = (int(x) for x in info["data_offsets"])
        numel = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if e - b != numel * dt.itemsize or b < 0 or e > len(data):
            raise ValueError(f"{path}: tensor {name}: bad data_offsets {b},{e} for shape {shape}")
        end_max = max(end_max, e)
        tensors[name] = np.frombuffer(data[b:e], dtype=dt).reshape(shape).copy()
    if end_max != len(data):
        raise ValueError(f"{path}: data ends at {end_max}, file data is {len(data)} bytes")
    return tensors, meta


def save(path, tensors, metadata=None):
    """Writes dict name -> array-like (numpy or torch) in insertion order."""
    header = {}
    blobs = []
    off = 0
    for name, arr in tensors.items():
        if hasattr(arr, "detach"):  # torch tensor
            arr = arr.detach().cpu().numpy()
        arr = np.ascontiguousarray(arr)
        dt = arr.dtype.newbyteorder("<") if arr.dtype.itemsize > 1 else arr.dtype
        if dt not in _NAMES:
            raise ValueError(f"tensor {name}: unsupported dtype {arr.dtype}")
        b = arr.astype(dt, copy=False).tobytes()
        header[name] = {"dtype": _NAMES[dt], "shape": list(arr.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)  # pad the header to 8 bytes, as the reference writer does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)
