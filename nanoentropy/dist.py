"""
Everything that knows about ranks: process-group setup, FSDP2 sharding, collectives, rank-0 printing,
and checkpoints (which need collectives under FSDP). One process: every helper is a no-op or plain
PyTorch. Under torchrun (RANK in the environment): one process per device, nccl on GPUs, gloo on CPU.
"""
import builtins
import os
import shutil
import warnings

import torch
import torch.distributed as dist


def compute_init(cfg):
    """Returns (ddp, rank, local_rank, world_size, device), after setting torch's CPU threads."""
    torch.set_num_threads(cfg.threads or torch.get_num_threads())   # README "Threads": 1 holds up on a busy machine
    want_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    if "RANK" not in os.environ:
        return False, 0, 0, 1, torch.device("cuda" if want_cuda else "cpu")
    rank, local_rank, world = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"])
    device = torch.device("cuda", local_rank) if want_cuda else torch.device("cpu")
    if want_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if want_cuda else "gloo", device_id=device if want_cuda else None)
    if rank != 0:  # only rank 0 prints, even from code that calls print() (torchvision's references do this)
        builtin_print = builtins.print
        builtins.print = lambda *a, force=False, **kw: builtin_print(*a, **kw) if force else None
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()  # and no "Loading weights" bars from from_pretrained
    return True, rank, local_rank, world, device


def cleanup():
    if dist.is_initialized():
        dist.destroy_process_group()


def is_master():
    return not dist.is_initialized() or dist.get_rank() == 0


def print0(*args, **kwargs):
    if is_master():
        print(*args, **kwargs, flush=True)


def barrier():
    if dist.is_initialized():
        dist.barrier()

# -----------------------------------------------------------------------------
# collectives. Every rank must call them in the same order (they block until all ranks arrive).


def all_reduce_sum(x):
    """Sum a tensor (or a float) over ranks; returns the same kind it got. One process: unchanged."""
    if not dist.is_initialized():
        return x
    t = x.clone() if torch.is_tensor(x) else torch.tensor(float(x), dtype=torch.float64)
    dist.all_reduce(t)
    return t if torch.is_tensor(x) else t.item()


def all_gather_cat(x):
    """Concatenate a 1-D tensor from every rank, in rank order (lengths may differ). One process: unchanged."""
    if not dist.is_initialized():
        return x
    sizes = [torch.tensor([0], device=x.device) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, torch.tensor([x.numel()], device=x.device))
    sizes = [int(s) for s in sizes]
    out = [torch.empty(max(sizes), dtype=x.dtype, device=x.device) for _ in sizes]
    dist.all_gather(out, torch.nn.functional.pad(x, (0, max(sizes) - x.numel())))  # gather needs equal sizes
    return torch.cat([o[:k] for o, k in zip(out, sizes)])


# -----------------------------------------------------------------------------
# FSDP2


def wrap_fsdp(model):
    """
    Shard every decoder layer, then the root (embeddings, final norm, lm_head), with FSDP2's fully_shard.
    1) Master weights and the optimizer state stay fp32 and sharded; the bf16 compute comes from the same
       torch.autocast as on one GPU, so both run the same arithmetic. (FSDP2's MixedPrecisionPolicy would
       all-gather in bf16, half the traffic, but then the multi-GPU run would compute something else.)
    2) The loss in train.py is already divided by the GLOBAL token count, so gradients must be summed
       over ranks, not averaged: divide factor 1, reduced with a plain SUM.
    3) The root stays gathered from forward to backward (reshard_after_forward=False): policy_logp_entropy
       calls lm_head AFTER model(...) returns (chunked, and again in backward), where a resharded lm_head
       would hold only this rank's shard. Cost: one full copy of the root per rank between forward and
       backward (Qwen2.5-0.5B's tied embedding: 0.54 GB fp32). Decoder layers are freed after forward.
    """
    from torch.distributed.fsdp import fully_shard
    # FSDP2 warns when the root returns views (HF's hidden_states) because an in-place op on them would
    # skip its pre-backward hook. We never write into model outputs, and the root stays gathered (3).
    warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view tensor")
    layers = model.model.layers  # every HF decoder-only LM we target keeps its blocks here
    for layer in layers:
        fully_shard(layer)
    fully_shard(model, reshard_after_forward=False)
    for m in [*layers, model]:
        m.set_gradient_divide_factor(1.0)
        m.set_force_sum_reduction_for_comms(True)  # a plain SUM reduce-scatter (gloo has no PREMUL_SUM(1))
    return model


class gathered_params:
    """
    Sampling under FSDP: all-gather every layer's parameters once for the whole rollout, not once per layer
    per generated token (thousands of collectives). Cost: every rank holds a full copy of the weights while
    sampling (fp32: 0.5B -> 2.0 GB, 1.5B -> 6.2 GB). One process: does nothing.
    """
    def __init__(self, model):
        from torch.distributed.fsdp import FSDPModule
        self.root = model
        self.mods = [m for m in model.modules() if isinstance(m, FSDPModule)] if dist.is_initialized() else []

    def __enter__(self):
        for m in self.mods:
            m.set_reshard_after_forward(False, recurse=False)
            m.unshard()

    def __exit__(self, *exc):
        for m in self.mods:
            m.reshard()
            m.set_reshard_after_forward(m is not self.root, recurse=False)  # back to what wrap_fsdp set

# -----------------------------------------------------------------------------
# checkpoints: a full Hugging Face model (rank 0) + sharded optimizer state (torch.distributed.checkpoint)
# + trainer state, written to a temp name and renamed. out_dir must be on a filesystem all nodes share.
# DCP warns on every save and load without torch.distributed ("assuming ... single process"): our intent.
warnings.filterwarnings("ignore", message="torch.distributed is .*single process")


def save_checkpoint(path, model, tokenizer, optimizer, trainer_state):
    """
    Every rank must call this (gathering a sharded model is a collective). Rank 0 writes the model in Hugging
    Face format (from_pretrained loads it), the tokenizer and the trainer state; each rank writes its shard of
    the optimizer state (torch.distributed.checkpoint). The folder gets its final name only when complete
    (finish_checkpoint), so a crash never leaves half a checkpoint; a failed write (full disk) stops the run.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                         get_optimizer_state_dict)
    model_sd = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if getattr(model.config, "tie_word_embeddings", False):  # gathered copies no longer share storage, so
        model_sd.pop("lm_head.weight", None)                  # HF would save the tied matrix twice
    optim_sd = get_optimizer_state_dict(model, optimizer)
    tmp = path + ".tmp"
    try:
        if is_master():
            shutil.rmtree(tmp, ignore_errors=True)
            model.config.architectures = [type(model).__name__.removeprefix("FSDP")]  # not FSDP's wrapper class
            model.save_pretrained(tmp, state_dict=model_sd)
            tokenizer.save_pretrained(tmp)
            torch.save(trainer_state, os.path.join(tmp, "trainer_state.pt"))
        barrier()
        dcp.save({"optimizer": optim_sd}, checkpoint_id=os.path.join(tmp, "optimizer"))
        barrier()
    except (Exception, dcp.CheckpointException) as e:   # a full disk, mostly (DCP's is a BaseException)
        full = shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free < 2**20
        shutil.rmtree(tmp, ignore_errors=True)
        raise SystemExit(f"error: {'no space left on device' if full else repr(e)} while saving the checkpoint; "
                         f"the previous checkpoint is intact") from None
    if is_master():
        open(os.path.join(tmp, "complete"), "w").close()   # the mark finish_checkpoint trusts
    finish_checkpoint(path)


def finish_checkpoint(path):
    """Puts a complete path.tmp in place of path, or finishes doing so after a kill, and returns the trainer
    state of the checkpoint at path (None if none). Every rank must call this; rank 0 moves files. The old
    checkpoint waits as path.old until the new one is in place, so a kill at any point leaves path or a
    path.tmp marked complete (the newer). A path.tmp without the mark is half written: removed."""
    tmp, old = path + ".tmp", path + ".old"
    if is_master():
        if os.path.exists(os.path.join(tmp, "complete")):
            shutil.rmtree(old, ignore_errors=True)   # a leftover of a kill during the rmtree below
            if os.path.exists(path):
                os.replace(path, old)
            os.replace(tmp, path)
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    barrier()
    state = os.path.join(path, "trainer_state.pt")
    return torch.load(state, weights_only=False) if os.path.exists(state) else None


def load_checkpoint(path, model, optimizer):
    """Loads the weights and optimizer state saved by save_checkpoint (train.py checked the world size)."""
    import torch.distributed.checkpoint as dcp
    from safetensors.torch import load_file
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_optimizer_state_dict,
                                                         set_model_state_dict, set_optimizer_state_dict)
    sd = load_file(os.path.join(path, "model.safetensors"))  # every rank reads the full file, keeps its shard
    if getattr(model.config, "tie_word_embeddings", False):
        sd.setdefault("lm_head.weight", sd["model.embed_tokens.weight"])  # HF drops the tied copy on save
    set_model_state_dict(model, sd, options=StateDictOptions(full_state_dict=True))
    # dcp.load fills a state dict in place, so first build one of the right shapes (this initialises
    # AdamW's state with a zero-lr step, then the load overwrites it)
    optim_sd = {"optimizer": get_optimizer_state_dict(model, optimizer)}
    dcp.load(optim_sd, checkpoint_id=os.path.join(path, "optimizer"))
    set_optimizer_state_dict(model, optimizer, optim_sd["optimizer"])
