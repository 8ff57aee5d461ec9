"""What the demo, the study and the benchmarks share: crop strategies, backbones, SimCLR
pre-training, evaluation, pair quality and the scene settings."""
