"""Bad input gives a Python exception of the package naming the argument or file, never a crash:
wrong dtypes and shapes of arrays, ids outside the vocabulary or int32, sequences beyond max_len,
malformed masks, missing and corrupt files; and the exception classes' hierarchy."""

import numpy as np
import pytest

import linformer


@pytest.fixture(scope="module")
def model(tiny_model_file):
    return linformer.load(str(tiny_model_file))


def test_exception_hierarchy():
    for cls in (linformer.ConfigError, linformer.IoError, linformer.InputError):
        assert issubclass(cls, linformer.Error)
    assert issubclass(linformer.Error, Exception)
    assert issubclass(linformer.InputError, ValueError) and issubclass(linformer.ConfigError, ValueError)
    assert issubclass(linformer.IoError, OSError)
    assert linformer.InputError.__module__ == "linformer" and linformer.InputError.__doc__


@pytest.mark.parametrize("ids, needles", [
    (np.zeros((2, 3), dtype=np.float32), ["ids", "float32", "integer"]),
    (np.zeros((2, 3), dtype=bool), ["ids", "bool"]),
    (np.array(["1", "2"]), ["ids", "integer"]),
    (np.zeros((6,), dtype=np.int32), ["ids", "1-D", "2-D"]),
    (np.zeros((1, 2, 3), dtype=np.int32), ["ids", "3-D"]),
    ([[1, 2.5, 3]], ["ids[0][1]", "2.5", "float"]),
    ([[1, "2"]], ["ids[0][1]", "str"]),
    ([[1, None]], ["ids[0][1]", "NoneType"]),
    ([[1, 2], 3], ["ids[1]", "int"]),
    ("1 2 3", ["ids", "str"]),
    (12, ["ids", "int"]),
    ([[1, 2**40]], ["ids[0][1]", "32-bit"]),
    (np.array([[1, 2**40]], dtype=np.int64), ["ids[0][1]", "32-bit"]),
    (np.array([[1, 2**63]], dtype=np.uint64), ["ids", "32-bit"]),
    ([[1, 50]], ["input 0", "token id 50", "[0, 50)"]),
    ([[1, 2], [3, -1]], ["input 1", "token id -1"]),
    ([[1, 2], []], ["input 1", "empty"]),
    ([], ["no inputs"]),
    ([[1] + [5] * 20 + [2]], ["input 0", "22 ids", "max_len 16"]),
])
def test_bad_ids(model, ids, needles):
    with pytest.raises(linformer.InputError) as e:
        model.forward(ids)
    for n in needles:
        assert n in str(e.value), (n, str(e.value))


@pytest.mark.parametrize("mask, needles", [
    ([[1, 1, 0]], ["mask", "1 rows", "2"]),
    ([[1, 1, 0], [1, 1]], ["mask[1]", "2 values", "ids[1] has 3"]),
    ([[1, 0, 1], [1, 1, 1]], ["mask[0][2]", "padding"]),
    ([[1, 2, 0], [1, 1, 1]], ["mask[0][1]"]),
    (np.ones((2, 3), dtype=np.float64), ["mask", "float64"]),
    ([[0, 0, 0], [1, 1, 1]], ["input 0", "empty"]),
])
def test_bad_masks(model, mask, needles):
    with pytest.raises(linformer.InputError) as e:
        model.forward([[1, 5, 2], [1, 6, 2]], mask=mask)
    for n in needles:
        assert n in str(e.value), (n, str(e.value))


def test_bad_texts(pretrain_run):
    m = linformer.load(str(pretrain_run))
    with pytest.raises(linformer.InputError, match="texts: a str"):
        m.embed("one text, not a list")
    with pytest.raises(linformer.InputError, match=r"texts\[1\]: a int"):
        m.embed(["a text", 5])
    with pytest.raises(linformer.InputError, match="max_len"):
        m.embed(["the cat sees the bird . " * 20])
    assert m.embed(["the cat sees the bird . " * 20], truncate=True).shape == (1, 32)
    with pytest.raises(linformer.ConfigError, match="classification head"):
        m.classify(["the cat"])


def test_missing_and_corrupt_files(tmp_path, tiny_model_file, model):
    missing = tmp_path / "missing.safetensors"
    with pytest.raises(linformer.IoError, match="missing.safetensors"):
        linformer.load(str(missing))
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(linformer.IoError, match="corrupt.safetensors"):
        linformer.load(str(corrupt))
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(tiny_model_file.read_bytes()[:-100])
    with pytest.raises(linformer.IoError, match="cut.safetensors"):
        linformer.load(str(cut))
    empty_dir = tmp_path / "empty_run"
    empty_dir.mkdir()
    with pytest.raises(linformer.IoError, match="empty_run"):
        linformer.load(str(empty_dir))
    with pytest.raises(linformer.IoError, match="no_such_dir"):
        model.save(str(tmp_path / "no_such_dir" / "m.safetensors"))
    with pytest.raises(linformer.IoError, match="nothing.model"):
        linformer.load(str(tiny_model_file), tokenizer=str(tmp_path / "nothing.model"))
    # The model still works after all of that.
    assert model.forward([[1, 2]])[0].shape == (1, 2, 32)


def test_bad_options(tiny_model_file):
    with pytest.raises(linformer.ConfigError, match="max_workers"):
        linformer.load(str(tiny_model_file), max_workers=-1)
    with pytest.raises(linformer.ConfigError, match="labels"):
        linformer.load(str(tiny_model_file), labels=["a", "b"])
    with pytest.raises(TypeError):
        linformer.load(str(tiny_model_file), no_such_option=1)
