#!/usr/bin/env bash
# Train the default model with every transfer strategy on the default (synthetic) data, then
# put accuracy, source retention (forgetting), trainable parameters, training energy and CO2
# side by side.
#   usage: examples/compare_strategies.sh [OUT_DIR]      (default runs/strategies)
set -euo pipefail
out=${1:-runs/strategies}
for strategy in scratch frozen finetune lora progressive ewc l2sp; do
    hf-edge train-and-export --strategy "$strategy" --out "$out/$strategy" --overwrite --quiet \
        --profile local --profile jetson-orin-nano-8gb
done
hf-edge compare "$out"/scratch "$out"/frozen "$out"/finetune "$out"/lora "$out"/progressive \
    "$out"/ewc "$out"/l2sp --out "$out"
# the lora bundle's report gains a "strategy comparison" section
hf-edge report "$out/lora" --compare "$out/scratch" --compare "$out/frozen" --compare "$out/finetune"
echo "comparison: $out/compare.md   report: $out/lora/report.html"
