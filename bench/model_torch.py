"""PyTorch side of `npm run bench:model`: the same workloads as bench/model.bench.ts on a random
SmolLM-135M-shaped LLaMA (float32, CPU, no autograd): one warm-up and `reps` timed forwards, one
whole warm-up generation and one timed greedy generation, for each thread count tried; the thread count with the
lowest median forward (and the fastest generation) is reported, times in seconds, as one JSON line.

    /usr/bin/python3 bench/model_torch.py [--reps 2] [--batch 4] [--seq 256] [--prompt 16] [--new 64]
"""
import argparse
import json
import os
import math
import statistics
import time

import torch

CFG = dict(vocab=49152, hidden=576, inter=1536, layers=30, heads=9, kv=3, theta=10000.0, eps=1e-5)


class Model:
    def __init__(self, c, seed=0):
        g = torch.Generator().manual_seed(seed)
        rn = lambda *s: torch.randn(*s, generator=g) * 0.02  # noqa: E731
        self.c = c
        self.d = c["hidden"] // c["heads"]
        self.emb = rn(c["vocab"], c["hidden"])  # tied lm_head
        self.layers = []
        for _ in range(c["layers"]):
            self.layers.append(dict(
                q=rn(c["heads"] * self.d, c["hidden"]), k=rn(c["kv"] * self.d, c["hidden"]),
                v=rn(c["kv"] * self.d, c["hidden"]), o=rn(c["hidden"], c["heads"] * self.d),
                gate=rn(c["inter"], c["hidden"]), up=rn(c["inter"], c["hidden"]), down=rn(c["hidden"], c["inter"]),
                n1=torch.ones(c["hidden"]), n2=torch.ones(c["hidden"]),
            ))
        self.norm = torch.ones(c["hidden"])
        self.inv = 1.0 / (c["theta"] ** (torch.arange(0, self.d, 2).float() / self.d))

    def rms(self, x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.c["eps"]))

    def cos_sin(self, pos):
        """Once per forward, like HF's LlamaRotaryEmbedding."""
        f = pos.float()[:, None] * self.inv[None]
        e = torch.cat([f, f], -1)
        return e.cos(), e.sin()

    def rope(self, x, cos, sin):
        h = x.shape[-1] // 2
        return x * cos + torch.cat([-x[..., h:], x[..., :h]], -1) * sin

    def forward(self, ids, cache=None, last_only=False):
        b, t = ids.shape
        c, d = self.c, self.d
        past = cache[0][0].shape[2] if cache and cache[0] else 0
        cos, sin = self.cos_sin(torch.arange(past, past + t))
        x = self.emb[ids]
        mask = None
        if t > 1:
            mask = torch.full((t, past + t), float("-inf")).triu(past + 1)
        rep = c["heads"] // c["kv"]
        for i, L in enumerate(self.layers):
            h = self.rms(x, L["n1"])
            q = (h @ L["q"].T).view(b, t, c["heads"], d).transpose(1, 2)
            k = (h @ L["k"].T).view(b, t, c["kv"], d).transpose(1, 2)
            v = (h @ L["v"].T).view(b, t, c["kv"], d).transpose(1, 2)
            q, k = self.rope(q, cos, sin), self.rope(k, cos, sin)
            if cache is not None:
                if cache[i]:
                    k = torch.cat([cache[i][0], k], 2)
                    v = torch.cat([cache[i][1], v], 2)
                cache[i] = (k, v)
            k = k.repeat_interleave(rep, 1)
            v = v.repeat_interleave(rep, 1)
            s = q @ k.transpose(-1, -2) / math.sqrt(d)
            if mask is not None:
                s = s + mask
            a = (s.softmax(-1) @ v).transpose(1, 2).reshape(b, t, -1)
            x = x + a @ L["o"].T
            h = self.rms(x, L["n2"])
            x = x + (torch.nn.functional.silu(h @ L["gate"].T) * (h @ L["up"].T)) @ L["down"].T
        if last_only:
            x = x[:, -1:]
        return self.rms(x, self.norm) @ self.emb.T


def generate(m, prompt, new):
    """Greedy decoding with the KV cache; returns seconds."""
    t0 = time.perf_counter()
    cache = [None] * CFG["layers"]
    logits = m.forward(prompt, cache, last_only=True)
    for _ in range(new - 1):
        nxt = logits[:, -1].argmax(-1, keepdim=True)
        logits = m.forward(nxt, cache)
    return time.perf_counter() - t0


def measure(m, a):
    """Forward seconds (each of reps) and generation seconds for the current thread count."""
    ids = torch.randint(0, CFG["vocab"], (a.batch, a.seq))
    m.forward(ids)  # warm-up
    fwd = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        m.forward(ids)
        fwd.append(time.perf_counter() - t0)
    prompt = torch.randint(0, CFG["vocab"], (1, a.prompt))
    generate(m, prompt, a.new)  # warm-up: one whole generation, as on our side
    return fwd, generate(m, prompt, a.new)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--prompt", type=int, default=16)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--threads", type=str, default=f"1,{os.cpu_count()}",
                    help="thread counts to try; the best result per workload is reported")
    a = ap.parse_args()
    torch.manual_seed(0)
    best = {}
    with torch.no_grad():
        m = Model(CFG)
        for th in sorted({int(x) for x in a.threads.split(",")}):
            torch.set_num_threads(th)
            fwd, gen = measure(m, a)
            if statistics.median(fwd) < statistics.median(best.get("forward_s", [float("inf")])):
                best.update(forward_s=fwd, forward_threads=th)
            if gen < best.get("generate_s", float("inf")):
                best.update(generate_s=gen, generate_threads=th)
    print(json.dumps(dict(torch=torch.__version__, **best)))


if __name__ == "__main__":
    main()
