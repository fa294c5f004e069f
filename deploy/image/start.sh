#!/bin/sh
# The image's entrypoint: container defaults, then the relay.
#
#   start.sh              -> relay run   (web + worker(s) + embedded Redis unless
#                                         RELAY_REDIS_URL is set)
#   start.sh web          -> relay web   (the parts alone, to scale them apart)
#   start.sh worker       -> relay worker
#   start.sh check        -> relay check (any relay command works the same way)
#
# Defaults for a container, each only when the variable is unset or empty:
#   RELAY_BIND=0.0.0.0:8000   listen on every interface (the relay's own default is
#                             127.0.0.1:8000, which nothing outside the container reaches)
#   RELAY_DATA_DIR=/data      the image's VOLUME, for the embedded Redis
# The Dockerfile sets the same two values with ENV, so `docker exec ... relay dlq list`
# finds the running embedded Redis too; tests/test_deploy_files.py checks they agree.
#
# `exec` makes the relay the container's main process, so `docker stop` and Kubernetes
# deliver SIGTERM to it directly and it drains (web first, then the workers' jobs in flight,
# then Redis flushes its append-only file).
set -eu

: "${RELAY_BIND:=0.0.0.0:8000}"
: "${RELAY_DATA_DIR:=/data}"
export RELAY_BIND RELAY_DATA_DIR

if [ "$#" -eq 0 ]; then
    set -- run
fi
exec relay "$@"
