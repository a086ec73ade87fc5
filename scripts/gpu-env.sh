# Source this on a GPU machine that has Python + CUDA torch but no Node installation, after
# copying the repo with dist/ (npm run build) and .carry/node.xz (an xz-compressed node
# binary from a machine that has one):  . scripts/gpu-env.sh && spanattn doctor
set -e
if ! command -v node >/dev/null 2>&1 && [ ! -f .carry/node.xz ]; then
  echo "gpu-env: no node here and no .carry/node.xz: only the Python entry points will run" >&2
elif ! command -v node >/dev/null 2>&1; then
  if [ ! -x /tmp/spanattn-node/node ]; then
    mkdir -p /tmp/spanattn-node
    xz -dc .carry/node.xz > /tmp/spanattn-node/node
    chmod +x /tmp/spanattn-node/node
  fi
  export PATH="/tmp/spanattn-node:$PATH"
fi
export SPANATTN_PYTHON="${SPANATTN_PYTHON:-python3}"
# a `spanattn` command on PATH (a script, so `timeout spanattn ...` works too)
mkdir -p /tmp/spanattn-bin
printf '#!/bin/sh\nexec node "%s/bin/spanattn.mjs" "$@"\n' "$(pwd)" > /tmp/spanattn-bin/spanattn
chmod +x /tmp/spanattn-bin/spanattn
export PATH="/tmp/spanattn-bin:$PATH"
set +e
