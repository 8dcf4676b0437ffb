#!/usr/bin/env bash
# build-push.sh STATE_FILE DOCKERFILE IMAGE:TAG — build and push IMAGE:TAG unless the tag already
# exists (runs in the docker step image; STATE_FILE was written by cloudbuild/image-state.sh).
#
# Tags are immutable in Artifact Registry (terraform/modules/stack): pushing an existing tag is
# refused. An existing tag is therefore kept and deployed as it is. For commit tags (SHORT_SHA)
# that is the same source built earlier (for example on another branch); for a named tag
# (deploy-worker.yaml _TAG) it is the image first pushed under that name, so a changed source needs
# a new tag. A refused push is reported but left to the verify step (image-state.sh --require):
# another build of the same commit may have pushed the tag in the meantime.
set -euo pipefail
state_file=${1:?usage: build-push.sh STATE_FILE DOCKERFILE IMAGE:TAG}
dockerfile=${2:?}
ref=${3:?}

if [ "$(cat "${state_file}")" = present ]; then
  echo "${ref} is already in Artifact Registry (immutable tag): not rebuilt, the existing image is deployed."
  exit 0
fi
docker build -f "${dockerfile}" -t "${ref}" .
if ! docker push "${ref}"; then
  echo "push of ${ref} failed or was refused (tag pushed meanwhile?); the verify step decides" >&2
fi
