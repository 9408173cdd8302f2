#!/usr/bin/env python3
"""Golden fixture for the NN module: 10 AdamW steps (betas (0.99, 0.99), weight decay 0.03,
the reference's linear warm-up, gradient clipping 1.0) on a small network, plus the EMA trajectory from
ema-pytorch. Requires torch==2.13.0+cpu and ema-pytorch==0.8.3 (scripts/setup-python.sh).

Writes Tests/NNTests/Fixtures/adamw_ema.json:
  {"params0": {name: {"shape": [...], "data": [...]}}, "x": ..., "y": ...,
   "lr": float, "warmup": int, "steps": [{"loss": float, "params": {...}, "ema": {...}}, ...]}
"""
import json, os
import torch
from ema_pytorch import EMA

torch.manual_seed(0)
torch.set_default_dtype(torch.float32)
net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.GELU(), torch.nn.LayerNorm(7), torch.nn.Linear(7, 3))
with torch.no_grad():
    net[2].weight.normal_(1.0, 0.2)
    net[2].bias.normal_(0.0, 0.2)
x = torch.randn(6, 5)
y = torch.randn(6, 3) * 3
lr, warmup = 0.05, 4
opt = torch.optim.AdamW(net.parameters(), lr=lr, betas=(0.99, 0.99), eps=1e-8, weight_decay=0.03)
# As the reference (utils/lr_schedule.py): LambdaLR with min(step / warmup, 1), so the first update
# runs at lr 0 (the moments still move) and update k at lr * (k - 1) / warmup.
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: min(e / warmup, 1.0))
ema = EMA(net, beta=0.9, update_after_step=3, update_every=1, inv_gamma=1.0, power=2 / 3)

def dump(sd):
    return {k: {"shape": list(v.shape), "data": v.detach().reshape(-1).tolist()} for k, v in sd.items()}

fixture = {"params0": dump(net.state_dict()), "x": x.reshape(-1).tolist(), "y": y.reshape(-1).tolist(),
           "lr": lr, "warmup": warmup, "ema_beta": 0.9, "ema_update_after_step": 3, "clip": 1.0, "steps": []}
for step in range(10):
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(net(x), y)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()
    sched.step()
    ema.update()
    fixture["steps"].append({"loss": loss.item(), "grad_norm": norm.item(), "params": dump(net.state_dict()),
                             "ema": dump(ema.ema_model.state_dict())})

out = os.path.join(os.path.dirname(__file__), "..", "Tests", "NNTests", "Fixtures", "adamw_ema.json")
with open(out, "w") as f:
    json.dump(fixture, f)
print("wrote", os.path.normpath(out))
