"""Type stubs of linformer._core, the compiled part of the package (docs/python.md)."""

from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

__version__: str

PAD_ID: int
BOS_ID: int
EOS_ID: int
UNK_ID: int
MASK_ID: int

Ids = Union[Sequence[Sequence[int]], npt.NDArray[np.integer]]
Mask = Union[Sequence[Sequence[int]], npt.NDArray[Any]]
TextsOrIds = Union[Sequence[str], Ids]

class Error(Exception):
    """Base class of every error the linformer library raises."""

class ConfigError(Error, ValueError):
    """A configuration value or option is invalid, or the model cannot answer the request."""

class IoError(Error, OSError):
    """A file could not be read or written, or its content is malformed (names the file)."""

class InputError(Error, ValueError):
    """Input data is inconsistent with the model (names the argument)."""

def set_num_threads(n: int) -> None:
    """Sets the number of OpenMP threads every later call (from any Python thread) computes with."""

def get_num_threads() -> int:
    """The number of OpenMP threads a call made now would use."""

def set_precision(precision: str) -> None:
    """Sets the default matrix-product precision: 'float32' or 'bf16' (ConfigError without AVX512_BF16)."""

def get_precision() -> str:
    """The default matrix-product precision: 'float32' or 'bf16'."""

def bf16_supported() -> bool:
    """Whether this CPU has native bf16 instructions (AVX512_BF16)."""

class Model:
    """A Linformer (or Transformer) encoder ready for inference; thread-safe, GIL released."""

    @property
    def config(self) -> dict[str, Any]:
        """The model config as a dict (the fields of config.json)."""
    @property
    def info(self) -> dict[str, Any]:
        """What was loaded: config, source, model_file, run_dir, labels, task_name, tokenizer, ..."""
    @property
    def labels(self) -> list[str]:
        """Class names of the classification head; empty without one."""
    @property
    def vocab_size(self) -> int:
        """Vocabulary size."""
    @property
    def max_len(self) -> int:
        """The longest sequence the model accepts."""
    @property
    def d_model(self) -> int:
        """Width of the hidden states."""
    @property
    def has_tokenizer(self) -> bool:
        """Whether the model reads texts."""
    @property
    def has_classifier(self) -> bool:
        """Whether the model has a classification head."""
    @property
    def precision(self) -> Optional[str]:
        """'float32', 'bf16' or None (the process default)."""
    @precision.setter
    def precision(self, value: Optional[str]) -> None: ...
    def save(self, path: str) -> None:
        """Writes the weights and config to a model file (.safetensors)."""
    def tokenize(self, text: str) -> list[int]:
        """The tokenizer's ids of a text, without <s> and </s>."""
    def encode(self, text: str, *, truncate: bool = False) -> list[int]:
        """The model input of a text: <s> ids </s>."""
    def decode(self, ids: Sequence[int]) -> str:
        """The text of token ids."""
    def piece(self, id: int) -> str:
        """The token of one id."""
    def truncate(self, ids: Sequence[int]) -> list[int]:
        """A copy of ids cut to max_len."""
    def forward(
        self,
        ids: Ids,
        mask: Optional[Mask] = None,
        *,
        logits: bool = True,
        truncate: bool = False,
        precision: Optional[str] = None,
    ) -> tuple[npt.NDArray[np.float32], Optional[npt.NDArray[np.float32]]]:
        """(hidden [B, n, d_model], logits [B, n, vocab_size]) of one padded batch, as `linformer forward`."""
    def embed(
        self,
        texts: TextsOrIds,
        pooling: str = "mean",
        normalize: bool = False,
        *,
        truncate: bool = False,
        batch_size: int = 32,
        precision: Optional[str] = None,
    ) -> npt.NDArray[np.float32]:
        """One vector per input: [len(texts), d_model]."""
    def classify(
        self,
        texts: TextsOrIds,
        *,
        truncate: Optional[bool] = None,
        batch_size: int = 32,
        precision: Optional[str] = None,
    ) -> list[dict[str, Any]]:
        """[{'label', 'label_index', 'probs': {label: p}}] per input, as `linformer predict`."""
    def fill_mask(self, text: str, top_k: int = 5, *, precision: Optional[str] = None) -> list[list[dict[str, Any]]]:
        """Per <mask>: the top_k [{'token', 'id', 'prob'}], most probable first."""
    def attention_map(
        self, ids: Sequence[int], layer: int, *, truncate: bool = False, precision: Optional[str] = None
    ) -> npt.NDArray[np.float32]:
        """Attention probabilities of one layer: [heads, n, cols]."""
    def evaluate(
        self, task: str, split: str = "test", *, truncate: Optional[bool] = None, batch_size: int = 32
    ) -> dict[str, Any]:
        """Accuracy, loss, macro-F1, per-class metrics, confusion matrix on a task split."""
    def evaluate_mlm(
        self, tokens: str, seq_len: int = 0, batch_size: int = 16, max_batches: int = 0, seed: int = 1
    ) -> float:
        """Mean masked-LM loss over a token file."""

def load(
    path: str,
    *,
    tokenizer: Optional[str] = None,
    labels: Optional[Sequence[str]] = None,
    max_workers: int = 0,
    threads: int = 0,
    precision: Optional[str] = None,
) -> Model:
    """Loads a model file, a run folder or one of its checkpoint folders."""

def init(
    config: Mapping[str, Any],
    seed: int = 0,
    *,
    tokenizer: Optional[str] = None,
    labels: Optional[Sequence[str]] = None,
    max_workers: int = 0,
    threads: int = 0,
    precision: Optional[str] = None,
) -> Model:
    """A new model from a config dict, initialised from seed."""

class Tokenizer:
    """A SentencePiece (unigram) tokenizer with linformer's fixed special ids."""

    def __init__(self, path: str) -> None: ...
    @staticmethod
    def load(path: str) -> Tokenizer:
        """The same as Tokenizer(path)."""
    @staticmethod
    def train(inputs: Union[str, Sequence[str]], vocab_size: int, out: str, seed: int = 0) -> Tokenizer:
        """Trains a unigram model on text files, writes it to out and returns it."""
    def encode(self, text: str) -> list[int]:
        """The ids of a text (no <s> / </s>)."""
    def decode(self, ids: Sequence[int]) -> str:
        """The text of ids."""
    def piece(self, id: int) -> str:
        """The piece of one id."""
    def piece_to_id(self, piece: str) -> int:
        """The id of a piece."""
    @property
    def vocab_size(self) -> int:
        """Number of pieces, specials included."""
    def encode_corpus(self, inputs: Union[str, Sequence[str]], out: str) -> int:
        """Encodes text files into a token file for pretrain; returns the number of tokens."""

ProgressCallback = Callable[[dict[str, Any]], Optional[bool]]

def pretrain(
    options: Optional[Mapping[str, Any]] = None, *, callback: Optional[ProgressCallback] = None, **kwargs: Any
) -> dict[str, Any]:
    """Masked-language-model pretraining, as `linformer pretrain`; returns the summary and metrics."""

def finetune(
    options: Optional[Mapping[str, Any]] = None, *, callback: Optional[ProgressCallback] = None, **kwargs: Any
) -> dict[str, Any]:
    """Sequence-classification fine-tuning, as `linformer finetune`; returns the summary and metrics."""

class _TrainableModel:
    """A model in training form for linformer.torch (parameters as numpy views, encode, backward
    from a gradient of the hidden states). Not thread-safe: one forward, then its backward."""

    def __init__(self, config: Mapping[str, Any], seed: int = 0) -> None: ...
    @staticmethod
    def from_file(path: str) -> _TrainableModel:
        """The model of a model file."""
    @property
    def config(self) -> dict[str, Any]:
        """The config as a dict."""
    @property
    def forwards(self) -> int:
        """encode calls so far."""
    def param_names(self) -> list[str]:
        """The parameter names, in the order of the parameter table."""
    def trainable(self, name: str) -> bool:
        """Whether the parameter is trained."""
    def param(self, name: str) -> npt.NDArray[np.float32]:
        """A writable numpy view of the parameter's values."""
    def grad(self, name: str) -> npt.NDArray[np.float32]:
        """A numpy view of the parameter's gradient."""
    def zero_grad(self) -> None:
        """Sets every gradient to 0."""
    def train(self, mode: bool = True) -> None:
        """Training mode (dropout on) or not."""
    def set_dropout_seed(self, seed: int) -> None:
        """Seeds the dropout masks of the following forwards."""
    def encode(self, ids: Ids, mask: Optional[Mask] = None) -> npt.NDArray[np.float32]:
        """The hidden states [B, n, d_model] (a copy); keeps what backward needs."""
    def backward(self, dhidden: npt.NDArray[np.float32]) -> None:
        """Backpropagates a gradient of the last encode's hidden states (accumulating)."""
    def save(self, path: str) -> None:
        """Writes a model file."""
