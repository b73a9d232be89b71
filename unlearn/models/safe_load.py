"""Loading torch files without running code, and saying so plainly when one is refused.

``torch.load(weights_only=True)`` refuses a pickle that holds anything but tensors, numbers,
strings and plain containers, because unpickling other objects can run code written into the
file. torch's own message then suggests ``weights_only=False``: that advice is never passed on.
The user is told the file was refused and what to do instead (delete or regenerate that file).
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

from unlearn.errors import UnlearnError

# torch's message when a weights-only load meets an object it will not build.
REFUSAL_MARKER = "Weights only load failed"


class UnsafeFileError(UnlearnError, pickle.UnpicklingError):
    """A pickle (checkpoint, ``pytorch_model.bin``) that holds objects a safe load refuses to build."""


def is_refused_pickle(err: BaseException | None) -> bool:
    """Whether ``err`` (or an error it was raised from) is torch refusing a weights-only load."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        # torch says "Weights only load failed" for any failed load; only "Unsupported global" means it
        # met an object it refused (garbage bytes give "Unsupported operand": a damaged file, not a pickle).
        if isinstance(err, UnsafeFileError) or (REFUSAL_MARKER in str(err) and "Unsupported global" in str(err)):
            return True
        err = err.__cause__ or err.__context__
    return False


def _refused_objects(err: BaseException | None) -> list[str]:
    """The names torch gives for the objects it refused (``pathlib.Path.touch``), without its advice."""
    names: list[str] = []
    while err is not None and len(names) < 3:
        for name in re.findall(r"Unsupported global[^:]*: (?:GLOBAL )?([\w.<>]+)", str(err)):
            if name not in names:
                names.append(name)
        err = err.__cause__ or err.__context__
    return names


def refusal(path: str | Path, err: BaseException | None, remedy: str) -> UnsafeFileError:
    """The error for a refused file: what it holds, that it was refused, and ``remedy`` (delete/regenerate it)."""
    names = _refused_objects(err)
    what = f" ({', '.join(names)})" if names else ""
    return UnsafeFileError(f"{path} holds Python objects{what} that cannot be loaded safely, so it was refused: "
                           f"loading them could run code written into the file. {remedy}")


def torch_load(path: str | Path, remedy: str, **kwargs):
    """``torch.load(path, weights_only=True, **kwargs)``; a refused file raises :class:`UnsafeFileError`.

    Raises:
        UnsafeFileError: the file holds objects a weights-only load refuses (torch's advice is dropped).
    """
    import torch

    try:
        return torch.load(path, weights_only=True, **kwargs)
    except pickle.UnpicklingError as err:
        if not is_refused_pickle(err):
            raise
        raise refusal(path, err, remedy) from None
