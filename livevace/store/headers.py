"""Tensor names, shapes and dtypes of a checkpoint, read without loading its data.

`livevace models verify` must check a 11 GB text encoder in milliseconds, and must never
run code from a downloaded pickle. Two formats cover every file livevace uses:

- safetensors: an 8-byte length, a JSON header, then the data. The header gives every
  tensor; the data offsets must end exactly at the end of the file, so truncation shows.
- torch zip checkpoints (`torch.save` since PyTorch 1.6: .pt, .pth, .bin): a zip holding
  `data.pkl` (the structure) and one member per storage. The pickle is read with an
  unpickler that maps every global to an inert stand-in: tensors become `TensorInfo`,
  nothing is imported or executed. Nested dicts (`{"generator": {"model.blocks…": …}}`)
  are flattened with dots.
"""

from __future__ import annotations

import json
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Storage class names in torch pickles → (dtype name as safetensors spells it, bytes/element)
_STORAGE_DTYPES: dict[str, tuple[str, int]] = {
    "DoubleStorage": ("F64", 8), "FloatStorage": ("F32", 4), "HalfStorage": ("F16", 2),
    "BFloat16Storage": ("BF16", 2), "LongStorage": ("I64", 8), "IntStorage": ("I32", 4),
    "ShortStorage": ("I16", 2), "CharStorage": ("I8", 1), "ByteStorage": ("U8", 1),
    "BoolStorage": ("BOOL", 1), "Float8_e4m3fnStorage": ("F8_E4M3", 1),
    "Float8_e5m2Storage": ("F8_E5M2", 1), "ComplexFloatStorage": ("C64", 8),
}
# `torch.<dtype>` globals (named by `_rebuild_tensor_v3`, used for dtypes without a storage class)
_TORCH_DTYPES: dict[str, str] = {
    "float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64",
    "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL",
    "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2", "uint16": "U16", "uint32": "U32",
    "uint64": "U64", "complex64": "C64",
}
_SAFETENSORS_ITEMSIZE = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
    "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8, "C64": 8,
}
MAX_HEADER_BYTES = 100 * 2**20


class HeaderError(ValueError):
    """The file is not a readable checkpoint (the message says what is wrong)."""


@dataclass(frozen=True)
class TensorInfo:
    """What a checkpoint says about one tensor."""

    shape: tuple[int, ...]
    dtype: str
    """As safetensors names it: F32, BF16, F16, F8_E4M3, …"""


def read_tensors(path: Path) -> dict[str, TensorInfo]:
    """Every tensor in a safetensors file or a torch zip checkpoint, by (flattened) name."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    if zipfile.is_zipfile(path):
        return read_torch_zip(path)
    raise HeaderError(f"{path.name} is neither safetensors nor a torch zip checkpoint")


def read_safetensors(path: Path) -> dict[str, TensorInfo]:
    """The header of a safetensors file; HeaderError if it is cut short or malformed."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise HeaderError(f"{path.name} is too short to be safetensors ({size} bytes)")
        (n,) = struct.unpack("<Q", head)
        if n > min(MAX_HEADER_BYTES, size - 8):
            raise HeaderError(f"{path.name}: header length {n} does not fit the file")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HeaderError(f"{path.name}: unreadable safetensors header ({exc})") from None
    tensors: dict[str, TensorInfo] = {}
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            shape = tuple(int(d) for d in entry["shape"])
            start, stop = (int(o) for o in entry["data_offsets"])
            dtype = str(entry["dtype"])
        except (KeyError, TypeError, ValueError):
            raise HeaderError(f"{path.name}: malformed header entry {name!r}") from None
        count = 1
        for d in shape:
            count *= d
        itemsize = _SAFETENSORS_ITEMSIZE.get(dtype)
        if itemsize is not None and stop - start != count * itemsize:
            raise HeaderError(f"{path.name}: {name} {list(shape)} {dtype} does not match its "
                              f"{stop - start} data bytes")
        tensors[name] = TensorInfo(shape, dtype)
        end = max(end, stop)
    if 8 + n + end != size:
        raise HeaderError(f"{path.name} is {size} bytes but its header describes "
                          f"{8 + n + end}: the file is truncated or damaged (download it again)")
    return tensors


def read_torch_zip(path: Path) -> dict[str, TensorInfo]:
    """Tensors of a `torch.save` zip checkpoint, from its pickle alone."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise HeaderError(f"{path.name}: damaged checkpoint ({exc}); download it again") from None
    with archive:
        members = {info.filename: info for info in archive.infolist()}
        pkl = [name for name in members if name.endswith("/data.pkl") or name == "data.pkl"]
        if not pkl:
            raise HeaderError(f"{path.name} is a zip but not a torch checkpoint (no data.pkl)")
        prefix = pkl[0][: -len("data.pkl")]
        unpickler = _ShapeUnpickler(archive.open(pkl[0]))
        try:
            root = unpickler.load()
        except Exception as exc:  # a malformed pickle can fail in many ways; say which file
            raise HeaderError(f"{path.name}: unreadable checkpoint structure ({exc})") from None
        for key, (nbytes, _) in unpickler.storages.items():
            info = members.get(f"{prefix}data/{key}")
            if info is None or info.file_size < nbytes:
                raise HeaderError(f"{path.name}: storage {key} is missing or short; "
                                  "download it again")
    tensors: dict[str, TensorInfo] = {}
    _flatten(root, "", tensors)
    return tensors


def _flatten(obj: Any, prefix: str, out: dict[str, TensorInfo]) -> None:
    if isinstance(obj, TensorInfo):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            _flatten(value, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _flatten(value, f"{prefix}.{i}" if prefix else str(i), out)


@dataclass(frozen=True)
class _DType:
    name: str


@dataclass(frozen=True)
class _Storage:
    key: str
    dtype: str
    itemsize: int


class _Inert:
    """Stand-in for any class or function a pickle names: accepts anything, does nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _rebuild_tensor(storage: Any, offset: int, size: tuple[int, ...], *rest: Any) -> Any:
    if not isinstance(storage, _Storage):
        return _Inert()
    return TensorInfo(tuple(int(d) for d in size), storage.dtype)


def _rebuild_tensor_v3(storage: Any, offset: int, size: tuple[int, ...], stride: Any,
                       requires_grad: Any, hooks: Any, dtype: Any, *rest: Any) -> Any:
    """Newer layout for dtypes without a storage class: an untyped storage plus a dtype."""
    if not isinstance(storage, _Storage) or not isinstance(dtype, _DType):
        return _Inert()
    return TensorInfo(tuple(int(d) for d in size), dtype.name)


def _first_arg(data: Any, *rest: Any) -> Any:
    """`_rebuild_parameter(data, requires_grad, hooks)`: a Parameter is its tensor."""
    return data


def _rebuild_from_type(func: Any, new_type: Any, args: tuple, state: Any) -> Any:
    """`_rebuild_from_type_v2`: tensor subclasses; the wrapped rebuild gives the shape."""
    return func(*args) if callable(func) else _Inert()


_KNOWN_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): dict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _first_arg,
    ("torch._utils", "_rebuild_parameter_with_state"): _first_arg,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
}


class _ShapeUnpickler(pickle.Unpickler):
    """Resolves globals to stand-ins and storages to their dtype and size; imports nothing."""

    def __init__(self, file: Any) -> None:
        super().__init__(file)
        self.storages: dict[str, tuple[int, str]] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in _STORAGE_DTYPES:
            return ("storage-type", name)
        if module == "torch" and name in _TORCH_DTYPES:
            return _DType(_TORCH_DTYPES[name])
        return _KNOWN_GLOBALS.get((module, name), _Inert)

    def persistent_load(self, pid: Any) -> Any:
        # ('storage', storage_type, key, location, numel)
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            return _Inert()
        storage_type, key, numel = pid[1], str(pid[2]), int(pid[4])
        if isinstance(storage_type, tuple) and storage_type[0] == "storage-type":
            dtype, itemsize = _STORAGE_DTYPES[storage_type[1]]
        else:  # an untyped storage: numel counts bytes
            dtype, itemsize = "U8", 1
        self.storages[key] = (numel * itemsize, dtype)
        return _Storage(key, dtype, itemsize)
