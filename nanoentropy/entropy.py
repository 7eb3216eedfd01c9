"""
Entropy-control strategies. One function per strategy, one dict (STRATEGIES) to dispatch.

Contract (the only two places train.py touches a strategy):
  loss path:    loss, stats = loss_fn(mb, cfg, state)       once per micro-batch
  logging path: update_fn(state, cfg, metrics)             once per RL step, after the updates
mb is the micro-batch dict built in train.py (see grpo.grpo_loss), state a plain dict that the
strategy owns and train.py saves in checkpoints.
"""
from nanoentropy.grpo import grpo_loss


def grpo_only(mb, cfg, state):
    """Strategy "none": plain GRPO with the configured clip (symmetric 0.2 by default)."""
    return grpo_loss(mb, cfg)


# name -> (loss_fn, update_fn or None). The only dispatch point.
STRATEGIES = {
    "none": (grpo_only, None),
}
