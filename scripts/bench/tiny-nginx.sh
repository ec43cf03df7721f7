# Sourced by scripts/worker-spread.sh and scripts/ab-w1.sh: a free loopback port, and the config of
# a one-worker nginx keep-alive backend answering "ok" on 127.0.0.1 (scripts/bench.sh has its own
# richer backend, nginx-backend.conf.in).

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# tiny_nginx_conf DIR PORT: writes DIR/nginx.conf (logs and pid in DIR); start it with
# nginx -c DIR/nginx.conf -p DIR.
tiny_nginx_conf() {
  cat >"$1/nginx.conf" <<CONF
worker_processes 1; daemon off; error_log $1/nginx.err; pid $1/nginx.pid;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 100000000;
       server { listen 127.0.0.1:$2; location / { return 200 "ok"; } } }
CONF
}
