# A minimal host in another language than the agent's and the bench's: the 4 KiB transfers of
# bare-host.ts (one request at a time, lines from a template, answers taken apart by search, no
# client library), in Python. `python3 bare-host.py SOCKET` connects, pings (the reference
# prints nothing when it is ready), says "ready", then runs one job per line of stdin:
#   down FILE      -> "SECONDS BYTES REQUESTS MD5"   (4096-byte reads to the end of file)
#   up SRC DST     -> "SECONDS BYTES REQUESTS"       (4096-byte writes, then file-close)
#   ping N         -> "SECONDS 0 N"                  (N pings one at a time)
# The bench reads the agent's CPU time around each job. Used by bench/per-request.ts.
import base64
import hashlib
import json
import re
import socket
import sys
import time

B64 = b'"bufb64":"'
RETURN_ID = re.compile(rb'"return":(\d+)')

sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect(sys.argv[1])
answers = sock.makefile('rb')


def ask(line: bytes) -> bytes:
    sock.sendall(line)
    answer = answers.readline()
    if not answer:
        raise SystemExit('the agent closed the connection')
    if b'"error"' in answer:
        raise SystemExit('agent: ' + answer[:300].decode('utf-8', 'replace'))
    return answer


def opened(line: bytes) -> int:
    return int(RETURN_ID.search(ask(line)).group(1))


def download(path: str) -> str:
    handle = opened(b'{"execute":"file-open","arguments":{"path":%s}}\n' % json.dumps(path).encode())
    read = b'{"execute":"file-read","arguments":{"handle_id":%d}}\n' % handle
    md5 = hashlib.md5()
    size = requests = 0
    t0 = time.perf_counter()
    while True:
        answer = ask(read)
        requests += 1
        at = answer.index(B64) + len(B64)
        data = base64.b64decode(answer[at : answer.index(b'"', at)])
        if not data:
            break
        md5.update(data)
        size += len(data)
    return '%.6f %d %d %s' % (time.perf_counter() - t0, size, requests + 1, md5.hexdigest())


def upload(src: str, dst: str) -> str:
    with open(src, 'rb') as f:
        data = f.read()
    handle = opened(b'{"execute":"file-open","arguments":{"path":%s,"mode":"w"}}\n' % json.dumps(dst).encode())
    head = b'{"execute":"file-write","arguments":{"handle_id":%d,"bufb64":"' % handle
    requests = 0
    t0 = time.perf_counter()
    for off in range(0, len(data), 4096):
        ask(head + base64.b64encode(data[off : off + 4096]) + b'"}}\n')
        requests += 1
    ask(b'{"execute":"file-close","arguments":{"handle_id":%d}}\n' % handle)
    return '%.6f %d %d' % (time.perf_counter() - t0, len(data), requests + 2)


def ping(n: int) -> str:
    t0 = time.perf_counter()
    for _ in range(n):
        ask(b'{"execute":"ping"}\n')
    return '%.6f 0 %d' % (time.perf_counter() - t0, n)


ask(b'{"execute":"ping"}\n')
print('ready', flush=True)
for job in sys.stdin:
    words = job.split()
    if words[0] == 'down':
        print(download(words[1]), flush=True)
    elif words[0] == 'up':
        print(upload(words[1], words[2]), flush=True)
    elif words[0] == 'ping':
        print(ping(int(words[1])), flush=True)
