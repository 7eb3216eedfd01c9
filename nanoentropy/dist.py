"""
Everything that knows about ranks: process-group setup, FSDP2 sharding, all-reduces, rank-0
printing, and checkpoints (which need collectives under FSDP).

Single process: every helper degrades to a no-op, so the single-process numbers cannot change
because this file exists. Under torchrun (detected from RANK in the environment): one process per
device, nccl on GPUs, gloo on CPU, each decoder layer and then the root sharded with fully_shard.
"""
import os
import shutil

import torch
import torch.distributed as dist


def compute_init(cfg):
    """Returns (ddp, rank, local_rank, world_size, device)."""
    want_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    if "RANK" not in os.environ:
        return False, 0, 0, 1, torch.device("cuda" if want_cuda else "cpu")
    rank, local_rank, world = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"])
    if want_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    dist.init_process_group("nccl" if want_cuda else "gloo", device_id=device if want_cuda else None)
    return True, rank, local_rank, world, device


def cleanup():
    if dist.is_initialized():
        dist.destroy_process_group()


def is_master():
    return not dist.is_initialized() or dist.get_rank() == 0


def print0(*args, **kwargs):
    if is_master():
        print(*args, **kwargs, flush=True)


def all_reduce_sum(x):
    """Sum a tensor (or a float) over ranks; returns the same kind it got. One process: unchanged."""
    if not dist.is_initialized():
        return x
    t = x.clone() if torch.is_tensor(x) else torch.tensor(float(x), dtype=torch.float64)
    dist.all_reduce(t)
    return t if torch.is_tensor(x) else t.item()


def all_gather_cat(x):
    """Concatenate a 1-D tensor from every rank (lengths may differ). One process: unchanged."""
    if not dist.is_initialized():
        return x
    n = torch.tensor([x.numel()], device=x.device)
    sizes = [torch.empty_like(n) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, n)
    longest = int(max(sizes))
    out = [torch.empty(longest, dtype=x.dtype, device=x.device) for _ in sizes]
    dist.all_gather(out, torch.nn.functional.pad(x, (0, longest - x.numel())))  # gather needs equal sizes
    return torch.cat([o[:int(k)] for o, k in zip(out, sizes)])

# -----------------------------------------------------------------------------
# FSDP2


def wrap_fsdp(model, cfg, world_size):
    """Shard every decoder layer, then the root, with FSDP2's fully_shard. Master weights stay fp32
    (autocast does the bf16 compute). The loss in train.py is already divided by the GLOBAL token
    count, so gradients must be summed over ranks, not averaged: divide factor 1."""
    from torch.distributed.fsdp import CPUOffloadPolicy, fully_shard
    kw = {"offload_policy": CPUOffloadPolicy()} if cfg.fsdp_cpu_offload else {}
    layers = model.model.layers  # every HF decoder-only LM we target keeps its blocks here
    for layer in layers:
        fully_shard(layer, **kw)
    fully_shard(model, **kw)
    for m in [*layers, model]:
        m.set_gradient_divide_factor(1.0)
    return model


class gathered_params:
    """Context manager for the rollout under FSDP: all-gather the parameters once before sampling
    and free them after, instead of once per layer per generated token (which would be 2 * n_layers
    collectives per token). Cost: every rank holds one full copy of the weights while sampling
    (0.5B params in fp32 = 2 GB), on top of its shard. One process: does nothing."""
    def __init__(self, model):
        from torch.distributed.fsdp import FSDPModule
        self.mods = [m for m in model.modules() if isinstance(m, FSDPModule)]

    def __enter__(self):
        for m in self.mods:
            m.set_reshard_after_forward(False, recurse=False)
            m.unshard()

    def __exit__(self, *exc):
        for m in self.mods:
            m.reshard()
            m.set_reshard_after_forward(True, recurse=False)

# -----------------------------------------------------------------------------
# checkpoints: a full Hugging Face model (rank 0) + trainer state, written to a temp name and renamed


def save_checkpoint(path, model, tokenizer, optimizer, trainer_state):
    """Every rank must call this (gathering a sharded model is a collective); rank 0 writes the HF
    model and tokenizer, and every rank writes its own optimizer shard. The directory appears under
    its final name only when complete, so a crash never leaves a half checkpoint."""
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                         get_optimizer_state_dict)
    full = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_sd = get_model_state_dict(model, options=full)
    optim_sd = get_optimizer_state_dict(model, optimizer, options=StateDictOptions(cpu_offload=True))
    rank = dist.get_rank() if dist.is_initialized() else 0
    tmp = path + ".tmp"
    if is_master():
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp, state_dict=model_sd)
        tokenizer.save_pretrained(tmp)
        torch.save(trainer_state, os.path.join(tmp, "trainer_state.pt"))
    _barrier()
    torch.save(optim_sd, os.path.join(tmp, f"optim_rank{rank}.pt"))
    _barrier()
    if is_master():
        old = path + ".old"
        if os.path.exists(path):
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    _barrier()


def load_checkpoint(path, model, optimizer, world_size):
    """Loads weights, optimizer shard and trainer state saved by save_checkpoint (same world size)."""
    from safetensors.torch import load_file
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                         set_optimizer_state_dict)
    state = torch.load(os.path.join(path, "trainer_state.pt"), weights_only=False)
    if state["world_size"] != world_size:
        raise RuntimeError(f"checkpoint {path} was written by {state['world_size']} ranks, this run has "
                           f"{world_size}; resume needs the same world size")
    sd = load_file(os.path.join(path, "model.safetensors"))
    if getattr(model.config, "tie_word_embeddings", False):
        sd.setdefault("lm_head.weight", sd["model.embed_tokens.weight"])  # HF drops the tied copy on save
    set_model_state_dict(model, sd, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=False))
    rank = dist.get_rank() if dist.is_initialized() else 0
    optim_sd = torch.load(os.path.join(path, f"optim_rank{rank}.pt"), weights_only=False)
    set_optimizer_state_dict(model, optimizer, optim_sd)
    return state


def _barrier():
    if dist.is_initialized():
        dist.barrier()
