#!/bin/sh
# Captures SCEP messages between Debian's scepclient and scepserver (package
# `scep` 2.1.0) through capture_proxy.py. Run as root from an empty
# directory: unshare -n sh /path/to/capture.sh /path/to/capture_proxy.py
# Everything listens on the loopback of a private network namespace.
set -e
PROXY=$1
ip link set lo up
scepserver ca -init -depot depot -keySize 2048 >/dev/null
scepserver -depot depot -port 2016 -challenge=secret > server.log 2>&1 &
SERVER=$!
python3 "$PROXY" 2017 http://127.0.0.1:2016 > proxy.log 2>&1 &
PROXY_PID=$!
sleep 1
mkdir ok wrong
(cd ok && openssl genrsa -traditional -out client.key 2048 2>/dev/null &&
  scepclient -private-key client.key -server-url=http://127.0.0.1:2017/scep \
    -challenge=secret -cn simdevice -debug > client.log 2>&1)
(cd wrong && openssl genrsa -traditional -out client.key 2048 2>/dev/null &&
  scepclient -private-key client.key -server-url=http://127.0.0.1:2017/scep \
    -challenge=wrong -cn simdevice2 -debug > client.log 2>&1) || true
kill $PROXY_PID $SERVER
