"""A redis-server of a test's own, for the tests of Redis-backed features
(the rate limiter's store, the chat backplane).  Standard library only.

    from redis import REDIS, Redis

    REDIS                 the redis-server binary, or None (the test skips)
    rd = Redis()          started on a free 127.0.0.1 port, no persistence,
                          its own directory; rd.port
    rd.proc               the process (SIGSTOP it to make Redis stall)
    rd.kill(); rd.start() an outage, then Redis back on the same port
    rd.cleanup()          stopped, its directory removed
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile

from portico import free_port, wait_for

__all__ = ["REDIS", "Redis"]

REDIS = shutil.which("redis-server") or ("/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server")
                                         else None)


class Redis:
    """A redis-server of the test's own on a free port, without persistence."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="portico-redis-")
        self.port = free_port()
        self.proc = None
        self.log = None
        self.start()

    def start(self):
        self.log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen([REDIS, "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--dir", self.dir],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        if not wait_for(self.ping, 10):
            raise RuntimeError("redis-server did not answer on port %d" % self.port)

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a stopped one dies too
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None
        if self.log is not None:
            self.log.close()
            self.log = None

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
