"""
The one Config dataclass that holds every knob of nanoentropy, and its loader. Precedence: dataclass defaults
< YAML file (--config, flat, overrides only) < --key=value flags. Every field has a type, a default and a
one-line comment (`python train.py --help` prints them). A bad key, type or value stops the run before any
work with a message naming the key, the value and what is allowed (train.py: exit code 2).
"""
import argparse
import dataclasses
import inspect
import math
import os
import re
from dataclasses import dataclass, fields

import yaml


@dataclass
class Config:
    # run
    out_dir: str = "out/tiny"           # where config.yaml, metrics.jsonl and checkpoints go
    seed: int = 0                       # the RL run's seed: prompt order, sampling, strategy draws
    base_seed: int = 0                  # the generated task and the tiny model's init + warm start
    device: str = "auto"                # auto | cpu | cuda
    dtype: str = "auto"                 # auto | float32 | bfloat16 (compute dtype; master weights stay fp32)
    resume: bool = False                # continue from out_dir/ckpt (an error if there is none)
    resume_force: bool = False          # resume even with a different entropy_strategy
    threads: int = 1                    # torch CPU threads per process (0 = torch's default, one per core)
    # model
    model_name_or_path: str = "tiny"    # "tiny" (built here), any HF causal LM id / local folder, or a .gguf file
    system_prompt: str = "default"      # chat models: default (the template's own) | none (empty) | any other text
    tiny_hidden: int = 128              # tiny model: hidden size
    tiny_layers: int = 4                # tiny model: decoder layers
    tiny_heads: int = 4                 # tiny model: attention heads (2 key/value heads)
    grad_checkpointing: bool = False    # recompute activations in backward (saves memory on big models)
    logits_chunk: int = 256             # tokens projected to the vocabulary at once (memory ~2 x chunk x V x 4 B)
    # supervised warm start (tiny model only: a random model never finds reward)
    sft_steps: int = 1500               # steps of training on the teacher's answers: the skill, not the reliability
    sft_lr: float = 3e-3                # its learning rate
    sft_batch_size: int = 64            # its batch size
    sft_noise: float = 0.55             # how often the teacher slips (data.teacher): base greedy acc below skill
    base_cache_dir: str = "out/_base"   # warm-started bases are cached here, keyed by their settings
    # data
    task: str = "arith"                 # arith | sum (the lab's) | gsm8k | math | jsonl
    data_path: str = ""                 # gsm8k/math/jsonl: HF dataset id or local .jsonl/.parquet file
    eval_data_path: str = ""            # held-out file; empty = hold out the last eval_size rows of data_path
    question_key: str = "question"      # column with the problem text
    answer_key: str = "answer"          # column with the reference answer (or solution with \boxed{})
    prompt_template: str = ""           # text around each problem, with {question}; empty = the task's (data.TEMPLATES)
    arith_digits: int = 2               # arith: largest operand has this many digits (difficulty)
    arith_ops: str = "+"                # arith: operators to draw from ("-*/": the tiny model needs far longer)
    sum_operands: int = 3               # sum: numbers added per problem, in any order (the lab task)
    num_train: int = 5000               # arith, sum: number of training problems generated
    eval_size: int = 200                # held-out problems evaluated (with eval_data_path: its first N, 0 = all)
    # rollout
    prompts_per_step: int = 16          # prompts sampled per RL step (global, across ranks)
    group_size: int = 8                 # G: completions sampled per prompt
    max_new_tokens: int = 16            # completion length cap
    temperature: float = 1.0            # sampling temperature (the loss uses the same one)
    # optimization
    num_steps: int = 60                 # RL steps (one rollout batch each); tiny: accuracy plateaus by step 40
    lr: float = 1e-4                    # AdamW learning rate (tiny: 3e-4 destabilises the policy, 1e-4 climbs)
    warmup_steps: int = 5               # linear lr warmup, in optimizer steps
    weight_decay: float = 0.0           # AdamW weight decay
    adam_beta1: float = 0.9             # AdamW momentum (0: each step moves by its own mini-batch's gradient alone)
    grad_clip: float = 1.0              # max global grad norm (0 = off)
    num_minibatches: int = 4            # optimizer steps per pass over the rollout batch (>1 so the ratio leaves 1)
    num_epochs: int = 1                 # passes over the rollout batch (PPO's epochs): more off-policy, more clipping
    micro_batch_size: int = 32          # sequences per forward/backward (gradient accumulation)
    # GRPO loss
    adv_std_norm: bool = True           # divide advantages by the group std (False = Dr. GRPO)
    loss_agg: str = "token-mean"        # token-mean | seq-mean-token-mean | seq-mean-token-sum-norm
    clip_low: float = 0.2               # ratio lower bound is 1 - clip_low
    clip_high: float = 0.2              # ratio upper bound is 1 + clip_high
    dual_clip: float = 0.0              # dual-clip constant c > 1 for A < 0 (0 = off)
    beta_low: float = 0.0               # gradient kept on tokens clipped low (0 = hard clip)
    beta_high: float = 0.0              # gradient kept on tokens clipped high (0 = hard clip)
    kl_coef: float = 0.0                # k3 KL to a frozen reference model (0 = no reference loaded)
    # entropy control: the strategy, then its knobs (nanoentropy/entropy.py)
    entropy_strategy: str = "none"      # one of entropy.STRATEGIES
    # entropy: clip_higher
    clip_higher_eps_high: float = 0.28  # upper clip width (DAPO); lower stays clip_low
    # entropy: entropy_bonus
    entropy_bonus_coef: float = 1e-3    # loss -= coef * aggregated token entropy
    # entropy: adaptive_entropy
    adaptive_entropy_init: float = 0.0  # initial bonus coefficient c (Skywork-OR1)
    adaptive_entropy_target: float = 0.2  # bonus on only while batch entropy < this (nats)
    adaptive_entropy_delta: float = 1e-4  # step of c per RL step, up below target, down above
    adaptive_entropy_max: float = 5e-3  # c is clipped to [0, this]
    # entropy: clip_cov
    clip_cov_ratio: float = 2e-4        # fraction of valid tokens whose gradient is cut (0 = none)
    clip_cov_lb: float = 1.0            # candidates have covariance strictly above this
    clip_cov_ub: float = 5.0            # ... and strictly below this
    # entropy: kl_cov
    kl_cov_ratio: float = 2e-3          # fraction (not percent) of top-covariance tokens penalised
    kl_cov_coef: float = 1.0            # beta of the |log r| penalty on them
    # entropy: aer
    aer_tau: float = 0.4                # prompts with group accuracy <= tau get the bonus
    aer_rho: float = 0.5                # target entropy = rho * first-step entropy
    aer_coef_init: float = 0.0          # initial global coefficient alpha
    aer_lr: float = 1e-2                # alpha += lr * (target - entropy) each RL step
    aer_coef_max: float = 0.05          # alpha is clipped to [0, this]
    # entropy: fec
    fec_schedule: str = "id"            # static | id | did | od (flexible entropy control)
    fec_upper_slope: float = -0.25      # a_u of the upper bound H(p)
    fec_upper_intercept: float = 0.5    # b_u of the upper bound H(p)
    fec_lower_slope: float = -0.13      # a_l of the lower bound M(p)
    fec_lower_intercept: float = 0.3    # b_l of the lower bound M(p)
    fec_clip_min: float = 0.05          # lower clamp of H(p) and M(p)
    fec_clip_max: float = 0.6           # upper clamp of H(p) and M(p)
    fec_eps_std: float = 0.2            # the standard clip width the schedules blend with
    fec_phase_split: float = 0.5        # id/did: fraction of num_steps in phase 1
    fec_od_min_ratio: float = 0.2       # od: H_min = ratio * H_init
    fec_od_h_init: float = 0.0          # od: H_init (0 = the first step's entropy)
    fec_od_init_mode: str = "suppress"  # od: mode before the first switch (suppress | boost)
    # logging / eval / checkpoints
    log_samples_every: int = 20         # print a few decoded rollouts every N steps (0 = never)
    eval_every: int = 20                # held-out eval every N steps (0 = only at start and end)
    eval_k: int = 4                     # samples per held-out problem for mean@k and pass@k
    save_every: int = 50                # checkpoint every N steps (0 = only at the end)
    entropy_change: bool = True         # re-measure the batch entropy after the update (1 extra forward)


class ConfigError(ValueError):
    pass


# Allowed values of the string knobs; everything else is checked in validate().
CHOICES = {
    "device": ("auto", "cpu", "cuda"),
    "dtype": ("auto", "float32", "bfloat16"),
    "task": ("arith", "sum", "gsm8k", "math", "jsonl"),
    "loss_agg": ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"),
    "fec_schedule": ("static", "id", "did", "od"),
    "fec_od_init_mode": ("suppress", "boost"),
}


def _comments():
    """field name -> its trailing '# comment' in the source above, for --help and error messages."""
    src = inspect.getsource(Config)
    return dict(re.findall(r"^\s+(\w+):[^#\n]*#\s*(.*)$", src, flags=re.M))


def _convert(name, value, typ):
    """Coerce a YAML or CLI value to the field's type. bool by hand: bool("False") is True. float(), not
    isinstance: YAML reads 1e-4 (no dot) as a string. YAML's null, lists and mappings are no knob's value."""
    try:
        if typ is bool:
            return value if isinstance(value, bool) else {"true": True, "1": True, "yes": True, "false": False,
                                                          "0": False, "no": False}[str(value).lower()]
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            if typ is int and isinstance(value, float) and not value.is_integer():
                raise ValueError  # 2.5 is no int; 4.0 is
            return typ(value)
    except (KeyError, ValueError, OverflowError):   # OverflowError: int(.inf)
        pass
    raise ConfigError(f"config key '{name}' = {value!r}: expected {typ.__name__}")


def validate(cfg: Config):
    from nanoentropy.entropy import STRATEGIES  # the strategy table is the one list of names
    def need(ok, key, allowed):
        if not ok:
            raise ConfigError(f"config key '{key}' = {getattr(cfg, key)!r}: must be {allowed}")
    for key, allowed in CHOICES.items():
        need(getattr(cfg, key) in allowed, key, "one of " + ", ".join(allowed))
    need(cfg.entropy_strategy in STRATEGIES, "entropy_strategy", "one of " + ", ".join(STRATEGIES))
    for f in fields(cfg):   # inf and nan pass every comparison below that they should fail
        need(f.type is not float or math.isfinite(getattr(cfg, f.name)), f.name, "a finite number")
    for key in ("lr", "sft_lr", "prompts_per_step", "max_new_tokens", "num_minibatches",
                "micro_batch_size", "eval_k", "logits_chunk", "tiny_hidden", "tiny_layers", "tiny_heads",
                "sft_batch_size", "num_train", "arith_digits", "num_epochs", "temperature"):   # T = 0: logits / 0
        need(getattr(cfg, key) > 0, key, "> 0")
    for key in ("num_steps", "sft_steps", "warmup_steps", "weight_decay", "grad_clip", "threads",
                "clip_high", "beta_low", "beta_high", "kl_coef", "eval_size", "log_samples_every", "eval_every",
                "save_every", "clip_higher_eps_high", "entropy_bonus_coef", "adaptive_entropy_init",
                "adaptive_entropy_target", "adaptive_entropy_delta", "adaptive_entropy_max", "kl_cov_coef",
                "aer_rho", "aer_coef_init", "aer_lr", "aer_coef_max", "fec_clip_min", "fec_od_h_init"):
        need(getattr(cfg, key) >= 0, key, ">= 0")
    need(cfg.group_size >= 2, "group_size", ">= 2 (a group of 1 has no baseline: every advantage is 0)")
    need(cfg.sum_operands >= 2, "sum_operands", ">= 2")
    for key in ("clip_low", "sft_noise", "fec_eps_std", "adam_beta1"):
        need(0 <= getattr(cfg, key) < 1, key, "in [0, 1)")
    need(cfg.dual_clip == 0 or cfg.dual_clip > 1, "dual_clip", "0 (off) or > 1")
    need(set(cfg.arith_ops) <= set("+-*/") and cfg.arith_ops, "arith_ops", "a non-empty subset of '+-*/'")
    need(cfg.task in ("arith", "sum") or cfg.data_path, "data_path", f"set for task '{cfg.task}'")
    need(cfg.task in ("arith", "sum") or cfg.model_name_or_path != "tiny" or cfg.sft_steps == 0, "task",
         "arith or sum for the tiny model's warm start (it imitates their teacher), or use a real model, or sft_steps=0")
    rest = cfg.prompt_template.replace("{question}", "").replace("{{", "").replace("}}", "")   # str.format's rules
    need(not cfg.prompt_template or "{question}" in cfg.prompt_template and not set("{}") & set(rest),
         "prompt_template", "empty (the task's own) or text with {question} and every other brace doubled ({{}})")
    need(cfg.eval_size > 0 or cfg.eval_data_path, "eval_size", "> 0 (0 = all of eval_data_path, which is not set)")
    world = int(os.environ["WORLD_SIZE"]) if "RANK" in os.environ else 1   # torchrun sets both before any work
    need(cfg.prompts_per_step % world == 0, "prompts_per_step", f"a multiple of the number of processes, {world}")
    need(cfg.group_size % cfg.num_minibatches == 0, "num_minibatches", f"a divisor of group_size = {cfg.group_size} "
         f"(each optimizer step takes the same number of samples of every prompt; train.minibatch)")
    for key in ("clip_cov_ratio", "kl_cov_ratio", "aer_tau", "fec_od_min_ratio"):
        need(0 <= getattr(cfg, key) <= 1, key, "in [0, 1]")
    need(cfg.clip_cov_lb < cfg.clip_cov_ub, "clip_cov_lb", f"< clip_cov_ub = {cfg.clip_cov_ub}")
    need(cfg.fec_clip_min <= cfg.fec_clip_max, "fec_clip_min", f"<= fec_clip_max = {cfg.fec_clip_max}")
    need(0 < cfg.fec_phase_split < 1, "fec_phase_split", "in (0, 1)")
    need(cfg.fec_upper_slope < 1, "fec_upper_slope", "< 1 (else H(p) divides by 1 - a_u p <= 0)")
    need(cfg.fec_lower_slope > -1, "fec_lower_slope", "> -1 (else M(p) divides by 1 + a_l p <= 0)")


def load_config(argv=None) -> Config:
    """Defaults < --config YAML < --key=value flags. Raises ConfigError on anything wrong."""
    comments = _comments()
    parser = argparse.ArgumentParser(description="nanoentropy RL trainer", allow_abbrev=False,
                                     argument_default=argparse.SUPPRESS)
    def one_line_error(message):   # argparse would print the usage of all ~100 flags before this line
        raise ConfigError(f"{message} (see python train.py --help)")
    parser.error = one_line_error
    parser.add_argument("--config", help="flat YAML file of overrides")
    for f in fields(Config):
        parser.add_argument(f"--{f.name}", metavar=f.type.__name__.upper(),
                            help=f"{comments.get(f.name, '')} (default: {f.default!r})")
    args = vars(parser.parse_args(argv))
    types = {f.name: f.type for f in fields(Config)}
    loaded = {}
    if "config" in args:
        try:
            with open(args.pop("config")) as fh:
                loaded = yaml.safe_load(fh) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"cannot read config file: {e}") from None
        if not isinstance(loaded, dict):
            raise ConfigError("config file must be a flat mapping of key: value")
    for k in loaded.keys() - types.keys():
        raise ConfigError(f"unknown config key '{k}' in YAML (see python train.py --help)")
    cfg = Config(**{k: _convert(k, v, types[k]) for k, v in {**loaded, **args}.items()})   # the CLI wins
    validate(cfg)
    return cfg


# knobs a resumed run may change silently: where, how long, how it logs, evaluates, computes (not what)
RESUME_FREE = ("out_dir", "resume", "resume_force", "device", "threads", "num_steps", "save_every", "eval_every",
               "eval_k", "log_samples_every", "entropy_change", "logits_chunk", "micro_batch_size",
               "grad_checkpointing", "base_cache_dir")


def check_resume(cfg, state, world_size):
    """state: the trainer state of out_dir/ckpt (None if there is none). Raises ConfigError where the run
    cannot resume; returns "key old -> new, ..." for every other knob that changed ("" if none)."""
    if state is None:
        raise ConfigError(f"resume=true but there is no checkpoint in {cfg.out_dir}/ckpt (drop --resume to start over)")
    if state["world_size"] != world_size:
        raise ConfigError(f"the checkpoint was written by {state['world_size']} processes, this run has {world_size}")
    old = yaml.safe_load(state["config"])
    changed = [k for k, v in old.items() if k not in RESUME_FREE and getattr(cfg, k, v) != v]
    if "entropy_strategy" in changed and not cfg.resume_force:
        raise ConfigError(f"the checkpoint was trained with entropy_strategy '{old['entropy_strategy']}', not "
                          f"'{cfg.entropy_strategy}'; set resume_force=true to switch strategy mid-run")
    return ", ".join(f"{k} {old[k]!r} -> {getattr(cfg, k)!r}" for k in changed)


def to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False)
