"""The Accelerate config of a multi-process run, written into its folder and kept in its lineage.

One file per run (runs/<id>/accelerate_config.yaml): `accelerate launch --config_file` reads it, and it says after
the fact how the run was launched. On a CPU-only worker the processes talk over gloo (distributed_type MULTI_CPU);
on CUDA over NCCL (MULTI_GPU), with FSDP or DeepSpeed ZeRO sections when the run's strategy asks for them.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

from trainer.launch import DEFAULT_MAIN_PROCESS_PORT, num_machines, num_processes, strategy

CONFIG_FILENAME = "accelerate_config.yaml"
# DeepSpeed ZeRO stage per strategy.
_ZERO_STAGES = {"deepspeed_zero2": 2, "deepspeed_zero3": 3}
_MIXED_PRECISION = {"bfloat16": "bf16", "float16": "fp16", "float32": "no"}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now (the OS picks it), for the rendezvous of a one-machine run."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def accelerate_config(*, config: dict, device_type: str, device_dtype: str, port: int | None = None) -> dict:
    """The `accelerate launch` config for a run's config on a device ("cpu" | "cuda", and its autocast dtype).

    num_machines / machine_rank / main_process_ip / main_process_port come from the run config when set (a launch
    on each node of a multi-machine run); on one machine the rendezvous is 127.0.0.1 on a free port.
    """
    cpu = device_type != "cuda"
    machines = num_machines(config)
    chosen = strategy(config)
    # One machine: a free port on 127.0.0.1 (runs side by side on one host must not meet at a fixed port). Several:
    # machine 0's address and the configured port, the same on every node.
    ip = str(config.get("main_process_ip") or "127.0.0.1") if machines > 1 else "127.0.0.1"
    if machines > 1:
        port = int(config.get("main_process_port") or DEFAULT_MAIN_PROCESS_PORT)
    result = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": "MULTI_CPU" if cpu else "MULTI_GPU",
        # Accelerate counts the processes of all machines; the run's num_processes is per machine.
        "num_processes": num_processes(config) * machines,
        "num_machines": machines,
        "machine_rank": int(config.get("machine_rank") or 0),
        "main_process_ip": ip,
        "main_process_port": int(port or free_port()),
        "rdzv_backend": "static",
        "same_network": True,
        "mixed_precision": "no" if cpu else _MIXED_PRECISION.get(device_dtype, "no"),
        "use_cpu": cpu,
        "gpu_ids": "all",
        "downcast_bf16": "no",
        "debug": False,
        "tpu_env": [],
        "tpu_use_cluster": False,
        "tpu_use_sudo": False,
    }
    if chosen == "fsdp" and not cpu:
        result["distributed_type"] = "FSDP"
        result["fsdp_config"] = {
            "fsdp_version": 2,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_offload_params": False,
            "fsdp_reshard_after_forward": True,
            "fsdp_state_dict_type": "FULL_STATE_DICT",
        }
    elif chosen in _ZERO_STAGES and not cpu:
        stage = _ZERO_STAGES[chosen]
        result["distributed_type"] = "DEEPSPEED"
        result["deepspeed_config"] = {
            "zero_stage": stage,
            "gradient_accumulation_steps": int(config.get("gradient_accumulation_steps") or 1),
            "gradient_clipping": 1.0,
            "offload_optimizer_device": "none",
            "offload_param_device": "none",
            "zero3_init_flag": stage == 3,
            "zero3_save_16bit_model": stage == 3,
        }
    return result


def machine_config_filename(machine_rank: int) -> str:
    """The config file of another machine of the run (machine 0's is CONFIG_FILENAME, the one in lineage)."""
    return f"accelerate_config.machine-{int(machine_rank)}.yaml"


def write_accelerate_config(*, folder: Path, config: dict, filename: str = CONFIG_FILENAME) -> Path:
    """The config as YAML in `folder` (JSON is YAML: no PyYAML needed to write it; Accelerate reads it as YAML)."""
    path = Path(folder) / filename
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return path


def launch_command(*, python: str, config_file: Path, config: dict, run_id: int) -> list[str]:
    """The command line of the group's launcher. On a CPU worker `--multi_gpu` picks Accelerate's torchrun launcher
    (its simple launcher starts one process for MULTI_CPU unless mpirun is configured); each rank then finds no
    CUDA device and joins a gloo group (MULTI_CPU)."""
    command = [python, "-m", "accelerate.commands.launch", "--config_file", str(config_file)]
    if config["distributed_type"] == "MULTI_CPU":
        command.append("--multi_gpu")
    # torchrun's agent: no restarts (a failed rank fails the run), a quick check of its ranks.
    command += ["--max_restarts", "0", "--monitor_interval", "0.2"]
    return [*command, "-m", "trainer.launch.entry", "--run-id", str(int(run_id))]
