#!/usr/bin/env bash
# Keep one preview comment on the pull request: update the comment that carries the marker,
# or add it. Inputs (environment): GITHUB_TOKEN, GITHUB_REPOSITORY (owner/name), PR_NUMBER,
# BODY_FILE (written by preview.sh), GITHUB_API_URL (set by GitHub Actions; default
# https://api.github.com). Needs curl and python3.
set -euo pipefail
api="${GITHUB_API_URL:-https://api.github.com}"
body="${BODY_FILE:-preview-comment.md}"
repo="${GITHUB_REPOSITORY:?}"
pr="${PR_NUMBER:?}"
marker=$(head -n 1 "$body")
auth=(-H "Authorization: Bearer ${GITHUB_TOKEN:?}" -H "Accept: application/vnd.github+json")

# The first comment (of up to 100 per page) that starts with the marker.
existing=""
page=1
while [ -z "$existing" ]; do
  comments=$(curl -fsS "${auth[@]}" "${api}/repos/${repo}/issues/${pr}/comments?per_page=100&page=${page}")
  existing=$(MARKER="$marker" python3 -c '
import json, os, sys
comments = json.load(sys.stdin)
print(next((str(c["id"]) for c in comments if c.get("body", "").startswith(os.environ["MARKER"])), "" if comments else "none"))
' <<< "$comments")
  [ "$existing" = "none" ] && existing="" && break
  page=$((page + 1))
done

payload=$(python3 -c 'import json, sys; print(json.dumps({"body": sys.stdin.read()}))' < "$body")
if [ -n "$existing" ]; then
  curl -fsS -X PATCH "${auth[@]}" "${api}/repos/${repo}/issues/comments/${existing}" \
    --data-binary "$payload" > /dev/null
  echo "updated comment ${existing}"
else
  curl -fsS -X POST "${auth[@]}" "${api}/repos/${repo}/issues/${pr}/comments" \
    --data-binary "$payload" > /dev/null
  echo "added a comment"
fi
