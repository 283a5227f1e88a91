"""The workshop MLP and CNN in plain PyTorch (eager) on a GPU: the peer of
examples/gpu_epoch.rs in bench/gpu/run.sh. Same models, optimizers (Keras's defaults),
batch 128 and 48000/12000 split as ../../shared/peers/torch_seed.py, on random data of
Fashion-MNIST's shape kept on the GPU (the GPU machine has no data set).

Usage: python torch_peer.py mlp|cnn EPOCHS"""
import sys
import time

import torch
import torch.nn as nn

which, epochs = sys.argv[1], int(sys.argv[2])
dev = torch.device("cuda")
torch.manual_seed(0)
shape = (60000, 784) if which == "mlp" else (60000, 1, 28, 28)
x = torch.rand(shape, device=dev)
y = torch.randint(0, 10, (60000,), device=dev)
xtr, ytr, xv, yv = x[:48000], y[:48000], x[48000:], y[48000:]
if which == "mlp":
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.4), nn.Linear(256, 128),
                          nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10))
    opt_for = lambda p: torch.optim.RMSprop(p, lr=1e-3, alpha=0.9, eps=1e-7)
else:
    model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3),
                          nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1600, 64), nn.ReLU(),
                          nn.Linear(64, 10))
    opt_for = lambda p: torch.optim.Adam(p, lr=1e-3, eps=1e-7)
model = model.to(dev)
opt = opt_for(model.parameters())
lossf = nn.CrossEntropyLoss()
times = []
for ep in range(epochs):
    torch.cuda.synchronize()
    t = time.perf_counter()
    model.train()
    perm = torch.randperm(48000, device=dev)
    for i in range(0, 48000, 128):
        idx = perm[i:i + 128]
        opt.zero_grad()
        loss = lossf(model(xtr[idx]), ytr[idx])
        loss.backward()
        opt.step()
        loss.item()  # the per-batch loss a progress bar shows, as Keras reads it
    model.eval()
    with torch.no_grad():
        hits = sum((model(xv[i:i + 128]).argmax(1) == yv[i:i + 128]).sum().item()
                   for i in range(0, 12000, 128))
    torch.cuda.synchronize()
    times.append(time.perf_counter() - t)
    print(f"torch {which} epoch {ep + 1}: {times[-1]:.3f} s (val_acc {hits / 12000:.4f})", flush=True)
later = sorted(times[1:]) if len(times) > 1 else times
print(f"RESULT torch={torch.__version__} device={torch.cuda.get_device_name()} model={which} "
      f"epoch_s_median={later[len(later) // 2]:.3f}")
