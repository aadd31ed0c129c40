#!/usr/bin/env bash
# Device probe: unpack the carried Node runtime, check WebGPU via onnxruntime-node, measure copy bandwidth.
set -u
. scripts/device/runtime.sh
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv
node -v
echo "d2d copy: $(python3 scripts/device/bandwidth.py) GB/s (read+write)"
python3 - <<'PY'
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
