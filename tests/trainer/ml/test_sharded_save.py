"""The final save of a LoRA run trained sharded (FSDP, DeepSpeed ZeRO): rank 0 gets the gathered state dict and
merges it in a full copy on the CPU (trainer.ml.common._merged). Checked here against peft's own merge of the same
model: FSDP itself needs GPUs, the merge does not."""

import copy

import torch


def test_a_gathered_lora_state_dict_merges_to_peft_merge_and_unload(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from trainer.ml.common import _merged

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0))
    with torch.no_grad():  # trained adapters: B is no longer zero, so merging changes the weights
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.1)
    gathered = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    expected = copy.deepcopy(model).merge_and_unload().state_dict()

    merged = _merged(model, gathered).state_dict()

    assert merged.keys() == expected.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(merged[name], tensor, rtol=0, atol=0, msg=name)
    untouched = AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict()
    changed = [name for name in untouched if not torch.equal(untouched[name], merged[name])]
    assert changed  # the adapters were merged in, not dropped
