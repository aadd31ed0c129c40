# Sourced by the device scripts, from the repository root on the GPU machine: unpacks the carried Node 22
# runtime (.carry/runtime.tar.xz: node + the trimmed node_modules transformers.js needs) and Debian's Vulkan
# loader (.gl/*.deb), both made here by pack-runtime.sh, once per machine, and points Dawn at the NVIDIA
# Vulkan driver.
if [ ! -x /opt/rt/bin/node ]; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  mkdir -p /opt/rt && tar -xJf .carry/runtime.tar.xz -C /opt/rt
fi
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export PATH=/opt/rt/bin:$PATH
