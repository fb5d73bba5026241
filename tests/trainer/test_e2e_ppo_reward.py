"""From judgments to a policy that earns more reward, through the product and a real Celery worker, on the CPU.

Annotators prefer, every time, the answer that writes a poem. A lead closes the batch (API); an ML engineer makes a
snapshot (API), trains a reward model on it (runs API) and then PPO against that reward model (runs API). The
reward model must learn the preference (validation accuracy), and PPO must raise the mean reward while the KL
penalty keeps the policy near its reference: read from what the worker stored (evaluation and per-step metrics).

Both models start from a tiny Llama fine-tuned for a few steps on the tiny corpus (tests/trainer/ppo/token_reward.py),
which completes "The model writes" with "a poem politely!" now and then, as a policy fresh from SFT would.

Figures measured through this test, seeds 0-4 (SEED changes the judgments' texts and sides, the snapshot's split and
both runs' seeds): reward-model validation accuracy 1.0 every time, chosen-minus-rejected margin 4.65-5.46; PPO
mean reward on the validation prompts -2.48..-1.47 before, 2.03..2.48 after, a gain of 3.50-4.95 (0.69-1.00 of the
margin); KL to the reference 1.86-2.39 at the end, 2.49-4.39 at the worst step; answers to "<Subject> <verb>"
containing " poem" 9-14 % before, 92-98 % after. With the KL penalty off (init_kl_coef 0, not adaptive) the seed-0
run ends at KL 8.0 and fails the bound. The seed is fixed, so the test runs the seed-0 case every time (20-25 s).
"""

import itertools
import random
from pathlib import Path

import pytest
from django.conf import settings

from annotation.models import Batch
from rewards.models import DatasetSnapshot
from tests.core.jobs import wait_for_job
from tests.factories import BatchFactory, ItemFactory
from tests.rewards.judging import judge
from tests.trainer.test_e2e_training import RUNS, api_start, final_run
from trainer.models import Status

pytestmark = pytest.mark.worker

SUBJECTS = ["the model", "a reviewer", "the answer", "my friend", "the assistant", "our team", "the user", "a cat"]
VERBS = ["explains", "writes", "prefers", "checks", "describes", "answers", "lists", "rejects"]
OTHER_OBJECTS = ["the question", "a short reply", "a long story", "the facts", "some code", "the data", "it"]
TAILS = ["clearly", "briefly", "in detail", "with care", "politely", "again", "quickly", "today"]
ANNOTATORS = ("ann-1", "ann-2", "ann-3")
SEED = 0
RM_CONFIG = {"batch_size": 8, "eval_batch_size": 16, "max_length": 64, "learning_rate": 3e-3, "epochs": 3}
PPO_CONFIG = {
    "response_length": 8,
    "max_length": 64,
    "rollout_batch_size": 32,
    "mini_batch_size": 8,
    "batch_size": 32,
    "ppo_epochs": 4,
    "learning_rate": 1e-3,
    "temperature": 1.0,
    "init_kl_coef": 0.5,
    "target_kl": 3.0,
    "kl_horizon": 1000,
    "max_steps": 20,
}
# KL to the reference per response: at the end (measured 1.86-2.39; 8.0 without the penalty), and at every step.
KL_FINAL_BOUND = 4.0
KL_STEP_BOUND = 6.0


def judged_poem_batch(project) -> Batch:
    """64 sentence openings, two items each: one answer writes a poem, the other something else, on a random side.

    Three annotators all prefer the poem. Both answers share their ending, so the object is the only difference."""
    rng = random.Random(SEED)
    batch = BatchFactory(project=project, name="poems")
    for subject, verb in itertools.product(SUBJECTS, VERBS):
        for _ in range(2):
            tail, stop = rng.choice(TAILS), rng.choice(".!?.")
            poem, other = f" a poem {tail}{stop}", f" {rng.choice(OTHER_OBJECTS)} {tail}{stop}"
            poem_side = rng.choice("ab")
            a, b = (poem, other) if poem_side == "a" else (other, poem)
            item = ItemFactory(
                batch=batch, prompt=f"{subject} {verb}".capitalize(), response_a_text=a, response_b_text=b
            )
            for annotator in ANNOTATORS:
                judge(item, annotator, poem_side, shown_left=rng.choice("ab"))
    return batch


def test_ppo_on_a_learned_reward_raises_the_reward_with_bounded_kl(
    celery_worker_process, sft_policy_dir, project, lead_client, ml_engineer_client
):
    batch = judged_poem_batch(project)
    response = lead_client.post(f"/api/v1/batches/{batch.pk}/close/")
    assert response.status_code == 200 and response.json()["status"] == "closed", response.json()
    response = ml_engineer_client.post(
        f"/api/v1/projects/{project.pk}/datasets/",
        {"batches": [batch.pk], "validation_fraction": 0.25, "seed": SEED},
        format="json",
    )
    job = wait_for_job(ml_engineer_client, response)  # a job on the test's worker
    assert job["state"] == "succeeded", job
    snapshot = DatasetSnapshot.objects.get(pk=job["result"]["id"])
    counts = snapshot.counts
    assert (counts["train"], counts["excluded"]) == (128 - counts["validation"], 0), counts
    assert counts["validation"] >= 16, counts

    base = {"base_model": str(sft_policy_dir), "seed": SEED, "time_limit_seconds": 300}

    # The reward model learns the annotators' preference.
    rm_id = api_start(ml_engineer_client, snapshot, "reward_model", {**base, **RM_CONFIG})
    reward_model = final_run(rm_id)
    assert reward_model.status == Status.SUCCEEDED, reward_model.error + reward_model.error_traceback
    evaluation = reward_model.evaluation
    assert evaluation["n_pairs"] == counts["validation"]
    assert evaluation["accuracy"] >= 0.95, evaluation
    assert evaluation["reward_margin_mean"] > 2.0, evaluation

    # PPO against it.
    ppo_id = api_start(ml_engineer_client, snapshot, "ppo", {**base, **PPO_CONFIG}, reward_model_run=rm_id)
    ppo = final_run(ppo_id)
    assert ppo.status == Status.SUCCEEDED, ppo.error + ppo.error_traceback
    assert ppo.reward_model_id == rm_id
    result = ppo.evaluation
    assert result["steps"] == 20 and result["eval_split"] == "validation", result
    # Mean reward-model score of fresh samples on the validation prompts, before and after: up by at least half the
    # reward model's chosen-minus-rejected margin (measured: 0.69-1.00 of it).
    assert result["reward_gain"] == pytest.approx(result["reward_mean_final"] - result["reward_mean_initial"])
    assert result["reward_gain"] > 0.5 * evaluation["reward_margin_mean"], (result, evaluation)
    assert result["kl_final"] < KL_FINAL_BOUND, result

    # The stored per-step metrics, as the run page's charts read them: KL bounded at every step, reward rising.
    metrics = ml_engineer_client.get(f"{RUNS}{ppo_id}/metrics/").json()
    assert metrics["status"] == "succeeded" and not metrics["more"], metrics
    kl = dict(map(tuple, metrics["series"]["kl"]))
    reward = dict(map(tuple, metrics["series"]["reward_mean"]))
    assert sorted(kl) == sorted(reward) == list(range(1, 21))
    assert max(kl.values()) < KL_STEP_BOUND, kl
    assert reward[20] > reward[1] + 0.5 * evaluation["reward_margin_mean"], reward
    assert dict(map(tuple, metrics["series"]["eval_reward_mean"])) == {20: pytest.approx(result["reward_mean_final"])}

    # The reward rose because the policy writes the preferred token more often, not through some other quirk.
    assert poem_share(Path(settings.ARTIFACTS_DIR) / ppo.output_dir / "checkpoint") > poem_share(sft_policy_dir) + 0.5


def poem_share(model_dir: Path, *, samples: int = 64) -> float:
    """The share of sampled answers (8 tokens, temperature 1) to each "<Subject> <verb>" that contain " poem"."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    prompts = [f"{subject} {verb}".capitalize() for subject, verb in itertools.product(SUBJECTS, VERBS)][:samples]
    encoded = tokenizer(prompts, return_tensors="pt", padding=True)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(SEED)
        output = model.generate(
            **encoded, do_sample=True, temperature=1.0, top_k=0, max_new_tokens=8, pad_token_id=tokenizer.pad_token_id
        )
    answers = tokenizer.batch_decode(output[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
    return sum(" poem" in answer for answer in answers) / len(answers)
