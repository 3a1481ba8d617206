"""PyTorch side of `npm run bench:train` (bench/train.bench.ts): the same checkpoint, the same step.

Usage: python train_torch.py MODEL_DIR KIND   (KIND: lora | mor | moelora | full)
Env: BENCH_BATCH, BENCH_SEQ, BENCH_STEPS (timed steps), BENCH_WARMUP (untimed steps before them, 3), BENCH_R, BENCH_N,
BENCH_THREADS (default: all cores).
Loads the float32 checkpoint with transformers, attaches the adapter to gate/up/down (LoRA with
PEFT; MoR and MoELoRA as in bench/torch_adapters.py; full: every linear weight of the decoder
layers trainable), then times training steps: causal-LM loss over every position with full
logits, backward, AdamW (lr 1e-4, weight decay 0.01), zero_grad. Prints one JSON line: median and
every step's seconds, tokens/s, the losses, trainable parameters and the process's peak RSS.
A benchmark baseline only; never a project dependency.
"""
import json
import os
import resource
import statistics
import sys
import time

import torch
from transformers import AutoModelForCausalLM

from torch_adapters import attach

TARGETS = ("gate_proj", "up_proj", "down_proj")


def main():
    model_dir, kind = sys.argv[1], sys.argv[2]
    batch = int(os.environ.get("BENCH_BATCH", "4"))
    seq = int(os.environ.get("BENCH_SEQ", "256"))
    steps = int(os.environ.get("BENCH_STEPS", "3"))
    warmup = int(os.environ.get("BENCH_WARMUP", "3"))
    r = int(os.environ.get("BENCH_R", "32"))
    n = int(os.environ.get("BENCH_N", "8"))
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", os.cpu_count())))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    for p in model.parameters():
        p.requires_grad_(False)
    if kind == "lora":
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules=list(TARGETS)))
    elif kind in ("mor", "moelora"):
        attach(model, kind, TARGETS, r=r, n=n, alpha=2 * r)
    elif kind == "full":
        for layer in model.model.layers:
            for m in layer.modules():
                if isinstance(m, torch.nn.Linear):
                    m.weight.requires_grad_(True)
    else:
        raise SystemExit(f"unknown kind {kind}")
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
    vocab = model.config.vocab_size
    ids = torch.tensor([[(i * 7919 + 13 + 101 * b) % vocab for i in range(seq)] for b in range(batch)])
    times, losses = [], []
    for step in range(warmup + steps):
        t0 = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        losses.append(loss.item())
        if step >= warmup:
            times.append(dt)
    step_s = statistics.median(times)
    print(json.dumps({
        "torch": torch.__version__, "threads": torch.get_num_threads(), "stepS": step_s, "stepsS": times,
        "tokS": batch * seq / step_s, "losses": losses, "trainableParams": sum(p.numel() for p in params),
        "peakRssGiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }))


if __name__ == "__main__":
    main()
