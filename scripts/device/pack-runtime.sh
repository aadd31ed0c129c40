#!/usr/bin/env bash
# Here (not on the device): packs what the GPU machine needs to run our bundles and has not got — the Node 22
# binary from the `node` dev dependency and the trimmed node_modules transformers.js needs at run time
# (dist/transformers.node.*, onnxruntime-node's linux/x64 binaries, onnxruntime-common, sharp with @img) —
# into .carry/runtime.tar.xz (~49 MB, git-ignored), and downloads Debian's Vulkan loader and glvnd libraries
# into .gl/ (the device README's recipe). runtime.sh unpacks both on the device.
set -euo pipefail
cd "$(dirname "$0")/../.."
rt=$(mktemp -d)
nm=node_modules
mkdir -p "$rt/bin" "$rt/node_modules/@huggingface/transformers/dist" "$rt/node_modules/onnxruntime-node/bin/napi-v6/linux"
cp "$nm/node/bin/node" "$rt/bin/"
cp "$nm/@huggingface/transformers/package.json" "$rt/node_modules/@huggingface/transformers/"
cp "$nm/@huggingface/transformers/dist/transformers.node.mjs" "$nm/@huggingface/transformers/dist/transformers.node.cjs" \
  "$rt/node_modules/@huggingface/transformers/dist/"
cp -r "$nm/onnxruntime-node/package.json" "$nm/onnxruntime-node/dist" "$rt/node_modules/onnxruntime-node/"
cp -r "$nm/onnxruntime-node/bin/napi-v6/linux/x64" "$rt/node_modules/onnxruntime-node/bin/napi-v6/linux/"
cp -r "$nm/onnxruntime-common" "$nm/sharp" "$nm/@img" "$nm/detect-libc" "$nm/semver" "$rt/node_modules/"
mkdir -p .carry
tar -cJf .carry/runtime.tar.xz -C "$rt" .
rm -rf "$rt"
mkdir -p .gl /tmp/amd64/partial
o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
# shellcheck disable=SC2086 # the options are meant to split
apt-get $o update >/dev/null
# shellcheck disable=SC2086
(cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
ls -la .carry/runtime.tar.xz .gl
