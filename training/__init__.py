"""Training: the colour-shape maze (batched, torch), its gymnasium adapter, the IMPALA
actor-critic, PPO, presets and checkpoints. Imports nothing from the other packages."""
