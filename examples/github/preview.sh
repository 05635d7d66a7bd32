#!/usr/bin/env bash
# Preview a stack against the pull request's base branch and write the comment body.
# Inputs (environment): STACK (stack name, default dev), BASE_REF (the base branch, e.g. main),
# BODY_FILE (where the comment body goes, default preview-comment.md), BATCHTASKS (the command,
# default batchtasks). Exit status: that of `batchtasks preview --fail-on destructive`
# (0 fine, 4 destructive, 1 or 2 an error); the body is written whenever the preview ran.
set -uo pipefail
stack="${STACK:-dev}"
base="${BASE_REF:?BASE_REF must name the base branch}"
body="${BODY_FILE:-preview-comment.md}"
batchtasks="${BATCHTASKS:-batchtasks}"
marker="<!-- batchtasks-preview:${stack} -->"
# GitHub caps a comment at 65,536 characters; the marker and the note below fit in the rest.
limit=64000

git fetch --quiet --no-tags origin "${base}" 2>/dev/null || true
against="origin/${base}"
git rev-parse --verify --quiet "${against}^{commit}" >/dev/null || against="${base}"

preview=$(mktemp)
trap 'rm -f "$preview"' EXIT
"$batchtasks" preview --stack "$stack" --against "$against" --output "$preview" \
  --fail-on destructive
status=$?
if [ "$status" -ne 0 ] && [ "$status" -ne 4 ]; then
  exit "$status"
fi
{
  echo "$marker"
  if [ "$(wc -c < "$preview")" -gt "$limit" ]; then
    head -c "$limit" "$preview"
    echo
    echo
    echo "*(cut at ${limit} bytes: run \`batchtasks preview --stack ${stack} --against ${against}\` for all of it)*"
  else
    cat "$preview"
  fi
} > "$body"
exit "$status"
