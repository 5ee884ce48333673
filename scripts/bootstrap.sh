#!/usr/bin/env bash
# Installs every Debian package Stalk's build, tests and demo need. Idempotent and quiet when all is
# there: apt-get runs only for what is missing.
set -euo pipefail

PACKAGES=(
  # build
  cmake ninja-build g++ pkg-config
  libhiredis-dev libsimdjson-dev libboost-dev libcli11-dev libspdlog-dev libfmt-dev libabsl-dev
  nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev
  libssl-dev libcrypt-dev  # auth: SHA-256/CSPRNG/CRYPTO_memcmp, bcrypt via libxcrypt crypt_r; http: TLS
  libcurl4-openssl-dev      # auth: OIDC discovery, JWKS and token requests
  openssl python3-cryptography  # tests: self-signed certificates, the local OIDC provider signs id_tokens
  libsqlite3-dev libpq-dev  # store: durable history (SQLite default, PostgreSQL shared)
  librabbitmq-dev           # RabbitMQ (amqp://) transport: rabbitmq-c
  sqlite3 postgresql        # store tests: integrity checks, a private PostgreSQL server
  shellcheck                # stalk init tests: the written start_stalk.sh
  libcurl4-openssl-dev libyaml-cpp-dev  # alerts: notifiers/Sentry over libcurl, the YAML rules file
  python3-aiosmtpd prometheus-alertmanager  # alerts tests: a real SMTP sink and Alertmanager
  # real peers for tests and the demo
  redis-server redis-tools python3-celery python3-redis python3-pytest prometheus curl procps
  rabbitmq-server python3-amqp  # tests/integration/test_rabbitmq.py (a private node; policy-rc.d keeps the system one off)
  # OpenMetrics parser for tests/unit/metrics_test.cc and tests/integration/test_metrics.py
  python3-prometheus-client
  # CI's ASan and fuzz stages (scripts/sanitize.sh, scripts/fuzz.sh): clang, whose runtime libraries
  # hold libFuzzer; clang-format for the format check (scripts/check_format.sh)
  clang libclang-rt-14-dev clang-format
  # the dashboard's browser test (tests/integration/test_dashboard.py)
  chromium nodejs
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  echo "bootstrap: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian's service scripts would start system-wide redis/prometheus/rabbitmq; tests start private ones.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# npm: Debian's package, unless the installed nodejs (e.g. NodeSource's, which conflicts with it)
# already ships npm.
if ! command -v npm >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null
fi
