"""Config precedence (defaults < YAML < CLI) and the clear errors for bad keys, types and values."""
import pytest

from nanoentropy.config import Config, ConfigError, load_config


def _yaml(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return str(p)


def test_precedence_defaults_yaml_cli(tmp_path):
    path = _yaml(tmp_path, "lr: 1e-3   # YAML reads this as a string; it must still become a float\ngroup_size: 4\n")
    cfg = load_config(["--config", path, "--group_size=8"])
    assert cfg.lr == 1e-3 and cfg.group_size == 8 and cfg.temperature == Config().temperature


def test_bool_parsing_is_explicit():
    assert load_config(["--adv_std_norm=False"]).adv_std_norm is False
    assert load_config(["--adv_std_norm", "true"]).adv_std_norm is True
    with pytest.raises(ConfigError, match="adv_std_norm"):
        load_config(["--adv_std_norm=maybe"])


@pytest.mark.parametrize("argv, key", [
    (["--lr=-1"], "'lr' = -1.0: must be > 0"),
    (["--group_size=1"], "'group_size' = 1: must be >= 2"),
    (["--entropy_strategy=magic"], "'entropy_strategy' = 'magic': must be one of none"),
    (["--group_size=2.5"], "'group_size' = '2.5': expected int"),
    (["--loss_agg=mean"], "'loss_agg' = 'mean'"),
    (["--num_minibatches=3"], "num_minibatches"),
    (["--task=gsm8k"], "data_path"),
    # issue 13: these passed and trained on nan (T = 0 divides the logits by 0)
    (["--temperature=0"], "'temperature' = 0.0: must be > 0"),
    (["--lr=inf"], "'lr' = inf: must be a finite number"),
    (["--clip_high=nan"], "'clip_high' = nan: must be a finite number"),
    (["--fec_upper_intercept=-inf"], "'fec_upper_intercept' = -inf: must be a finite number"),
    (["--threads=-1"], "'threads' = -1: must be >= 0"),
    (["--adam_beta1=1"], "'adam_beta1' = 1.0: must be in [0, 1)"),   # Adam divides by 1 - beta1^t = 0
    (["--prompt_template=What is it?"], "'prompt_template' = 'What is it?': must be empty"),   # no {question}
    (["--prompt_template={question} in \\boxed{}"], "'prompt_template'"),   # a single brace: str.format would fail
    (["--prompt_template={q}"], "'prompt_template'"),
])
def test_bad_values_name_key_value_and_allowed(argv, key):
    with pytest.raises(ConfigError) as e:
        load_config(argv)
    assert key in str(e.value)


def test_unknown_keys(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'learning_rate'"):
        load_config(["--config", _yaml(tmp_path, "learning_rate: 0.1\n")])
    # argparse's own errors: one line (it used to print the usage of all ~100 flags first), then exit 2 in train.py
    with pytest.raises(ConfigError, match=r"^unrecognized arguments: --learning_rate=1 \(see python train.py --help\)$"):
        load_config(["--learning_rate=1"])
    with pytest.raises(ConfigError, match="expected one argument"):
        load_config(["--lr"])
    with pytest.raises(ConfigError, match="flat mapping"):
        load_config(["--config", _yaml(tmp_path, "- a\n- b\n")])


def test_every_field_has_a_comment():
    from dataclasses import fields
    from nanoentropy.config import _comments
    missing = [f.name for f in fields(Config) if not _comments().get(f.name)]
    assert not missing


def test_eval_size_caps_eval_data_path(tmp_path):
    """eval_size is the number of held-out problems, from a separate eval file too (0 = all of it)."""
    import json
    from nanoentropy.data import get_problems
    for name, n in (("train", 30), ("test", 12)):
        with open(tmp_path / f"{name}.jsonl", "w") as f:
            f.writelines(json.dumps({"question": f"{i}+{i}?", "answer": f"#### {2 * i}"}) + "\n" for i in range(n))
    base = ["--task=gsm8k", f"--data_path={tmp_path}/train.jsonl", f"--eval_data_path={tmp_path}/test.jsonl", "--sft_steps=0"]
    train, held, _ = get_problems(load_config(base + ["--eval_size=5"]))
    assert len(train) == 30 and [p["truth"] for p in held] == ["0", "2", "4", "6", "8"]
    assert len(get_problems(load_config(base + ["--eval_size=0"]))[1]) == 12
    with pytest.raises(ConfigError, match="eval_size"):
        load_config(["--eval_size=0"])


@pytest.mark.parametrize("text, key", [
    ("lr: null\n", "'lr' = None: expected float"),
    ("num_steps: [1, 2]\n", "'num_steps' = [1, 2]: expected int"),
    ("lr: {a: 1}\n", "'lr' = {'a': 1}: expected float"),
    ("num_steps: .inf\n", "'num_steps' = inf: expected int"),
    ("resume: [true]\n", "'resume' = [True]: expected bool"),
    ("out_dir: null\n", "'out_dir' = None: expected str"),
])
def test_yaml_values_of_the_wrong_type(tmp_path, text, key):
    """Regression (issue 13): YAML's null, lists and mappings raised TypeError (a traceback, exit 1)."""
    with pytest.raises(ConfigError) as e:
        load_config(["--config", _yaml(tmp_path, text)])
    assert key in str(e.value)


def test_batch_shapes_are_checked_per_process(monkeypatch):
    """Regression (issue 13): both were AssertionErrors on every rank, the second after the warm start.
    torchrun sets RANK and WORLD_SIZE before train.py starts, so the config can check them."""
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(ConfigError, match="'prompts_per_step' = 16: must be a multiple of the number of processes, 3"):
        load_config([])
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert load_config(["--prompts_per_step=4", "--group_size=8", "--num_minibatches=4"]).num_minibatches == 4
    # a mini-batch takes samples m, m + M, ... of every prompt (train.minibatch): M must divide G, on any world size
    with pytest.raises(ConfigError, match="'num_minibatches' = 4: must be a divisor of group_size = 6"):
        load_config(["--prompts_per_step=4", "--group_size=6", "--num_minibatches=4"])
    assert load_config(["--prompts_per_step=4", "--group_size=6", "--num_minibatches=3"]).num_minibatches == 3


def test_check_resume():
    """What a checkpoint's saved config allows: no checkpoint or another world size stop the run; a changed
    algorithm knob is named; another entropy strategy needs resume_force; plumbing knobs change freely."""
    from nanoentropy.config import check_resume, to_yaml
    saved = {"world_size": 1, "config": to_yaml(load_config([]))}
    with pytest.raises(ConfigError, match="no checkpoint in out/tiny/ckpt"):
        check_resume(load_config(["--resume=true"]), None, 1)
    with pytest.raises(ConfigError, match="written by 1 processes, this run has 2"):
        check_resume(load_config([]), saved, 2)
    assert check_resume(load_config(["--num_steps=500", "--eval_every=5", "--threads=2"]), saved, 1) == ""
    assert check_resume(load_config(["--lr=0.01", "--group_size=4"]), saved, 1) == \
        "group_size 8 -> 4, lr 0.0001 -> 0.01"
    with pytest.raises(ConfigError, match="entropy_strategy 'none', not 'clip_higher'; set resume_force=true"):
        check_resume(load_config(["--entropy_strategy=clip_higher"]), saved, 1)
    assert check_resume(load_config(["--entropy_strategy=clip_higher", "--resume_force=true"]), saved, 1) == \
        "entropy_strategy 'none' -> 'clip_higher'"
def test_prompt_template_replaces_the_tasks_own():
    from nanoentropy.data import get_problems
    train, held, _ = get_problems(load_config(["--prompt_template=What is {question}? Answer in \\boxed{{}}."]))
    q = held[0]["question"]
    assert held[0]["prompt"] == f"What is {q}? Answer in \\boxed{{}}." and train[0]["prompt"].startswith("What is ")
    assert get_problems(load_config([]))[1][0]["prompt"] == f"{q}="    # empty: the task's template
