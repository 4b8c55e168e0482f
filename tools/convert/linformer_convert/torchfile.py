"""Reading other frameworks' checkpoints: torch `.pt` / `pytorch_model.bin` files and state dicts.

fairseq checkpoints pickle their config as an omegaconf DictConfig (and other fairseq classes);
those packages are not installed here, so unknown classes are unpickled as inert stand-ins
(`_Stub`) that only keep their state. Tensors load as usual. `plain()` turns a stand-in DictConfig
back into dicts as well as it can; converters use what they find and ask for options otherwise.
"""
import pickle
import types

import numpy as np

from .errors import ConvertError


class _Stub:
    """An object of a class that is not installed: keeps its constructor arguments and state."""

    def __init__(self, *args, **kwargs):
        self._stub_args = args
        self._stub_state = kwargs or None

    def __setstate__(self, state):
        self._stub_state = state

    def __call__(self, *args, **kwargs):  # some pickles call a reconstructed class/function
        return _Stub(*args, **kwargs)


class _TolerantUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return type(name, (_Stub,), {"__module__": module})


# torch.load wants a pickle module: pickle itself with this Unpickler and load.
_tolerant_pickle = types.ModuleType("linformer_convert_pickle")
_tolerant_pickle.__dict__.update({k: v for k, v in pickle.__dict__.items() if not k.startswith("__")})
_tolerant_pickle.Unpickler = _TolerantUnpickler
_tolerant_pickle.load = lambda f, **kw: _TolerantUnpickler(f, **kw).load()


def load_torch(path):
    """torch.load onto the CPU, unknown classes tolerated. ConvertError naming the file otherwise."""
    import torch  # only here: the safetensors path needs no torch

    # Debian's torch 1.13 ignores the pickle_module argument (torch.load sets it to the module's
    # global `pickle` whenever weights_only is off), so the global is swapped for the call too.
    import torch.serialization as ser

    saved = ser.pickle
    ser.pickle = _tolerant_pickle
    try:
        return torch.load(path, map_location="cpu", pickle_module=_tolerant_pickle)
    except FileNotFoundError:
        raise ConvertError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConvertError(f"{path}: is a folder, not a checkpoint file") from None
    except Exception as e:  # corrupt zip, truncated pickle, not a torch file at all
        raise ConvertError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from None
    finally:
        ser.pickle = saved


def plain(obj, depth=0):
    """Dicts, lists and scalars from a checkpoint's config object (argparse.Namespace, dict, or an
    omegaconf DictConfig unpickled as a stand-in). Unknown things become None."""
    if depth > 20:
        return None
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, dict):
        return {str(k): plain(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v, depth + 1) for v in obj]
    if hasattr(obj, "__dict__") and not isinstance(obj, _Stub):  # argparse.Namespace and the like
        return {k: plain(v, depth + 1) for k, v in vars(obj).items()}
    if isinstance(obj, _Stub):
        state = obj._stub_state
        if isinstance(state, dict):
            if "_content" in state:  # omegaconf containers keep their children here
                return plain(state["_content"], depth + 1)
            if "_val" in state:  # omegaconf value nodes
                return plain(state["_val"], depth + 1)
            return plain(state, depth + 1)
    return None


def to_numpy(value, key, where):
    """A tensor of a state dict as a float32 array; ConvertError naming the key otherwise."""
    try:
        import torch

        if isinstance(value, torch.Tensor):
            if not value.is_floating_point():
                raise ConvertError(f"{where}: {key}: expected a floating-point tensor, found {value.dtype}")
            return value.detach().to(torch.float32).cpu().numpy().copy()
    except ImportError:
        pass
    if isinstance(value, np.ndarray):
        if value.dtype.kind != "f":
            raise ConvertError(f"{where}: {key}: expected a floating-point tensor, found {value.dtype}")
        return value.astype(np.float32)
    raise ConvertError(f"{where}: {key}: not a tensor ({type(value).__name__})")


def find_state_dict(obj, where):
    """The state dict inside a loaded checkpoint: the object itself, or its 'model' /
    'state_dict' / 'module' entry."""
    import torch

    def is_sd(d):
        return isinstance(d, dict) and d and all(isinstance(v, torch.Tensor) for v in d.values())

    if is_sd(obj):
        return obj
    if isinstance(obj, dict):
        for key in ("model", "state_dict", "module", "model_state_dict"):
            if is_sd(obj.get(key)):
                return obj[key]
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict()
    keys = list(obj.keys())[:8] if isinstance(obj, dict) else type(obj).__name__
    raise ConvertError(f"{where}: unknown layout: no state dict of tensors found (top level: {keys})")
