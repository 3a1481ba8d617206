"""ONNX side of `npm run bench:model`: export bench/model_torch.py's model (same seed, same
SmolLM-135M shape) for a fixed [batch, seq] forward to an ONNX file, with PyTorch's TorchScript
exporter (needs the `onnx` package; transformers' own LlamaForCausalLM does not export with it:
its mask code uses aten::diff).

    python bench/model_onnx.py OUT.onnx [--batch 4] [--seq 256]
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model_torch import CFG, Model  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    a = ap.parse_args()
    torch.manual_seed(0)
    m = Model(CFG)

    class Forward(torch.nn.Module):
        def forward(self, ids):
            return m.forward(ids)

    ids = torch.randint(0, CFG["vocab"], (a.batch, a.seq))
    tmp = a.out + ".tmp"
    with torch.no_grad():
        torch.onnx.export(Forward(), (ids,), tmp, input_names=["ids"], output_names=["logits"], dynamo=False, opset_version=17)
    os.replace(tmp, a.out)


if __name__ == "__main__":
    main()
