"""One bounded socket read into a buffer, shared by the test clients
(portico.Conn and ws.WSClient): obj has sock, buf, eof and reset."""

import socket
import time


def fill(obj, deadline, size=65536):
    """Reads more bytes into obj.buf.  False at EOF (or reset); raises
    socket.timeout after deadline."""
    if obj.eof:
        return False
    left = deadline - time.monotonic()
    if left <= 0:
        raise socket.timeout("timed out")
    obj.sock.settimeout(left)
    try:
        d = obj.sock.recv(size)
    except ConnectionResetError:
        obj.eof = obj.reset = True
        return False
    if not d:
        obj.eof = True
        return False
    obj.buf += d
    return True
