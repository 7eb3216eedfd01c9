"""Config precedence (defaults < YAML < CLI) and the clear errors for bad keys, types and values."""
import pytest

from nanoentropy.config import Config, ConfigError, load_config


def _yaml(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return str(p)


def test_precedence_defaults_yaml_cli(tmp_path):
    path = _yaml(tmp_path, "lr: 1e-3   # YAML reads this as a string; it must still become a float\ngroup_size: 4\n")
    cfg = load_config(["--config", path, "--group_size=6"])
    assert cfg.lr == 1e-3 and cfg.group_size == 6 and cfg.temperature == Config().temperature


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
    with pytest.raises(SystemExit) as e:   # argparse: "unrecognized arguments: --learning_rate=1"
        load_config(["--learning_rate=1"])
    assert e.value.code == 2
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
    base = ["--task=gsm8k", f"--data_path={tmp_path}/train.jsonl", f"--eval_data_path={tmp_path}/test.jsonl"]
    train, held, _ = get_problems(load_config(base + ["--eval_size=5"]))
    assert len(train) == 30 and [p["truth"] for p in held] == ["0", "2", "4", "6", "8"]
    assert len(get_problems(load_config(base + ["--eval_size=0"]))[1]) == 12
    with pytest.raises(ConfigError, match="eval_size"):
        load_config(["--eval_size=0"])


def test_prompt_template_replaces_the_tasks_own():
    from nanoentropy.data import get_problems
    train, held, _ = get_problems(load_config(["--prompt_template=What is {question}? Answer in \\boxed{{}}."]))
    q = held[0]["question"]
    assert held[0]["prompt"] == f"What is {q}? Answer in \\boxed{{}}." and train[0]["prompt"].startswith("What is ")
    assert get_problems(load_config([]))[1][0]["prompt"] == f"{q}="    # empty: the task's template
