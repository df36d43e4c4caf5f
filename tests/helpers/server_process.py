"""A hearth-server in a subprocess for the tests: started on a free port
(--port 0, the port read from its start-up line), stopped with Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Sequence


class ServerProcess:
    def __init__(self, args: Sequence[str], timeout: float = 60.0):
        env = dict(os.environ)
        self.proc = subprocess.Popen([sys.executable, "-m", "hearthlm.server", "--port", "0", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.startup_line = ""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.startup_line = line
            m = re.search(r"at http://([\d.]+):(\d+)", line)
            if m:
                self.url = f"http://{m.group(1)}:{m.group(2)}"
                self.log = []  # what it prints later, drained so that the pipe never fills
                threading.Thread(target=self._drain, daemon=True).start()
                return
        self.proc.kill()
        raise RuntimeError(f"hearth-server did not start: {self.startup_line!r} {self.proc.stdout.read()[-2000:]}")

    def _drain(self):
        for line in self.proc.stdout:
            self.log.append(line)

    @property
    def api(self) -> str:
        return self.url + "/v1"

    def stop(self) -> int:
        """Ctrl-C, as a user stops it; returns the exit code."""
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
