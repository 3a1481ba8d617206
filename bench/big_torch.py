"""PyTorch side of `npm run bench:big` (bench/big.bench.ts): the same checkpoint, the same work.

Usage: python big_torch.py MODEL_DIR float32|bfloat16   (env BENCH_SEQ, BENCH_BATCH, BENCH_NEW)
Loads the checkpoint with transformers in the given dtype, times a forward (1 x SEQ, full
logits), one MoR training step (BENCH_BATCH x SEQ, r=8, N=8 on gate/up/down, full causal-LM loss, AdamW; MoR as
in the project's docs: one shared LoRA pair, N diagonal expert rescalings, softmax router;
gradient checkpointing on for bfloat16, i.e. the 7B shape, where activations would not fit
otherwise) and greedy generation; prints one JSON line with the process's peak RSS.
Needs torch >= 2 and transformers >= 5 (a benchmark baseline only; never a project dependency).
"""
import json
import os
import resource
import sys
import time

import torch
from transformers import AutoModelForCausalLM

from torch_adapters import MoRLinear


def peak_rss_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB on Linux


def main():
    model_dir, dtype_name = sys.argv[1], sys.argv[2]
    seq = int(os.environ.get("BENCH_SEQ", "512"))
    batch = int(os.environ.get("BENCH_BATCH", "1"))
    new = int(os.environ.get("BENCH_NEW", "8"))
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype_name]
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    model.eval()
    load_s = time.perf_counter() - t0
    vocab = model.config.vocab_size
    ids = torch.tensor([[(i * 7919 + 13) % vocab for i in range(seq)]])
    print(f"  loaded in {load_s:.1f} s", file=sys.stderr)

    with torch.no_grad():
        model(ids[:, :8])
        t0 = time.perf_counter()
        model(ids)
        forward_tok_s = seq / (time.perf_counter() - t0)
    print(f"  forward {forward_tok_s:.1f} tokens/s", file=sys.stderr)

    for p in model.parameters():
        p.requires_grad_(False)
    for layer in model.model.layers:
        for name in ("gate_proj", "up_proj", "down_proj"):
            setattr(layer.mlp, name, MoRLinear(getattr(layer.mlp, name)))
    if dtype == torch.bfloat16:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    batch_ids = ids.repeat(batch, 1)
    # BENCH_TRAIN_STEPS steps (default 2); the last one is reported: the first pays one-time costs.
    for _ in range(int(os.environ.get("BENCH_TRAIN_STEPS", "2"))):
        t0 = time.perf_counter()
        loss = model(batch_ids, labels=batch_ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        train_step_s = time.perf_counter() - t0
    print(f"  train step {train_step_s:.1f} s", file=sys.stderr)

    model.eval()
    prompt = torch.tensor([[(i * 31 + 7) % vocab for i in range(16)]])
    with torch.no_grad():
        t0 = time.perf_counter()
        out = model.generate(prompt, max_new_tokens=new, min_new_tokens=new, do_sample=False)
        gen_tok_s = (out.shape[1] - prompt.shape[1]) / (time.perf_counter() - t0)
    print(json.dumps({
        "loadS": load_s, "peakRssGiB": peak_rss_gib(), "forwardTokS": forward_tok_s,
        "trainStepS": train_step_s, "trainTokS": batch * seq / train_step_s, "generateTokS": gen_tok_s,
    }))


if __name__ == "__main__":
    main()
