"""The launch of a multi-process run without launching it: the Accelerate config per device and strategy, the
command line, and the batch rules that count the processes (the runs API)."""

import json
import socket

import pytest
from accelerate.commands.config.config_args import load_config_from_file

from tests.trainer.runs_fixtures import make_snapshot
from trainer.launch import num_processes
from trainer.launch.config import accelerate_config, free_port, launch_command, write_accelerate_config

RUNS = "/api/v1/runs/"


def test_a_cpu_worker_gets_a_gloo_config_on_a_free_local_port(tmp_path):
    config = accelerate_config(config={"num_processes": 2}, device_type="cpu", device_dtype="float32")
    assert (config["distributed_type"], config["num_processes"], config["num_machines"]) == ("MULTI_CPU", 2, 1)
    assert (config["use_cpu"], config["mixed_precision"], config["main_process_ip"]) == (True, "no", "127.0.0.1")
    with socket.socket() as sock:  # the port was free when chosen: it can be bound
        sock.bind(("127.0.0.1", config["main_process_port"]))
    # Accelerate reads the file as its own config class (JSON is YAML).
    path = write_accelerate_config(folder=tmp_path, config=config)
    loaded = load_config_from_file(str(path))
    assert (loaded.distributed_type, loaded.num_processes, loaded.use_cpu) == ("MULTI_CPU", 2, True)
    assert json.loads(path.read_text()) == config


@pytest.mark.parametrize(("dtype", "precision"), [("bfloat16", "bf16"), ("float16", "fp16"), ("float32", "no")])
def test_a_cuda_worker_gets_multi_gpu_with_its_precision(dtype, precision):
    config = accelerate_config(config={"num_processes": 4}, device_type="cuda", device_dtype=dtype)
    assert (config["distributed_type"], config["mixed_precision"], config["use_cpu"]) == ("MULTI_GPU", precision, False)


def test_fsdp_and_deepspeed_sections_when_the_strategy_asks():
    fsdp = accelerate_config(
        config={"num_processes": 2, "strategy": "fsdp"}, device_type="cuda", device_dtype="bfloat16"
    )
    assert fsdp["distributed_type"] == "FSDP" and fsdp["fsdp_config"]["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    for strategy, stage in (("deepspeed_zero2", 2), ("deepspeed_zero3", 3)):
        config = {"num_processes": 2, "strategy": strategy, "gradient_accumulation_steps": 4}
        ds = accelerate_config(config=config, device_type="cuda", device_dtype="bfloat16")
        assert ds["distributed_type"] == "DEEPSPEED"
        assert (ds["deepspeed_config"]["zero_stage"], ds["deepspeed_config"]["gradient_accumulation_steps"]) == (
            stage,
            4,
        )


def test_several_machines_meet_at_the_configured_address():
    config = {
        "num_processes": 8,
        "num_machines": 2,
        "machine_rank": 1,
        "main_process_ip": "10.0.0.5",
        "main_process_port": 29555,
    }
    launch = accelerate_config(config=config, device_type="cuda", device_dtype="bfloat16")
    assert (launch["num_machines"], launch["machine_rank"], launch["num_processes"]) == (2, 1, 16)
    assert (launch["main_process_ip"], launch["main_process_port"]) == ("10.0.0.5", 29555)


def test_the_command_runs_the_entry_point_under_accelerate_launch(tmp_path):
    cpu = accelerate_config(config={"num_processes": 2}, device_type="cpu", device_dtype="float32", port=free_port())
    command = launch_command(python="python", config_file=tmp_path / "c.yaml", config=cpu, run_id=7)
    assert command[:5] == ["python", "-m", "accelerate.commands.launch", "--config_file", str(tmp_path / "c.yaml")]
    assert "--multi_gpu" in command  # Accelerate's torchrun launcher: its simple one starts one process for CPUs
    assert command[-4:] == ["-m", "trainer.launch.entry", "--run-id", "7"]
    gpu = accelerate_config(config={"num_processes": 2}, device_type="cuda", device_dtype="bfloat16")
    assert "--multi_gpu" not in launch_command(python="python", config_file=tmp_path / "c.yaml", config=gpu, run_id=7)


def test_one_process_is_the_default():
    assert num_processes({}) == num_processes(None) == 1


@pytest.mark.django_db
@pytest.mark.usefixtures("artifacts", "model_roots", "sent")
def test_rloo_groups_count_every_process_of_the_run(ml_engineer_client, project):
    """TRL's RLOO samples num_generations completions per prompt inside one generation batch over all processes
    (batch_size x accumulation x processes): 1 x 1 x 2 holds a group of 2, 1 x 1 x 1 does not."""
    snapshot = make_snapshot(project)  # (the e2e snapshot fixture of this folder's conftest needs a worker)
    base = {"base_model": "tiny", "batch_size": 1, "eval_batch_size": 1, "num_generations": 2}
    one = ml_engineer_client.post(RUNS, {"kind": "rloo", "snapshot": snapshot.pk, "config": base}, format="json")
    assert one.status_code == 400, one.json()
    assert one.json()["errors"]["num_generations"] == (
        "Must divide batch_size x gradient_accumulation_steps (1); got 2."
    )
    assert one.json()["errors"]["eval_batch_size"].startswith("eval_batch_size must be a multiple")
    two = {**base, "num_processes": 2}
    response = ml_engineer_client.post(RUNS, {"kind": "rloo", "snapshot": snapshot.pk, "config": two}, format="json")
    errors = response.json().get("errors", {})
    assert "num_generations" not in errors and "eval_batch_size" not in errors, response.json()
