#!/usr/bin/env bash
# Whether image tags already exist in Artifact Registry (runs in the gcloud step image).
#
#   image-state.sh STATE_DIR IMAGE:TAG...   write STATE_DIR/<package> = present | missing
#   image-state.sh --require IMAGE:TAG...   fail unless every tag exists
#
# The codex-cloud repository has immutable tags (terraform/modules/stack): a tag that exists is
# never pushed again, and the push of an existing tag is refused. Builds therefore build and push
# only missing tags (cloudbuild/build-push.sh) and deploy the image the tag already names.
# Asks the Artifact Registry API for the tag itself, so "not found" (404) is told apart from any
# other failure (permissions, network), which stops the build instead of passing for "missing".
set -euo pipefail

mode=state
if [ "${1:-}" = "--require" ]; then
  mode=require
  shift
else
  state_dir=${1:?usage: image-state.sh STATE_DIR IMAGE:TAG... | --require IMAGE:TAG...}
  shift
  mkdir -p "${state_dir}"
fi
[ $# -ge 1 ] || { echo "image-state.sh: no image given" >&2; exit 2; }

token=$(gcloud auth print-access-token)
missing=0
for ref in "$@"; do
  image=${ref%:*}
  tag=${ref##*:}
  # LOCATION-docker.pkg.dev/PROJECT/REPOSITORY/PACKAGE (the package name may contain '/').
  IFS=/ read -r host project repository package <<<"${image}"
  if [ "${image}" = "${ref}" ] || [ -z "${tag}" ] || [ "${tag}" != "${tag%/*}" ] ||
    [ -z "${project}" ] || [ -z "${repository}" ] || [ -z "${package}" ] ||
    [ "${host}" = "${host%-docker.pkg.dev}" ]; then
    echo "image-state.sh: expected LOCATION-docker.pkg.dev/PROJECT/REPOSITORY/PACKAGE:TAG, got ${ref}" >&2
    exit 2
  fi
  location=${host%-docker.pkg.dev}
  url="https://artifactregistry.googleapis.com/v1/projects/${project}/locations/${location}/repositories/${repository}/packages/${package//\//%2F}/tags/${tag}"
  body=$(mktemp)
  code=$(curl -sS -o "${body}" -w '%{http_code}' -H "Authorization: Bearer ${token}" "${url}")
  case "${code}" in
    200) state=present ;;
    404) state=missing ;;
    *)
      echo "image-state.sh: Artifact Registry answered ${code} for ${ref}:" >&2
      cat "${body}" >&2
      exit 1
      ;;
  esac
  rm -f "${body}"
  echo "${ref}: ${state}"
  if [ "${mode}" = require ]; then
    [ "${state}" = present ] || { echo "image-state.sh: ${ref} is not in Artifact Registry" >&2; missing=1; }
  else
    echo "${state}" > "${state_dir}/${package##*/}"
  fi
done
exit "${missing}"
