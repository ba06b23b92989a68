#!/bin/sh
# A throw-away local nginx serving HTTPS on 127.0.0.1, for the tests, the
# tour and the benchmarks (no internet needed).
#   tools/nginx.sh start DIR    create DIR (a CA and a server certificate made
#                               with openssl, static files, nginx.conf), start
#                               nginx on a free port; prints the port, also in
#                               DIR/port. The CA to trust is DIR/ca.pem.
#   tools/nginx.sh stop DIR     stop it (DIR is left for the caller to remove)
# Locations:
#   /files/<name>   static files DIR/www/files/* (f1k, f64k, f1m; see below)
#   /page/<anything> an HTML page after a delay of $CIO_NGINX_DELAY seconds
#                   (default 0.2), by the echo module's echo_sleep
#                   (libnginx-mod-http-echo): nginx itself cannot delay
#   /stall          "begin" at once, then nothing for 60 s, then "end": a
#                   transfer that hangs in the middle of its body
#   /hello          "hello\n" (the benchmarks)
# The same server also listens without TLS on a second free port, in
# DIR/http_port (the benchmarks compare plain HTTP servers).
# nginx runs in the foreground of a background job (daemon off) with its pid,
# logs and temp files in DIR; as root it keeps running as root (user root),
# so it works in CI containers.
set -eu
cmd=${1:?usage: nginx.sh start|stop DIR}
dir=${2:?usage: nginx.sh start|stop DIR}
mod=/usr/lib/nginx/modules/ngx_http_echo_module.so

case $cmd in
stop)
  if [ -f "$dir/nginx.pid" ]; then
    pid=$(cat "$dir/nginx.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$dir/nginx.pid"
  fi
  exit 0 ;;
start) ;;
*) echo "usage: nginx.sh start|stop DIR" >&2; exit 2 ;;
esac

command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { echo "nginx.sh: nginx is not installed" >&2; exit 1; }
nginx=$(command -v nginx || echo /usr/sbin/nginx)
[ -f "$mod" ] || { echo "nginx.sh: $mod missing (libnginx-mod-http-echo)" >&2; exit 1; }
mkdir -p "$dir/www/files" "$dir/tmp"
dir=$(cd "$dir" && pwd)

# A CA and a server certificate for 127.0.0.1 and localhost.
if [ ! -f "$dir/server.pem" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=cio test CA" \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$dir/ext.cnf"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -days 2 -extfile "$dir/ext.cnf" -out "$dir/server.pem" 2>/dev/null
  # A second, unrelated CA: trusting it instead must fail verification.
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=cio other CA" \
    -keyout "$dir/other.key" -out "$dir/other.pem" 2>/dev/null
fi
# Static files with known contents (pseudo-random bytes, fixed seed).
for spec in f1k:1024 f64k:65536 f1m:1048576; do
  name=${spec%%:*}; size=${spec#*:}
  [ -f "$dir/www/files/$name" ] ||
    openssl enc -aes-128-ctr -K 00112233445566778899aabbccddeeff -iv 0 -nosalt \
      -in /dev/zero 2>/dev/null | head -c "$size" >"$dir/www/files/$name"
done

user=""
[ "$(id -u)" -eq 0 ] && user="user root;"
delay=${CIO_NGINX_DELAY:-0.2}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

for attempt in 1 2 3 4 5; do
  port=$(free_port)
  http_port=$(free_port)
  cat >"$dir/nginx.conf" <<CONF
load_module $mod;
$user
daemon off;
master_process on;
worker_processes ${CIO_NGINX_WORKERS:-1};
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  server {
    listen 127.0.0.1:$port ssl http2;
    listen 127.0.0.1:$http_port;
    ssl_certificate $dir/server.pem;
    ssl_certificate_key $dir/server.key;
    ssl_session_cache shared:cio:1m; # session-ID resumption (curl turns TLS 1.2 tickets off)
    root $dir/www;
    location /files/ { default_type application/octet-stream; }
    location /page/ {
      default_type "text/html; charset=utf-8";
      echo_sleep $delay;
      echo "<!doctype html><html><head><title>cio 測試頁</title></head>";
      echo "<body><h1>\$uri</h1><p>非同步抓網頁:這一頁故意慢 $delay 秒才回應。</p></body></html>";
    }
    location = /stall {
      default_type text/plain;
      echo "begin";
      echo_flush;
      echo_sleep 60;
      echo "end";
    }
    location = /hello { default_type text/plain; return 200 "hello\n"; }
  }
}
CONF
  rm -f "$dir/nginx.pid"
  "$nginx" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" </dev/null >/dev/null 2>>"$dir/error.log" &
  for _ in $(seq 1 100); do
    [ -s "$dir/nginx.pid" ] && break
    kill -0 $! 2>/dev/null || break
    sleep 0.05
  done
  if [ -s "$dir/nginx.pid" ] && kill -0 $! 2>/dev/null; then
    # listening?
    for _ in $(seq 1 50); do
      if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null; then
        echo "$port" >"$dir/port"; echo "$http_port" >"$dir/http_port"; echo "$port"; exit 0
      fi
      sleep 0.05
    done
  fi
  sh "$0" stop "$dir" || true
done
echo "nginx.sh: nginx did not start; $dir/error.log says:" >&2
tail -5 "$dir/error.log" >&2
exit 1
