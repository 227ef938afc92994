"""The smallest client of the daemon's JSON API socket, shared by netbench.py and soak_api.py."""
import json
import socket


def api(sock_path, req, timeout=10.0):
    """One request per connection, as slirp4netns' API expects: send, shut down writing, read the
    reply until the daemon closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(sock_path)
        s.sendall(json.dumps(req, separators=(",", ":")).encode())
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data.decode())
