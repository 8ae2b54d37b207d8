"""Keeping what C++ libraries print at start-up (TensorFlow, TensorFlow Lite) off the terminal, unless they fail."""

from __future__ import annotations

import contextlib
import faulthandler
import os
import sys
import tempfile
from typing import Iterator


@contextlib.contextmanager
def stderr_held_back() -> Iterator[None]:
    """Sends file descriptor 2 to a temporary file for the block, since C++ libraries write there directly,
    below sys.stderr. If the block raises, what was held back is written to stderr before the error goes on,
    so a failure still shows everything that led to it."""
    sys.stderr.flush()
    terminal = os.dup(2)
    # A crash inside C++ runs no Python code afterwards: faulthandler at least puts its stack on the terminal
    # (unless it is already on, writing where its owner chose).
    own_faulthandler = not faulthandler.is_enabled()
    if own_faulthandler:
        faulthandler.enable(file=terminal)
    failed = False
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(terminal, 2)
            if own_faulthandler:
                faulthandler.disable()
            os.close(terminal)
            if failed:
                held.seek(0)
                sys.stderr.write(held.read().decode(errors="replace"))
                sys.stderr.flush()
