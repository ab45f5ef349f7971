#!/bin/bash
# The engine's forward pass against an independent PyTorch reference
# (tests/engine/reference.py) on several random small Gemma 3 checkpoints:
# layer_types and sliding_window_pattern configs, GQA, odd sizes, bf16/f16/f32,
# linear RoPE scaling, sharded and multimodal-prefixed weights, prompts longer
# than the sliding window, steps mixing prompt chunks and decode tokens; every
# kernel build this CPU runs. Needs Debian's python3-torch.
set -u
: "${IG_BIN:?}" "${IG_TOP:?}"
if ! /usr/bin/python3 -c 'import torch, numpy' 2>/dev/null; then
	echo "python3-torch and python3-numpy are required (make deps)"; exit 1
fi
work=$(mktemp -d /tmp/ig-engine-ref.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "checking logits and greedy tokens against the PyTorch reference"
timeout 500 /usr/bin/python3 "$IG_TOP/tests/engine/reference.py" --bin "$IG_BIN" --work "$work"
