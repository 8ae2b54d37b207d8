"""Keeping what C++ libraries print at start-up (TensorFlow, TensorFlow Lite) off the terminal, unless they fail,
in this process and in the processes it starts (Beam's workers)."""

from __future__ import annotations

import contextlib
import faulthandler
import os
import re
import sys
import tempfile
import threading
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


# What TensorFlow's C++ core prints as a process starts, before its log settings apply: absl's preamble, info and
# warning lines ("I0000 00:00:1796106908.276636 6115 port.cc:153] oneDNN ..."), the second line of the CPU
# instructions notice, and cuInit's error on a machine without CUDA (errors other than cuInit's are never noise);
# and what Beam logs as it starts, in its default format and in `emopy build`'s: that Google Cloud's optional
# clients are missing, and (in each worker) its log handler.
START_UP_NOISE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] "
    rb"|E\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] failed call to cuInit"
    rb"|To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\."
    rb"|WARNING[: ]root: ?apitools not found, and bigquery client libraries are not available"
    rb"|INFO:__main__:Logging handler created\.)")
_NOISE_OPENINGS = (b"WARNING: All log messages before absl::", b"To enable the following instructions:",
                   b"WARNING:root:apitools not found", b"WARNING root: apitools not found",
                   b"INFO:__main__:Logging handler created.")
_SEGMENT_ENDS = re.compile(rb"(?<=[\r\n])")


def _may_become_noise(partial: bytes) -> bool:
    # A line not yet ended that could still turn out to be noise waits for its end; anything else goes on at once
    # (progress bars redraw their line with \r and never end it).
    if START_UP_NOISE.match(partial) or re.fullmatch(rb"[IWE]\d{0,4}( [\d:. ]*)?", partial[:24]):
        return True
    return any(opening.startswith(partial[:len(opening)]) for opening in _NOISE_OPENINGS)


def _forward(source: int, terminal: int) -> None:
    """Copies `source` to `terminal` segment by segment (up to each \\r or \\n), leaving out START_UP_NOISE."""
    pending = b""
    with os.fdopen(source, "rb", buffering=0) as reader:
        while chunk := reader.read(65536):
            *segments, pending = _SEGMENT_ENDS.split(pending + chunk)
            kept = b"".join(segment for segment in segments if not START_UP_NOISE.match(segment))
            if pending and not _may_become_noise(pending):
                kept, pending = kept + pending, b""
            if kept:
                os.write(terminal, kept)
    if pending and not START_UP_NOISE.match(pending):
        os.write(terminal, pending)
    os.close(terminal)


@contextlib.contextmanager
def start_up_lines_filtered() -> Iterator[None]:
    """Routes file descriptor 2 of this process, and of the processes it starts in the block (Beam's workers),
    through a thread that leaves out TensorFlow's C++ start-up lines (START_UP_NOISE) and passes everything else
    on as it comes: errors, tracebacks, warnings, progress bars."""
    sys.stderr.flush()
    saved = os.dup(2)
    source, sink = os.pipe()
    forwarder = threading.Thread(target=_forward, args=(source, os.dup(saved)), name="emopy-stderr", daemon=True)
    forwarder.start()
    os.dup2(sink, 2)
    os.close(sink)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe ends once the processes started in the block have let go of it too
        os.close(saved)
        forwarder.join(timeout=10)
