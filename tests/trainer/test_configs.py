"""Run configs: defaults per kind, every kind of mistake refused with a message naming the field, --set parsing."""

import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import TandemError
from trainer.configs import KINDS, ConfigError, defaults, fields, parse_set_options, validate_config

ROOT = Path(__file__).resolve().parent.parent.parent


def errors_of(kind, values) -> dict[str, str]:
    with pytest.raises(ConfigError) as excinfo:
        validate_config(kind, values)
    return excinfo.value.errors


@pytest.mark.parametrize("kind", KINDS)
def test_defaults_fill_every_field_and_validate_again_unchanged(kind):
    model = {"model" if kind == "generate" else "base_model": "/models/tiny"}  # generate samples, it trains nothing
    config = validate_config(kind, model)
    assert set(config) == set(fields(kind))
    assert config == {**defaults(kind), **model}
    assert validate_config(kind, config) == config  # a stored config is a valid input (re-runs, lineage)


def test_sound_defaults_per_kind():
    common = validate_config("reward_model", {"base_model": "m"})
    assert common["epochs"] == 1 and common["seed"] == 42 and common["lora"] is False and common["max_steps"] is None
    assert common["use_margin"] is False
    dpo = validate_config("dpo", {"base_model": "m"})
    assert dpo["beta"] == 0.1 and "use_margin" not in dpo
    ppo = validate_config("ppo", {"base_model": "m"})
    assert ppo["adaptive_kl"] is True and ppo["target_kl"] > 0 and ppo["init_kl_coef"] > 0
    assert (ppo["gamma"], ppo["lam"]) == (1.0, 0.95)
    assert ppo["rollout_batch_size"] % ppo["mini_batch_size"] == 0
    rloo = validate_config("rloo", {"base_model": "m"})
    assert rloo["num_generations"] >= 2 and rloo["kl_coef"] >= 0


def test_values_given_are_kept_and_ints_count_as_floats():
    config = validate_config(
        "dpo", {"base_model": " hub/org-model ", "beta": 1, "learning_rate": 5e-7, "max_steps": 10}
    )
    assert config["base_model"] == "hub/org-model"
    assert config["beta"] == 1.0 and isinstance(config["beta"], float)
    assert config["learning_rate"] == 5e-7 and config["max_steps"] == 10


def test_missing_or_blank_base_model():
    assert errors_of("dpo", {}) == {"base_model": "This field is required."}
    assert errors_of("dpo", {"base_model": "   "}) == {"base_model": "This field is required."}
    assert errors_of("dpo", {"base_model": None}) == {"base_model": "This field is required."}


def test_unknown_kind():
    errors = errors_of("kto", {"base_model": "m"})
    assert list(errors) == ["kind"]
    assert "kto" in errors["kind"] and "reward_model, dpo, ppo, rloo, generate, sft" in errors["kind"]


def test_unknown_keys_are_refused_and_a_setting_of_another_kind_says_so():
    errors = errors_of("dpo", {"base_model": "m", "bogus": 1, "init_kl_coef": 0.1})
    assert errors == {
        "bogus": "Unknown setting for dpo runs.",
        "init_kl_coef": "Unknown setting for dpo runs (it is a ppo setting).",
    }


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epochs", "3", "Must be an integer, got '3'."),
        ("epochs", 2.5, "Must be an integer, got 2.5."),
        ("epochs", True, "Must be an integer, got True."),  # bool is an int in Python; not here
        ("lora", 1, "Must be a boolean (true or false), got 1."),
        ("lora", "true", "Must be a boolean (true or false), got 'true'."),
        ("learning_rate", "1e-5", "Must be a number, got '1e-5'."),
        ("learning_rate", float("nan"), "Must be a finite number."),
        ("base_model", 3, "Must be a string, got 3."),
        ("seed", None, "This field may not be null."),
    ],
)
def test_wrong_types(field, value, message):
    assert errors_of("reward_model", {"base_model": "m", field: value}) == {field: message}


@pytest.mark.parametrize(
    ("kind", "field", "value", "message"),
    [
        ("reward_model", "learning_rate", 0, "Must be greater than 0."),
        ("reward_model", "learning_rate", 2.0, "Must be at most 1."),
        ("reward_model", "batch_size", 0, "Must be at least 1."),
        ("reward_model", "max_steps", 0, "Must be at least 1."),
        ("reward_model", "max_length", 4, "Must be at least 8."),
        ("reward_model", "seed", -1, "Must be at least 0."),
        ("reward_model", "time_limit_seconds", 0, "Must be at least 1."),
        ("dpo", "beta", 0.0, "Must be greater than 0."),
        ("ppo", "gamma", 1.5, "Must be at most 1."),
        ("ppo", "lam", -0.1, "Must be at least 0."),
        ("ppo", "clip_range", 0, "Must be greater than 0."),
        ("rloo", "num_generations", 1, "Must be at least 2."),
    ],
)
def test_out_of_range(kind, field, value, message):
    assert errors_of(kind, {"base_model": "m", field: value}) == {field: message}


def test_every_problem_is_reported_at_once():
    errors = errors_of("ppo", {"epochs": 0, "lora": "no", "vf_coef": -1, "beta": 0.1})
    assert set(errors) == {"base_model", "epochs", "lora", "vf_coef", "beta"}


def test_cross_field_rules():
    assert errors_of("ppo", {"base_model": "m", "rollout_batch_size": 64, "mini_batch_size": 24}) == {
        "mini_batch_size": "Must divide rollout_batch_size (64); got 24."
    }
    errors = errors_of("rloo", {"base_model": "m", "batch_size": 4, "num_generations": 3, "eval_batch_size": 6})
    assert errors == {"num_generations": "Must divide batch_size x gradient_accumulation_steps (4); got 3."}
    assert errors_of("generate", {"model": "m", "n": 2, "temperature": 0}) == {
        "n": "Greedy sampling (temperature 0) writes one response per prompt: set n to 1, or a temperature."
    }
    assert validate_config("generate", {"model": "m", "n": 1, "temperature": 0})["temperature"] == 0
    config = validate_config(
        "rloo",
        {
            "base_model": "m",
            "batch_size": 2,
            "gradient_accumulation_steps": 3,
            "num_generations": 3,
            "eval_batch_size": 6,
        },
    )
    assert config["num_generations"] == 3


def test_not_a_dict():
    assert errors_of("dpo", ["base_model", "m"]) == {"config": "Must be an object of settings, got list."}


def test_config_error_is_a_domain_error_with_a_code_and_readable_detail():
    with pytest.raises(ConfigError) as excinfo:
        validate_config("dpo", {"base_model": "m", "beta": -1, "nope": 1})
    err = excinfo.value
    assert isinstance(err, TandemError)  # the API's exception handler renders it as {"code", "detail", "errors"}
    assert err.code == "invalid_config" and err.status == 400
    assert err.extra == {"errors": err.errors}
    assert "beta: Must be greater than 0." in err.detail and "nope: Unknown setting for dpo runs." in err.detail


def test_parse_set_options_types_values_by_field():
    options = [
        "lora=true",
        "use_margin=False",
        "beta=0.2",
        "learning_rate=1e-5",
        "epochs=3",
        "seed=1_000",
        "max_steps=none",
        "base_model=/models/a=b",
        "adaptive_kl=no",
    ]
    assert parse_set_options(options) == {
        "lora": True,
        "use_margin": False,
        "beta": 0.2,
        "learning_rate": 1e-5,
        "epochs": 3,
        "seed": 1000,
        "max_steps": None,
        "base_model": "/models/a=b",
        "adaptive_kl": False,
    }
    assert parse_set_options([]) == {}


def test_parse_set_options_errors_name_each_bad_option():
    with pytest.raises(ConfigError) as excinfo:
        parse_set_options(["epochs", "lora=maybe", "epochs=1.5", "zz=1", "=3", "seed=none", "beta=high"])
    assert excinfo.value.errors == {
        "epochs": "Expected an integer, got '1.5'.",
        "lora": "Expected a boolean, got 'maybe'.",
        "zz": "Unknown setting.",
        "=3": "Expected key=value.",
        "seed": "Expected an integer, got 'none'.",
        "beta": "Expected a number, got 'high'.",
    }


def test_parse_set_options_for_one_kind_then_validate():
    with pytest.raises(ConfigError) as excinfo:
        parse_set_options(["beta=0.2"], kind="reward_model")
    assert excinfo.value.errors == {"beta": "Unknown setting for reward_model runs."}
    values = parse_set_options(["base_model=m", "beta=0.3"], kind="dpo")
    assert validate_config("dpo", values)["beta"] == 0.3


def test_configs_and_progress_import_without_torch_or_django_settings():
    code = (
        "import sys; import trainer.configs, trainer.progress; "
        "heavy = [m for m in sys.modules if m.split('.')[0] in {'torch', 'transformers', 'trl', 'django'}]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
