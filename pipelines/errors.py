"""The user-error convention of the command line (shared by every command).

A mistake the user can fix (unknown region, bad input file, unwritable output,
missing assets offline, no face in a photo, ...) prints one line
``error: <what went wrong and what to do>`` on stderr and exits with status 2,
without a traceback. Such errors are instances of :class:`UserError` or of a class
listed in :data:`USER_ERROR_TYPES`. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

import typer

USER_ERROR_EXIT = 2


class UserError(Exception):
    """A mistake the user can fix; the CLI prints ``error: <message>`` and exits 2."""


#: ``(module, class name)`` of library errors that mean "the user can fix this".
#: Looked up in ``sys.modules`` only when an error happens, so listing a module
#: here never imports it (an error cannot come from a module that was never imported).
USER_ERROR_TYPES: tuple[tuple[str, str], ...] = (
    ("facecast.recon.model.topology", "RegionError"),
    ("facecast.weights.registry", "AssetError"),
    ("facecast.pipelines.export", "ExportError"),
    ("facecast.pipelines.export.avatar", "IdentityError"),
    ("facecast.pipelines.media", "MediaError"),
    ("facecast.recon.landmarks.detector", "NoFaceError"),
    ("facecast.recon.landmarks.detector", "FaceIndexError"),
    ("facecast.recon.learn.train_config", "TrainConfigError"),
    ("facecast.recon.learn.regressor", "WeightsError"),
    ("facecast.pipelines.live.sources", "SourceError"),
    ("facecast.pipelines.live.profile", "ProfileError"),
    ("facecast.pipelines.live.frame", "SenderError"),
)


def is_user_error(exc: BaseException) -> bool:
    """True for :class:`UserError` and the classes in :data:`USER_ERROR_TYPES`."""
    if isinstance(exc, UserError):
        return True
    for module, name in USER_ERROR_TYPES:
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return True
    return False


def exception_chain(exc: BaseException | None, limit: int = 20) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling (``__cause__``, else ``__context__``)."""
    chain: list[BaseException] = []
    while exc is not None and len(chain) < limit:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def is_no_space(exc: BaseException | None) -> bool:
    """True when ``exc`` or an exception in its chain is "no space left on the device" (ENOSPC, or a quota)."""
    import errno

    return any(isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT) for e in exception_chain(exc))


def report_user_error(exc: BaseException) -> None:
    """Print ``error: <message>`` as one line on stderr."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    typer.echo(f"error: {message}", err=True)


F = TypeVar("F", bound=Callable[..., object])


def user_errors(command: F) -> F:
    """Decorator for commands: user errors become one stderr line and exit status 2."""

    @functools.wraps(command)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return command(*args, **kwargs)
        except Exception as exc:
            if not is_user_error(exc):
                raise
            report_user_error(exc)
            raise typer.Exit(USER_ERROR_EXIT) from None

    return wrapper  # type: ignore[return-value]


