# Device-to-device copy bandwidth through torch, in GB/s counting bytes read plus bytes written: the memory
# bandwidth ceiling the benchmarks' bounds use (METHOD.md: measure the ceiling on the machine itself).
import torch

x = torch.empty(2 * 1024**3, dtype=torch.uint8, device="cuda")
y = torch.empty_like(x)
for _ in range(3):
    y.copy_(x)
torch.cuda.synchronize()
start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
start.record()
for _ in range(20):
    y.copy_(x)
end.record()
torch.cuda.synchronize()
print(round(2 * x.numel() / (start.elapsed_time(end) / 20) / 1e6))
