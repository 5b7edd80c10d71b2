#!/usr/bin/env bash
# Cache keys and paths for the test history, written to $GITHUB_OUTPUT.
#
# One history per branch, falling back to the default branch's: restore looks for the
# newest cache whose key starts with the branch prefix, then the default branch prefix.
# GitHub caches are immutable (a key is saved once), so every save gets a key of its own.
# The scope (a hash of the working directory and history path) keeps two projects of one
# repository apart.
#
# Inputs (environment): SF_PREFIX, SF_WORKDIR, SF_HISTORY, SF_SHARD, SF_DEFAULT_BRANCH,
# and GitHub's own GITHUB_HEAD_REF / GITHUB_REF_NAME / GITHUB_RUN_ID / GITHUB_RUN_ATTEMPT /
# GITHUB_JOB / GITHUB_OUTPUT.
set -euo pipefail

clean() {
    # Cache keys may not contain commas; keep them readable and shell-safe.
    printf '%s' "$1" | tr -c 'A-Za-z0-9._-' '_'
}

prefix=$(clean "${SF_PREFIX:-shadowfarm-history}")
workdir=${SF_WORKDIR:-.}
history=${SF_HISTORY:-.shadowfarm/history.sqlite}
branch=$(clean "${GITHUB_HEAD_REF:-${GITHUB_REF_NAME:-unknown}}")
default=$(clean "${SF_DEFAULT_BRANCH:-main}")
scope=$(printf '%s|%s' "$workdir" "$history" | sha256sum | cut -c1-8)

case "$history" in
    /*) history_abs=$history ;;
    *) history_abs=$(realpath -m "$workdir/$history") ;;
esac

shard=${SF_SHARD:-}
if [ -n "$shard" ]; then
    if ! [[ "$shard" =~ ^[0-9]+/[0-9]+$ ]]; then
        echo "::error title=pytest-shadowfarm::shard must be K/N (e.g. 2/4), got '$shard'"
        exit 2
    fi
    shard_name="shard-${shard%/*}-of-${shard#*/}"
else
    shard_name=""
fi

{
    echo "history=$history_abs"
    echo "restore-branch=$prefix-$scope-$branch-"
    echo "restore-default=$prefix-$scope-$default-"
    echo "save=$prefix-$scope-$branch-${GITHUB_RUN_ID:-0}-${GITHUB_RUN_ATTEMPT:-1}-$(clean "${GITHUB_JOB:-job}")-${shard_name:-all}-$RANDOM$RANDOM"
    echo "shard-name=$shard_name"
} >>"$GITHUB_OUTPUT"
