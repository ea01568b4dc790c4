"""Forwards SCEP requests to scepserver and writes every request body and
reply to the current directory as NN-<operation>-request.der and
NN-<operation>-reply.bin.

Usage: capture_proxy.py LISTEN_PORT UPSTREAM_URL"""
import http.server
import itertools
import sys
import urllib.error
import urllib.request

UPSTREAM = sys.argv[2]
counter = itertools.count(1)

class Handler(http.server.BaseHTTPRequestHandler):
    def forward(self, body):
        req = urllib.request.Request(UPSTREAM + self.path, data=body, method=self.command)
        if body is not None:
            req.add_header("Content-Type", self.headers.get("Content-Type", "application/octet-stream"))
        try:
            with urllib.request.urlopen(req) as r:
                status, ctype, reply = r.status, r.headers.get("Content-Type"), r.read()
        except urllib.error.HTTPError as e:
            status, ctype, reply = e.code, e.headers.get("Content-Type"), e.read()
        n = next(counter)
        op = self.path.split("operation=")[-1].split("&")[0]
        if body:
            open(f"{n:02d}-{op}-request.der", "wb").write(body)
        open(f"{n:02d}-{op}-reply.bin", "wb").write(reply)
        print(n, self.command, self.path, status, ctype, len(reply), flush=True)
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)
    def do_GET(self):
        self.forward(None)
    def do_POST(self):
        self.forward(self.rfile.read(int(self.headers["Content-Length"])))

http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
