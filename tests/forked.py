"""Processes of their own for the tests, without paying ``import torch`` in each.

Some tests need a separate process: one that is SIGKILLed at a random moment, several running
at once, or a first use that must not find this process's caches. ``python -c`` pays for
importing torch and the package every time (about 3 s on a 2-core machine). Here each child is
forked by multiprocessing's fork server, which imported those modules once (``PRELOAD``) and ran
nothing else: a child is still a process of its own (its pid, memory and open files; a SIGKILL
ends it alone), it starts with none of the test process's state, and it reads the environment
it is given, as a fresh interpreter would (the package reads its variables when it uses them).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from pathlib import Path

#: What the fork server imports once: the package's command line, training and mini set, the
#: tests' helpers, and torchvision's weights API (the offline first-use test patches it).
PRELOAD = [
    "torch",
    "torchvision.models._api",
    "lpips_core.cli",
    "lpips_core.train",
    "lpips_core.studies.mini_bapps",
    "train_helpers",
]

_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(PRELOAD)


def _child(code: str | None, argv: list[str], env: dict[str, str], out: str, err: str, cwd: str | None) -> None:
    """Runs in the forked child: ``python -c code argv...``, or ``lpips-core argv...`` without code."""
    if cwd is not None:
        os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, out), (2, err)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    if code is None:
        from lpips_core.cli import main

        sys.argv = ["lpips-core", *argv]
        sys.exit(main(argv))
    sys.argv = ["-c", *argv]
    exec(compile(code, "<string>", "exec"), {"__name__": "__main__"})


class ForkedProcess:
    """A child running ``code`` like ``python -c code *argv`` (or ``lpips-core *argv`` when ``code``
    is None) with environment ``env``, in folder ``cwd`` (None: this process's); what it prints
    goes to ``<log>.out`` and ``<log>.err``.

    The part of :class:`subprocess.Popen` that the tests use: ``pid``, ``poll()``, ``wait()``,
    ``returncode`` (negative: the signal that ended it) and ``communicate()``.
    """

    def __init__(self, code: str | None, *argv: str, env: dict[str, str], log: Path, cwd: Path | None = None):
        self.out, self.err = Path(f"{log}.out"), Path(f"{log}.err")
        args = (code, list(argv), dict(env), str(self.out), str(self.err), None if cwd is None else str(cwd))
        self._process = _CONTEXT.Process(target=_child, args=args)
        self._process.start()
        self.pid = self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int | None:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise TimeoutError(f"process {self.pid} still running after {timeout} s")
        return self._process.exitcode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Waits for the end; returns (stdout, stderr)."""
        self.wait(timeout)
        return self.stdout(), self.stderr()

    def stdout(self) -> str:
        return self.out.read_text() if self.out.exists() else ""

    def stderr(self) -> str:
        return self.err.read_text() if self.err.exists() else ""

    def wait_for_output(self, text: str, timeout: float) -> None:
        """Until ``text`` is in its stdout (or it ended)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in self.stdout() or self.poll() is not None:
                return
            time.sleep(0.005)
        raise AssertionError(f"the child process did not print {text!r} within {timeout} s")

    def kill(self) -> None:
        self._process.kill()


def run(
    code: str | None, *argv: str, env: dict[str, str], log: Path, cwd: Path | None = None, timeout: float = 300
) -> tuple[int, str, str]:
    """Like ``subprocess.run([python, "-c", code, *argv])``: (returncode, stdout, stderr)."""
    child = ForkedProcess(code, *argv, env=env, log=log, cwd=cwd)
    stdout, stderr = child.communicate(timeout)
    return child.returncode, stdout, stderr
