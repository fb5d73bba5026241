"""Training runs and their metrics. Status changes go through trainer.services, never through save()."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from trainer.configs import RUN_LIMIT_FIELDS, hard_max


class Kind(models.TextChoices):
    # The same names as trainer.configs.KINDS (a test checks they agree).
    REWARD_MODEL = "reward_model", "Reward model"
    DPO = "dpo", "DPO"
    PPO = "ppo", "PPO"
    RLOO = "rloo", "RLOO"
    GENERATE = "generate", "Generate"
    SFT = "sft", "SFT"


# Kinds that optimise a policy and save checkpoints along the way (trainer.checkpoints); their final checkpoint is a
# causal LM that generate runs sample and later runs start from (run:ID).
POLICY_KINDS = frozenset({Kind.DPO, Kind.PPO, Kind.RLOO, Kind.SFT})

# Kinds that score their samples with a reward model trained by an earlier run.
NEEDS_REWARD_MODEL = frozenset({Kind.PPO, Kind.RLOO})


class Status(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    LOST = "lost", "Lost"


ACTIVE_STATUSES = frozenset({Status.QUEUED, Status.RUNNING})
FINAL_STATUSES = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.LOST})


class TrainingRun(models.Model):
    """One training job: what it trains from (snapshot, reward model), its validated config, and where it got to.

    A worker fills step/total_steps/eta/heartbeat_at as it goes; evaluation and lineage when it ends. `error` is
    the readable line ("ValueError: ..."), `error_traceback` the detail.
    """

    project = models.ForeignKey("annotation.Project", on_delete=models.PROTECT, related_name="training_runs")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED, db_index=True)
    config = models.JSONField(help_text="The complete configuration, defaults filled in, as validated at start.")
    snapshot = models.ForeignKey(
        "rewards.DatasetSnapshot",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="training_runs",
        help_text="What it trains on; empty only for a generate run, which trains on nothing.",
    )
    reward_model = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="policy_runs",
        help_text="PPO and RLOO: the succeeded reward-model run whose checkpoint scores the samples.",
    )
    based_on = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The run this one was started like, if any.",
    )
    resume_from = models.ForeignKey(
        "trainer.Checkpoint",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="resumed_by",
        help_text="The checkpoint (of a run of the same kind and snapshot) whose weights and optimizer state it "
        "continues from.",
    )
    sampled_checkpoint = models.ForeignKey(
        "trainer.Checkpoint",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="generation_runs",
        help_text="Generate runs: the checkpoint that wrote the responses (empty for a base-model folder).",
    )
    inputs = models.JSONField(
        default=dict,
        blank=True,
        help_text='Files a run reads besides its snapshot: {"prompts": {"path", "sha256", "count"}} for generate.',
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="training_runs"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    time_limit_seconds = models.PositiveIntegerField(help_text="Wall-clock limit from start; past it the run fails.")
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    eta = models.DateTimeField(null=True, blank=True, help_text="Estimated time the training steps end.")
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    error_traceback = models.TextField(blank=True)
    celery_task_id = models.CharField(max_length=255, blank=True)
    worker = models.CharField(max_length=255, blank=True, help_text="The Celery worker that ran it.")
    device = models.CharField(max_length=100, blank=True)
    compute = models.JSONField(
        default=dict,
        blank=True,
        help_text="What the worker actually used, recorded at start: processes, machines, devices, strategy, precision.",
    )
    output_dir = models.CharField(max_length=500, blank=True, help_text="Relative to ARTIFACTS_DIR.")
    evaluation = models.JSONField(default=dict, blank=True)
    lineage = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["project", "-created_at"], name="run_project_recent"),
            models.Index(fields=["status", "heartbeat_at"], name="run_status_heartbeat"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=[Kind.PPO, Kind.RLOO]) | Q(reward_model__isnull=True),
                name="run_reward_model_only_for_online_kinds",
            ),
            models.CheckConstraint(
                condition=~Q(kind__in=[Kind.PPO, Kind.RLOO]) | Q(reward_model__isnull=False),
                name="run_online_kinds_need_reward_model",
            ),
            models.CheckConstraint(
                condition=Q(kind=Kind.GENERATE) | Q(snapshot__isnull=False), name="run_trains_on_a_snapshot"
            ),
            models.CheckConstraint(
                condition=Q(kind=Kind.GENERATE) | Q(sampled_checkpoint__isnull=True),
                name="run_sampled_checkpoint_only_for_generate",
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.get_kind_display()}, {self.get_status_display().lower()})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def fraction_done(self) -> float | None:
        if self.status == Status.SUCCEEDED:
            return 1.0
        if not self.total_steps:
            return None
        return min(1.0, self.step / self.total_steps)


class RunMetric(models.Model):
    """One logged value: `name` at optimizer step `step` (evaluation values are named "eval_...")."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="metrics")
    step = models.PositiveIntegerField()
    name = models.CharField(max_length=100)
    value = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "step", "name"]
        indexes = [models.Index(fields=["run", "step"], name="runmetric_run_step")]

    def __str__(self) -> str:
        return f"{self.name}={self.value:g} at step {self.step}"


class Checkpoint(models.Model):
    """A policy's weights at one optimizer step, saved by the worker (trainer.checkpoints). Never edited.

    `manifest` maps each file under `folder` (relative path) to its sha256; a download or a load checks them first.
    `metrics` holds the training metrics logged at that step (reward, KL, loss...). The final checkpoint of a
    succeeded run is the run's own output (`final`); intermediate ones also hold the optimizer state to resume from.
    """

    run = models.ForeignKey(TrainingRun, on_delete=models.PROTECT, related_name="checkpoints")
    step = models.PositiveIntegerField()
    folder = models.CharField(max_length=500, help_text="Relative to ARTIFACTS_DIR.")
    manifest = models.JSONField(default=dict, help_text="File (relative to the folder) -> sha256.")
    metrics = models.JSONField(default=dict, blank=True, help_text="Training metrics at this step.")
    final = models.BooleanField(default=False, help_text="The run's last checkpoint (its output when it succeeded).")
    resumable = models.BooleanField(default=False, help_text="Holds the optimizer and scheduler state.")
    size_bytes = models.BigIntegerField(default=0)
    deleted_at = models.DateTimeField(
        null=True, blank=True, help_text="Files removed by the run's keep_checkpoints; the row stays for lineage."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "step"]
        constraints = [models.UniqueConstraint(fields=["run", "step"], name="checkpoint_step_unique_per_run")]

    def __str__(self) -> str:
        return f"checkpoint {self.pk} (run {self.run_id}, step {self.step})"


class FinishReason(models.TextChoices):
    STOP = "stop", "End of sequence"
    LENGTH = "length", "max_new_tokens reached"


class Generation(models.Model):
    """One response of a generate run to one prompt of its prompt file (`sample` counts from 0 when n > 1)."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="generations")
    prompt_id = models.CharField(max_length=200, help_text="The prompt's id in its evaluation set.")
    sample = models.PositiveSmallIntegerField(default=0)
    text = models.TextField()
    token_count = models.PositiveIntegerField()
    finish_reason = models.CharField(max_length=10, choices=FinishReason.choices)
    reward = models.FloatField(null=True, blank=True, help_text="The named reward model's score, if one was named.")
    kl = models.FloatField(
        null=True, blank=True, help_text="Sum over the sampled tokens of log p(policy) - log p(reference)."
    )
    identity_leak = models.BooleanField(default=False, help_text="Matches one of the project's identity-leak patterns.")

    class Meta:
        ordering = ["run", "prompt_id", "sample"]
        constraints = [
            models.UniqueConstraint(fields=["run", "prompt_id", "sample"], name="generation_unique_per_run_prompt")
        ]

    def __str__(self) -> str:
        return f"generation of run {self.run_id} for {self.prompt_id}#{self.sample}"


def _limit(name: str, help_text: str) -> models.PositiveIntegerField:
    return models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(hard_max(name))],
        help_text=f"{help_text} Empty: the server's limit (TANDEM_RUN_LIMITS[{name!r}]).",
    )


class ProjectRunLimits(models.Model):
    """One project's overrides of the server's run limits (settings.TANDEM_RUN_LIMITS), raised or lowered by a
    superuser. Each field bounds the config field of the same name (trainer.configs.RUN_LIMIT_FIELDS); none may be
    set above the config field's own hard bound."""

    project = models.OneToOneField("annotation.Project", on_delete=models.CASCADE, related_name="run_limits")
    time_limit_seconds = _limit("time_limit_seconds", "Longest wall-clock time of a run, in seconds.")
    max_steps = _limit("max_steps", "Most optimizer steps.")
    epochs = _limit("epochs", "Most passes over the training split.")
    batch_size = _limit("batch_size", "Largest per-device batch.")
    eval_batch_size = _limit("eval_batch_size", "Largest evaluation batch.")
    gradient_accumulation_steps = _limit("gradient_accumulation_steps", "Most micro-steps per step.")
    max_length = _limit("max_length", "Longest prompt + answer, in tokens.")
    response_length = _limit("response_length", "Most tokens generated per PPO/RLOO sample.")
    rollout_batch_size = _limit("rollout_batch_size", "Most prompts per PPO rollout.")
    mini_batch_size = _limit("mini_batch_size", "Largest PPO minibatch.")
    ppo_epochs = _limit("ppo_epochs", "Most PPO passes over each rollout.")
    num_generations = _limit("num_generations", "Most RLOO completions per prompt.")
    lora_r = _limit("lora_r", "Highest LoRA rank.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "project run limits"
        verbose_name_plural = "project run limits"

    def __str__(self) -> str:
        return f"run limits of {self.project}"

    def overrides(self) -> dict[str, int]:
        """The limits set here (the others fall back to the server's)."""
        return {name: getattr(self, name) for name in RUN_LIMIT_FIELDS if getattr(self, name) is not None}


class WorkerCapability(models.Model):
    """What one Celery worker serving training queues can run, written by the worker itself when it starts and
    refreshed while it lives (trainer.services.workers); runs are checked against the live ones before queueing."""

    name = models.CharField(max_length=255, unique=True, help_text="The Celery worker name (name@host).")
    queues = models.JSONField(default=list, help_text="The queues it consumes.")
    gpu_count = models.PositiveIntegerField(default=0)
    gpu_names = models.JSONField(default=list, blank=True)
    cpu_processes = models.PositiveIntegerField(
        default=1, help_text="Processes it offers a multi-process run when it has no GPU (gloo)."
    )
    cuda = models.BooleanField(default=False, help_text="torch.cuda.is_available() in the worker.")
    bf16 = models.BooleanField(default=False, help_text="Its GPU computes in bfloat16.")
    deepspeed = models.BooleanField(default=False)
    bitsandbytes = models.BooleanField(default=False)
    vllm = models.BooleanField(default=False)
    accelerate = models.BooleanField(default=False)
    torch_version = models.CharField(max_length=50, blank=True)
    probe_error = models.TextField(blank=True, help_text="Why the capability probe failed, if it did.")
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True, help_text="Set by a warm shutdown.")

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "worker capabilities"

    def __str__(self) -> str:
        return self.name

    @property
    def process_capacity(self) -> int:
        """The most processes of one run it can start: one per GPU, else its CPU processes."""
        return self.gpu_count if self.gpu_count else self.cpu_processes
