#!/usr/bin/env bash
# A second local PostgreSQL cluster (port 5499) serving a certificate for
# "localhost" signed by a CA made here, for the sslmode=verify-full test.
# Idempotent; prints the CA file for sslrootcert.
set -euo pipefail
command -v openssl >/dev/null || apt-get install -y openssl >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y openssl >/dev/null; }
version="$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort | head -n1)"
name=authgate_tls
port=5499
dir=/var/lib/postgresql/authgate-tls
if ! pg_lsclusters -h | awk '{print $2}' | grep -qx "$name"; then
  mkdir -p "$dir"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=authgate test CA" \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$dir/san.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 3650 -extfile "$dir/san.ext" -out "$dir/server.pem" 2>/dev/null
  chown -R postgres:postgres "$dir"
  chmod 600 "$dir/server.key" "$dir/ca.key"
  pg_createcluster "$version" "$name" -p "$port" -- --auth=trust >/dev/null
  cat >>"/etc/postgresql/$version/$name/postgresql.conf" <<CONF
listen_addresses = 'localhost'
ssl = on
ssl_cert_file = '$dir/server.pem'
ssl_key_file = '$dir/server.key'
CONF
fi
# A second CA that signed nothing here: verify-full against it must fail.
if [ ! -s "$dir/other-ca.pem" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=authgate other test CA" \
    -keyout "$dir/other-ca.key" -out "$dir/other-ca.pem" 2>/dev/null
  chmod 600 "$dir/other-ca.key"
  chmod 644 "$dir/other-ca.pem"
fi
pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start >/dev/null 2>&1 || true
for _ in $(seq 1 30); do pg_isready -q -h localhost -p "$port" && break; sleep 0.5; done
pg_isready -q -h localhost -p "$port" || { echo "FATAL: the TLS test cluster did not start" >&2; exit 1; }
echo "$dir/ca.pem"
