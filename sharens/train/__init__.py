"""Training: the optimizer presets and stopping-rule constants a table may declare, the device options
(`speed`), the loop, batched members, checkpoints and augmentation.
"""
