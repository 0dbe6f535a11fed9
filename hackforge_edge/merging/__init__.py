"""Weight-space model merging: task vectors, merge methods (PEFT's ``merge_utils``), LoRA
adapter combination, multi-head export and BatchNorm re-estimation. Nothing heavy here."""
