#!/usr/bin/env bash
# Device probe: unpack the carried Node runtime, check WebGPU via onnxruntime-node, measure copy bandwidth.
set -u
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
mkdir -p /opt/rt && tar -xJf .carry/runtime.tar.xz -C /opt/rt
export PATH=/opt/rt/bin:$PATH NODE_PATH=/opt/rt/node_modules
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv
node -v
python3 - <<'PY'
import torch, time
x = torch.empty(2*1024**3, dtype=torch.uint8, device="cuda"); y = torch.empty_like(x)
for _ in range(3): y.copy_(x)
torch.cuda.synchronize(); s=torch.cuda.Event(enable_timing=True); e=torch.cuda.Event(enable_timing=True)
s.record()
for _ in range(20): y.copy_(x)
e.record(); torch.cuda.synchronize(); ms=s.elapsed_time(e)/20
print(f"d2d copy: {2*x.numel()/ms/1e9:.0f} GB/s (read+write)")
import onnx
from onnx import helper, TensorProto
import numpy as np
W = helper.make_tensor("W", TensorProto.FLOAT16, [1024,1024], np.random.rand(1024*1024).astype(np.float16).tobytes(), raw=True)
g = helper.make_graph([helper.make_node("MatMul", ["x","W"], ["y"])], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1,1024])], [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1,1024])], [W])
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("",21)], ir_version=10), "/tmp/mm.onnx")
PY
cd /opt/rt && node --input-type=module -e '
import ort from "onnxruntime-node";
console.log(JSON.stringify(ort.listSupportedBackends?.()));
const s = await ort.InferenceSession.create("/tmp/mm.onnx", { executionProviders: ["webgpu"] });
const x = new ort.Tensor("float16", new Uint16Array(1024).fill(0x3c00), [1,1024]);
let t=performance.now(); for (let i=0;i<100;i++) await s.run({x}); console.log("webgpu matmul run ms", ((performance.now()-t)/100).toFixed(3));
const { env, AutoTokenizer } = await import("@huggingface/transformers"); console.log("transformers import ok", typeof AutoTokenizer);
'
