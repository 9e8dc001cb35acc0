#!/usr/bin/env python3
"""Server memory per idle WebSocket: starts `replayrail serve` (memory store), opens N plain
/ws/{channel} subscriptions over 100 channels that never see an event, and prints the RSS growth
per connection. Usage: idle_websockets.py SERVER_BINARY [N]   (target: <= 16 KiB each)"""
import base64, os, resource, socket, subprocess, sys, time

binary, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10000
resource.setrlimit(resource.RLIMIT_NOFILE, (n + 1000, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
server = subprocess.Popen([binary, "serve", "--store", "memory", "--listen", f"127.0.0.1:{port}"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
server.stdout.readline()  # "serving on …"

def rss_kib():
    with open(f"/proc/{server.pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))

try:
    before, socks = rss_kib(), []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        s.send((f"GET /ws/idle{i % 100} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        socks.append(s)
    for s in socks:
        assert b" 101 " in s.recv(4096)[:20], "handshake refused"
    time.sleep(2)
    after = rss_kib()
    print(f"{n} idle WebSockets: server RSS {before} KiB -> {after} KiB, "
          f"{(after - before) / n:.1f} KiB each (target <= 16)")
finally:
    server.terminate()
    server.wait()
